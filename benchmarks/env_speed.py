"""Env steps/s with both cameras rendered, beside panda-gym's PandaPickAndPlace-v3 (when installed).

Both run in this process, in alternating blocks of steps (so that a change in machine load hits both alike),
with the same image size and seeded random actions; panda-gym renders its single camera through `render()`
after each step (its `render_mode="rgb_array"`, TinyRenderer), ours renders two cameras inside `step()`. Ratio
= ours / panda-gym. `--env PandaTabletop-v0 --task mix` measures the multi-task env (episodes end on success
or the time limit, and every reset builds a new family's scene).

    python benchmarks/env_speed.py [--env PandaPick-v0] [--task mix] [--image-size 96 96] [--steps 300]
                                   [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time

import gymnasium as gym

import envs  # noqa: F401
from rt1_sim.cli import positive_int


class _Stepper:
    """Steps one env with seeded random actions; `run(n)` returns the seconds n steps took (with resets)."""

    def __init__(self, env: gym.Env, render: bool, seed: int = 0) -> None:
        self.env, self.render = env, render
        env.reset(seed=seed)
        env.action_space.seed(seed)
        self.run(10)  # warm up

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = self.env.step(self.env.action_space.sample())
            if self.render:
                self.env.render()
            if terminated or truncated:
                self.env.reset()
        return time.perf_counter() - start


def _interleaved(steppers: dict[str, _Stepper], steps: int, rounds: int) -> dict[str, float]:
    """Steps/s of each env, measured in alternating blocks so that a change in machine load hits all alike."""
    seconds = dict.fromkeys(steppers, 0.0)
    block = max(1, steps // rounds)
    for _ in range(rounds):
        for name, stepper in steppers.items():
            seconds[name] += stepper.run(block)
    return {name: block * rounds / s for name, s in seconds.items()}


def _panda_gym(height: int, width: int) -> gym.Env | None:
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # panda-gym prints on import
            import panda_gym  # noqa: F401
    except ImportError:
        return None
    return gym.make("PandaPickAndPlace-v3", render_mode="rgb_array", render_width=width, render_height=height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=positive_int, nargs=2, default=[96, 96], metavar=("H", "W"))
    parser.add_argument(
        "--steps", type=positive_int, default=300, help="steps per env, split into --rounds blocks"
    )
    parser.add_argument(
        "--rounds", type=positive_int, default=5, help="alternating measurement blocks per env"
    )
    parser.add_argument("--env", default="PandaPick-v0", choices=["PandaPick-v0", "PandaTabletop-v0"])
    parser.add_argument("--task", default="mix", help="PandaTabletop-v0's task family (or mix)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    height, width = args.image_size

    options = {"task": args.task} if args.env == "PandaTabletop-v0" else {}
    ours = gym.make(args.env, image_size=(height, width), terminate_on_action=False, **options)
    label = args.env + (f" task={args.task}" if options else "")
    steppers = {"ours": _Stepper(ours, render=False)}
    theirs = _panda_gym(height, width)
    if theirs is not None:
        steppers["theirs"] = _Stepper(theirs, render=True)
    rates = _interleaved(steppers, args.steps, args.rounds)
    result = {
        "env": label,
        "image_size": [height, width],
        "cameras": 2,
        "steps": args.steps,
        "steps_per_s": rates["ours"],
        "panda_gym_steps_per_s": rates.get("theirs"),
        "ratio": None,
    }
    if theirs is not None:
        result["panda_gym_cameras"] = 1
        result["ratio"] = rates["ours"] / rates["theirs"]
        theirs.close()
    ours.close()
    if args.json:
        print(json.dumps(result))
        return
    print(f"{label}, 2 cameras at {height}x{width}: {result['steps_per_s']:.1f} steps/s")
    if result["ratio"] is None:
        print("panda-gym not installed (pip install panda-gym): no side-by-side ratio")
    else:
        print(
            f"panda-gym PandaPickAndPlace-v3, 1 camera at {height}x{width}: "
            f"{result['panda_gym_steps_per_s']:.1f} steps/s"
        )
        print(f"ratio (ours / panda-gym): {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
