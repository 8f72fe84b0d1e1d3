"""`rt1-sim collect | train | eval | benchmark | compare | export | plot | bench`: the command line.

Each subcommand lives in its own module, which provides `add_arguments(parser)` and `run(args) -> int`; this
file only dispatches, importing a module when its subcommand is used (so `rt1-sim collect` never imports
torch). A `UserError` (a wrong option, config key, dataset, checkpoint or output folder) is printed as one
line and exits with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from rt1_sim.errors import UserError
from rt1_sim.logs import setup_logging

SUBCOMMANDS = {
    "collect": ("rt1_sim.collect", "collect scripted-expert demonstrations into a dataset (IO layout)"),
    "train": ("rt1_sim.train", "train RT-1 on a dataset"),
    "eval": ("rt1_sim.eval.cli", "closed-loop evaluation of a policy: success rate with a 95%% interval"),
    "compare": ("rt1_sim.compare", "compare two eval/benchmark folders run on the same seeds (paired test)"),
    "benchmark": (
        "rt1_sim.benchmark",
        "one policy over the multi-task generalization splits: success per family x split with intervals",
    ),
    "export": ("rt1_sim.export", "write a dataset in LeRobot's format (LeRobotDataset v3.0)"),
    "plot": ("rt1_sim.plot", "draw a training run's learning curve (loss, closed-loop success) as a PNG"),
    "bench": ("rt1_sim.bench_scripts", "run the benchmarks in benchmarks/ and print their ratios"),
}
USER_ERROR_STATUS = 2


def positive_int(text: str) -> int:
    """argparse `type=` for counts (steps, rounds, episodes, sizes): an integer >= 1, else argparse's one-line
    usage error (a negative count would run nothing and report a rate of it)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def run_command(prog: str, run: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """`run(args)` with logging set up; a UserError becomes one line on stderr and exit status 2. SIGTERM
    unwinds like Ctrl-C (exit status 143): worker pools stop their workers and writers clean up their staging
    files on the way out."""
    setup_logging()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return int(run(args) or 0)
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return USER_ERROR_STATUS


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="rt1-sim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    chosen = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        # argparse %-formats help strings (hence "95%%"); a description is printed as it is
        sub_parser = sub.add_parser(name, help=help_text, description=help_text.replace("%%", "%"))
        if name == chosen:  # only the chosen subcommand's module is imported
            importlib.import_module(module_name).add_arguments(sub_parser)
    args = parser.parse_args(argv)
    module = importlib.import_module(SUBCOMMANDS[args.command][0])
    return run_command(f"rt1-sim {args.command}", module.run, args)


if __name__ == "__main__":
    sys.exit(main())
