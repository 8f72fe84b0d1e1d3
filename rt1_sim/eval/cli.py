"""`rt1-sim eval`: closed-loop evaluation of any Policy on a suite of fixed-seed scenes (see rt1_sim.eval)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from rt1_sim.config import EvalConfig
from rt1_sim.config_loader import Shorthand, add_override_argument, load_config, shorthand_overrides
from rt1_sim.distributed import available_cores, destroy_process_group, init_process_group, launch_environment
from rt1_sim.eval.harness import DEFAULT_ENVS_PER_WORKER, evaluate
from rt1_sim.eval.results import EvalReport
from rt1_sim.eval.video import VIDEO_MIN_HEIGHT, VIDEO_MODES
from rt1_sim.pool import WorkerDied
from rt1_sim.resources import ASSETS, bundled_checkpoint, default_eval_suite, resource_path
from rt1_sim.run_layout import RESULTS_FILE

__all__ = ["add_arguments", "default_out", "run"]

log = logging.getLogger(__name__)

SHORTHANDS = (  # the options that stand for one EvalConfig key each
    Shorthand("policy", "policy.name"),
    Shorthand("episodes", "episodes"),
    Shorthand("seed_start", "seed_start"),
)


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
        "suite's policy.name ('auto': the env's bundled RT-1 checkpoint, rt1_cpu.pt for PandaPick-v0 and "
        "rt1_multitask_cpu.pt for PandaTabletop-v0, else the scripted expert; --set policy.name=...)",
    )
    parser.add_argument(
        "--episodes", type=int, help="number of episodes (--set episodes=N; default: the suite's)"
    )
    parser.add_argument(
        "--seed-start",
        type=int,
        help="env seed of the first episode (--set seed_start=S; default: the suite's)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel env processes per torchrun process (default: the available cores); "
        "does not change the results",
    )
    parser.add_argument(
        "--envs-per-worker",
        type=int,
        default=DEFAULT_ENVS_PER_WORKER,
        help="envs each worker steps together; an RT-1 policy acts for all of them in one forward pass "
        f"(default {DEFAULT_ENVS_PER_WORKER}); does not change the results",
    )
    parser.add_argument(
        "--video",
        choices=VIDEO_MODES,
        default="failures",
        help="which episodes get an mp4 (default: failures)",
    )
    parser.add_argument(
        "--video-scale",
        type=int,
        default=0,
        help="upscale camera images in videos this many times, nearest neighbour (default 0: auto, to at "
        f"least {VIDEO_MIN_HEIGHT} px tall; 1: the cameras' own size)",
    )
    parser.add_argument(
        "--record", type=Path, help="also save every episode as a dataset (IO layout) in this new folder"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="run folder, new or empty (default: a new runs/eval/<suite>_<policy>_<date>-<time>)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in --out (and --record) instead of refusing",
    )
    add_override_argument(parser, "env_options.num_distractors=2")


def default_out(config: EvalConfig) -> Path:
    """runs/eval/<suite>_<policy>_<start time>: a new folder per run, so two runs never mix. A checkpoint's
    label carries its run folder (two runs' checkpoint_last.pt differ); under torchrun rank 0's clock wins."""
    bundled = bundled_checkpoint(config.env_id)
    name = config.policy.name
    if name == "auto":
        name = str(bundled) if bundled is not None and bundled.is_file() else "scripted"
    path = Path(name)
    shipped = resource_path(ASSETS, "checkpoints")
    in_run = path.suffix and path.parent.name and path.resolve().parent != shipped
    label = f"{path.parent.name}-{path.stem}" if in_run else path.stem
    stamp = [time.strftime("%Y%m%d-%H%M%S")]
    dist = init_process_group(launch_environment(), "gloo")
    if dist is not None:
        dist.broadcast_object_list(stamp, src=0)
    return Path("runs") / "eval" / f"{config.name}_{label}_{stamp[0]}"


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    """The suite file, then --set, then the --policy / --episodes / --seed-start shorthands (each the same as
    --set of the key it stands for), all through the one loader."""
    return load_config(EvalConfig, args.config, [*args.overrides, *shorthand_overrides(args, SHORTHANDS)])


def run(args: argparse.Namespace) -> int:
    """Load the suite (file, --set, then the shortcut options), evaluate, print the summary line (rank 0).
    Nothing is written before every input is checked (the run folder's eval.log included)."""
    job = launch_environment()
    try:
        config = config_from_args(args)
        out = args.out or default_out(config)
        workers = (
            args.workers if args.workers is not None else max(1, available_cores() // job.local_world_size)
        )
        try:
            report = _evaluate(args, config, out, workers)
        except WorkerDied as e:  # an eval folder is never resumed: its unfinished run is replaced
            raise e.advice(
                f"--out {out} holds an unfinished run (no {RESULTS_FILE}): run the same command with "
                "--overwrite to replace it"
            ) from None
    finally:
        destroy_process_group()
    if job.is_main:
        print(report.summary())
    return 0


def _evaluate(args: argparse.Namespace, config: EvalConfig, out: Path, workers: int) -> EvalReport:
    return evaluate(
        config,
        out,
        workers=workers,
        video=args.video,
        record=args.record,
        config_file=args.config,
        overwrite=args.overwrite,
        video_scale=args.video_scale,
        overrides=args.overrides,
        log_file=True,
        envs_per_worker=args.envs_per_worker,
    )
