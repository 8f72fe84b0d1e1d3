"""`rt1-sim bench`: run each script in benchmarks/ with --json, print their measurements side by side."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rt1_sim.errors import UserError

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"


def available() -> list[str]:
    """Benchmark names (script stems) found in benchmarks/."""
    return sorted(p.stem for p in BENCHMARKS_DIR.glob("*.py") if not p.name.startswith("_"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    parser.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument passed to every benchmark script (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    if not BENCHMARKS_DIR.is_dir():
        raise UserError(f"no benchmarks at {BENCHMARKS_DIR}: they ship with the source, not the package")
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        raise UserError(f"unknown benchmark(s) {unknown}; available: {available()}")
    failed = 0
    for name in names:
        cmd = [sys.executable, str(BENCHMARKS_DIR / f"{name}.py"), "--json", *args.arg]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            failed += 1
            print(f"{name}: failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
            continue
        result = json.loads(lines[-1])
        ratio = result.get("ratio")
        print(
            f"{name}: "
            + (f"ratio {ratio:.2f}x  " if isinstance(ratio, (int, float)) else "")
            + json.dumps(result)
        )
    return 1 if failed else 0
