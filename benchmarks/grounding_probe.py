"""Does a policy go to the object its instruction names? Closed loop on tabletop `pick` scenes (the named
object among 1-3 others that share its colour or its shape), the first object the gripper comes within
`--radius` of (in x and y, checked before each of the first `--steps` actions) is the one it went for. Each
policy drives the same scenes; per policy:

- how many episodes reached an object at all, and which one first: the named one, one of its colour, one of
  its shape, or neither;
- the count a policy blind to the instruction would get: the sum over the episodes that reached an object of
  1 / (objects in the scene), and the ratio of the named-first count to it (1.0: no grounding; the scripted
  expert's is the ceiling);
- success within the `--steps` cut.

    python benchmarks/grounding_probe.py --policy runs/NAME/checkpoint_last.pt [--policy scripted]
        [--episodes 30] [--seed-start 3200000] [--steps 60] [--crop checkpoint] [--radius 0.03]
        [--option num_distractors=[1,1]] [--json]

`--option KEY=VALUE` sets a `pick` scene option (envs/tasks/common.py: TaskOptions; the value read as JSON).

Seeds 3200000 on are the tabletop validation scenes the multi-task probes use (docs/multitask_runs.md).
"""

from __future__ import annotations

import argparse
import collections
import json

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers PandaTabletop-v0)
from rt1_sim.cli import positive_int
from rt1_sim.config import EvalPolicyConfig
from rt1_sim.config_loader import parse_override
from rt1_sim.errors import ConfigError
from rt1_sim.eval.policy_choice import load_rt1
from rt1_sim.eval.stats import wilson_interval
from rt1_sim.policy import RandomPolicy, make_expert

BENCH_SKIP = "needs --policy CHECKPOINT: rt1-sim bench grounding_probe --arg=--policy --arg=PATH.pt"
KINDS = ("target", "same colour", "same shape", "neither", "none")


def first_reached(task, ee_xy: np.ndarray, radius: float) -> str | None:
    """The body name of an object within `radius` of the gripper in x and y (the nearest), or None."""
    distances = {name: float(np.linalg.norm(ee_xy - task.pose(name)[0][:2])) for name in task.objects}
    name = min(distances, key=distances.get)
    return name if distances[name] < radius else None


def kind_of(task, name: str | None) -> str:
    if name is None:
        return "none"
    if name == "target":
        return "target"
    target, other = task.objects["target"], task.objects[name]
    if other.color == target.color:
        return "same colour"
    return "same shape" if other.shape == target.shape else "neither"


def probe(policy_name: str, args: argparse.Namespace) -> dict:
    env = gym.make("PandaTabletop-v0", task="pick", **args.options)
    if policy_name == "scripted":
        policy = make_expert(env, noise=0.0, seed=0)
    elif policy_name == "random":
        policy = RandomPolicy(seed=0)
    else:
        policy = load_rt1(policy_name, EvalPolicyConfig(inference_crop=args.crop))
    kinds, chance, successes = collections.Counter(), 0.0, 0
    for seed in range(args.seed_start, args.seed_start + args.episodes):
        obs, info = env.reset(seed=seed)
        unwrapped = env.unwrapped
        task = unwrapped.task
        policy.reset(info["instruction"])
        first = None
        for _ in range(args.steps):
            if first is None:
                first = first_reached(task, unwrapped.privileged_state()["ee_pos"][:2], args.radius)
            obs, _, terminated, truncated, info = env.step(policy.act(obs))
            if terminated or truncated:
                break
        kinds[kind_of(task, first)] += 1
        if first is not None:
            chance += 1.0 / len(task.objects)
        successes += bool(info["is_success"])
    env.close()
    reached = args.episodes - kinds["none"]
    low, high = wilson_interval(kinds["target"], reached) if reached else (0.0, 1.0)
    return {
        "policy": policy_name,
        "episodes": args.episodes,
        "reached": reached,
        "first": {k: kinds[k] for k in KINDS},
        "target_first_wilson95": [round(low, 3), round(high, 3)],
        "chance": round(chance, 2),
        "target_first_over_chance": round(kinds["target"] / chance, 2) if chance else None,
        "success": successes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", action="append", required=True, help="checkpoint, scripted or random")
    parser.add_argument("--episodes", type=positive_int, default=30)
    parser.add_argument("--seed-start", type=int, default=3_200_000)
    parser.add_argument("--steps", type=positive_int, default=60)
    parser.add_argument("--crop", default="checkpoint", choices=("checkpoint", "none", "center"))
    parser.add_argument("--radius", type=float, default=0.03, help="metres, in x and y")
    parser.add_argument("--option", action="append", default=[], help="a pick scene option KEY=VALUE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        args.options = dict(parse_override(text) for text in args.option)
        gym.make("PandaTabletop-v0", task="pick", **args.options).close()
    except (ConfigError, TypeError, ValueError) as e:
        parser.error(f"--option: {e}")
    import torch

    torch.set_num_threads(1)
    rows = [probe(name, args) for name in args.policy]
    if args.json:
        setting = {"seed_start": args.seed_start, "episodes": args.episodes, "steps": args.steps}
        print(json.dumps({**setting, "options": args.option, "policies": rows}))
        return
    options = f" ({', '.join(args.option)})" if args.option else ""
    last = args.seed_start + args.episodes - 1
    print(f"pick scenes {args.seed_start}..{last}{options}, first {args.steps} steps")
    for row in rows:
        first = ", ".join(f"{k} {v}" for k, v in row["first"].items())
        low, high = row["target_first_wilson95"]
        print(
            f"{row['policy']}: reached an object in {row['reached']}/{row['episodes']}; first: {first}; "
            f"named object first {row['first']['target']} (Wilson {low:.0%}-{high:.0%} of those reached) "
            f"against {row['chance']} by chance: x{row['target_first_over_chance']}; "
            f"success {row['success']}/{row['episodes']}"
        )


if __name__ == "__main__":
    main()
