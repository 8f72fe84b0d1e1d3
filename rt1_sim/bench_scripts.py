"""`rt1-sim bench`: run each script in benchmarks/ with --json, print their measurements side by side.

With no name it runs every script that runs as it is; a script that cannot (it needs an argument, such as a
dataset, or measures nothing) says why in a module-level string `BENCH_SKIP`, and is run only when named.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

from rt1_sim.errors import UserError

BENCHMARKS_DIR = Path(__file__).resolve().parent.parent / "benchmarks"
SKIP_MARKER = "BENCH_SKIP"


def available() -> list[str]:
    """Benchmark names (script stems) found in benchmarks/."""
    return sorted(p.stem for p in BENCHMARKS_DIR.glob("*.py") if not p.name.startswith("_"))


def skip_reason(name: str) -> str | None:
    """Why `rt1-sim bench` without names leaves the script out (its `BENCH_SKIP` string), None when it runs
    it. The script is parsed, not imported (imports would cost seconds and may need torch)."""
    tree = ast.parse((BENCHMARKS_DIR / f"{name}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == SKIP_MARKER for target in node.targets
        ):
            return str(ast.literal_eval(node.value))
    return None


def default_names() -> list[str]:
    """What `rt1-sim bench` runs when no name is given: every script without a `BENCH_SKIP`."""
    return [name for name in available() if skip_reason(name) is None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    names = default_names() if BENCHMARKS_DIR.is_dir() else []
    parser.add_argument(
        "names",
        nargs="*",
        help=f"benchmarks to run (default: {names}; the others of {available()} only when named)",
    )
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
    names = args.names or default_names()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        raise UserError(f"unknown benchmark(s) {unknown}; available: {available()}")
    if not args.names:
        for name in sorted(set(available()) - set(names)):
            print(f"{name}: skipped ({skip_reason(name)})")
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
