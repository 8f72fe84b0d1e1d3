"""Closed-loop evaluation rate of an RT-1 policy against the number of envs each worker steps together
(`rt1-sim eval --envs-per-worker K`: one batched forward pass for all K envs of a worker).

Every K evaluates the same episodes of the same suite with the same workers; the Ks take turns, in rotated
order over `--rounds` rounds, so a change in the machine's load hits all alike. Per K: episodes/min over all
rounds, its ratio to the first K, and whether every round gave the same episodes.csv as the first K's (it
must: K changes speed, never results).

    python benchmarks/eval_batching.py [--policy auto] [--config eval_configs/default.json] [--episodes 48]
        [--envs 1 4 8 16] [--workers 2] [--rounds 2] [--json]

`--policy auto` on the default suite is the bundled pick policy (rt1_cpu.pt); `--config
eval_configs/validation_multitask.json` with the bundled multi-task policy (or `--policy PATH.pt`) measures
the long episodes of the tabletop families.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from rt1_sim.cli import positive_int
from rt1_sim.config import EvalConfig
from rt1_sim.config_loader import load_config
from rt1_sim.eval import evaluate
from rt1_sim.eval.results import EPISODES_FILE
from rt1_sim.resources import find_config


def measure(args: argparse.Namespace) -> dict:
    path = find_config(args.config)
    config = load_config(EvalConfig, path)
    config = dataclasses.replace(
        config, episodes=args.episodes, policy=dataclasses.replace(config.policy, name=args.policy)
    )
    seconds = dict.fromkeys(args.envs, 0.0)
    same = dict.fromkeys(args.envs, True)
    reference: pd.DataFrame | None = None
    label = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = args.envs[r % len(args.envs) :] + args.envs[: r % len(args.envs)]
            for k in order:
                out = Path(tmp) / f"k{k}_r{r}"
                started = time.perf_counter()
                report = evaluate(
                    config, out, workers=args.workers, envs_per_worker=k, config_file=path, progress=False
                )
                seconds[k] += time.perf_counter() - started
                label = report.results["policy"]["label"]
                rows = pd.read_csv(out / EPISODES_FILE).drop(columns=["video"])
                if reference is None:
                    reference = rows
                same[k] &= rows.equals(reference)
    rates = {k: 60.0 * args.episodes * args.rounds / seconds[k] for k in args.envs}
    first = args.envs[0]
    return {
        "suite": config.name,
        "env_id": config.env_id,
        "policy": label,
        "episodes": args.episodes,
        "workers": args.workers,
        "rounds": args.rounds,
        "success_rate": float(reference["success"].mean()) if reference is not None else None,
        "mean_steps": float(reference["steps"].mean()) if reference is not None else None,
        "episodes_per_min": {str(k): round(rate, 1) for k, rate in rates.items()},
        f"ratio_to_k{first}": {str(k): round(rate / rates[first], 2) for k, rate in rates.items()},
        "same_results": {str(k): same[k] for k in args.envs},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="auto", help="auto | PATH.pt (an RT-1 checkpoint)")
    parser.add_argument("--config", default="eval_configs/default.json", help="eval suite")
    parser.add_argument("--episodes", type=positive_int, default=48)
    parser.add_argument("--envs", type=positive_int, nargs="+", default=[1, 4, 8, 16], help="envs per worker")
    parser.add_argument("--workers", type=positive_int, default=2)
    parser.add_argument("--rounds", type=positive_int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.episodes < 1 or args.workers < 1 or args.rounds < 1 or min(args.envs) < 1:
        parser.error("--episodes, --workers, --rounds and every --envs must be >= 1")
    result = measure(args)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['policy']} on {result['suite']} ({result['env_id']}): {result['episodes']} episodes x "
        f"{result['rounds']} rounds, {result['workers']} workers; success {result['success_rate']:.0%}, "
        f"{result['mean_steps']:.1f} mean steps"
    )
    ratios = result[f"ratio_to_k{args.envs[0]}"]
    for k, rate in result["episodes_per_min"].items():
        same = result["same_results"][k]
        print(f"  K={k:>3}: {rate:7.1f} episodes/min  {ratios[k]:.2f}x  same results: {same}")


if __name__ == "__main__":
    main()
