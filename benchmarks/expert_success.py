"""Scripted-expert success per PandaTabletop-v0 family over consecutive seeds (every attempt counts).

    python benchmarks/expert_success.py [--families pick drawer ...] [--episodes 200] [--seed 0] [--noise 0.1]

Prints one line per family: successes / episodes, mean and max control steps, failing seeds.
"""

from __future__ import annotations

import argparse
import json

import gymnasium as gym
import numpy as np

import envs
from envs.objects import FAMILIES
from rt1_sim.cli import positive_int


def success_rate(family: str, seeds: range, noise: float = 0.1, **options) -> dict:
    """Run the family's expert on every seed; success = the env's `is_success` when the episode ends."""
    env = gym.make("PandaTabletop-v0", task=family, **options)
    expert = envs.make_expert(env, noise=noise)
    steps, failures = [], []
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        expert.reset(info["instruction"])
        done, n = False, 0
        while not done:
            obs, _, terminated, truncated, info = env.step(expert.act(obs))
            done, n = terminated or truncated, n + 1
        steps.append(n)
        if not info["is_success"]:
            failures.append(seed)
    env.close()
    return {
        "family": family,
        "episodes": len(seeds),
        "successes": len(seeds) - len(failures),
        "mean_steps": float(np.mean(steps)),
        "max_steps": int(max(steps)),
        "failed_seeds": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--episodes", type=positive_int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument(
        "--noise", type=float, default=0.1, help="expert action noise (fraction of the bounds)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per family")
    args = parser.parse_args()
    for family in args.families:
        r = success_rate(family, range(args.seed, args.seed + args.episodes), noise=args.noise)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(
                f"{family}: {r['successes']}/{r['episodes']} ({100 * r['successes'] / r['episodes']:.1f}%), "
                f"steps mean {r['mean_steps']:.0f} max {r['max_steps']}, failed seeds {r['failed_seeds']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
