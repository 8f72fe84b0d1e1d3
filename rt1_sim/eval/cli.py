"""`rt1-sim eval`: closed-loop evaluation of any Policy on a suite of fixed-seed scenes (see rt1_sim.eval)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from rt1_sim.config import EvalConfig, add_override_argument, load_config
from rt1_sim.distributed import available_cores, destroy_process_group, launch_environment
from rt1_sim.eval.harness import evaluate
from rt1_sim.eval.video import VIDEO_MODES
from rt1_sim.logs import log_to_file
from rt1_sim.resources import default_eval_suite

LOG_FILE = "eval.log"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    suite = default_eval_suite()
    default_suite = suite if suite.is_file() else None
    parser.add_argument(
        "--config",
        type=Path,
        default=default_suite,
        help=f"eval suite JSON (default: {default_suite or 'the EvalConfig defaults'})",
    )
    parser.add_argument(
        "--policy",
        help="scripted | random | auto | PATH.pt (an RT-1 checkpoint); default: the "
        "suite's policy.name ('auto': the bundled RT-1 checkpoint, else the scripted expert)",
    )
    parser.add_argument("--episodes", type=int, help="number of episodes (default: the suite's)")
    parser.add_argument("--seed-start", type=int, help="env seed of the first episode (default: the suite's)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel env processes per torchrun process (default: the available cores); "
        "does not change the results",
    )
    parser.add_argument("--video", choices=VIDEO_MODES, default="failures", help="which episodes get an mp4")
    parser.add_argument("--record", type=Path, help="also save every episode as a dataset (IO layout) here")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/eval/<suite>_<policy>)")
    add_override_argument(parser, "env_options.num_distractors=2")


def run(args: argparse.Namespace) -> int:
    """Load the suite (file, --set, then the shortcut options), evaluate, print the summary line (rank 0)."""
    job = launch_environment()
    config = load_config(EvalConfig, args.config, args.overrides)
    shortcuts = {
        "policy": dataclasses.replace(config.policy, name=args.policy) if args.policy else None,
        "episodes": args.episodes,
        "seed_start": args.seed_start,
    }
    config = dataclasses.replace(config, **{k: v for k, v in shortcuts.items() if v is not None})
    out = args.out or Path("runs") / "eval" / f"{config.name}_{Path(config.policy.name).stem}"
    workers = args.workers or max(1, available_cores() // job.local_world_size)
    if job.is_main:
        out.mkdir(parents=True, exist_ok=True)
    try:
        with log_to_file(out / LOG_FILE if job.is_main else None, mode="w"):
            report = evaluate(
                config, out, workers=workers, video=args.video, record=args.record, config_file=args.config
            )
    finally:
        destroy_process_group()
    if job.is_main:
        print(report.summary())
    return 0
