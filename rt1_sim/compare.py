"""`rt1-sim compare A B`: two eval or benchmark output folders, run on the same seeds, compared per seed.

A folder is either an eval folder (its `results.json` is one suite) or a benchmark folder (one suite per
subfolder holding a `results.json`). A *cell* is a suite, or a (suite, task family) when its per-episode rows
carry a `family`. Within a cell the episodes of A and B are paired by seed: identical scenes, so the only
difference is the policy. Per cell: both success rates with Wilson 95% intervals, the difference B - A, the
discordant pairs (b = seeds only A solved, c = seeds only B solved) and the exact McNemar test: a two-sided
binomial test of b against b + c with p = 1/2, computed with integers. The verdict is "A better" or "B better"
when p < alpha, else "no significant difference". Each cell is tested on its own (no correction for the
number of cells).

Refused, with one error naming both folders: a missing or unreadable results.json, cells that do not match,
seed sets that differ, or different scenes (env_options) for the same seeds.

`--out` follows the output-folder rule of every command (rt1_sim.outputs): a new or empty folder, or, with
`--overwrite`, one that holds an earlier comparison and nothing else (never an eval or benchmark folder).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from rt1_sim.errors import UserError
from rt1_sim.eval.stats import wilson_interval
from rt1_sim.files import atomic_write_text
from rt1_sim.outputs import make_folder, prepare_folder
from rt1_sim.run_layout import EXAMPLES_DIR, RESULTS_FILE

COMPARE_JSON, COMPARE_MD = "compare.json", "compare.md"
DEFAULT_ALPHA = 0.05
COLUMNS = (
    "cell",
    "episodes",
    "A success (Wilson 95%)",
    "B success (Wilson 95%)",
    "B - A",
    "only A",
    "only B",
    "p",
    "verdict",
)
TEST_NAME = "exact McNemar (two-sided binomial test on the discordant pairs, p = 1/2)"


class CompareError(UserError, ValueError):
    """The two folders cannot be compared; the message names them and the reason."""


# ---------------------------------------------------------------- statistics
def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` and `c` discordant pairs: P(X <= min(b, c)) doubled, capped at
    1, for X ~ Binomial(b + c, 1/2); exact integer arithmetic (1.0 when there is no discordant pair)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def verdict(b: int, c: int, p_value: float, alpha: float) -> str:
    """Which policy did better ("A better", "B better") when p < alpha; else "no significant difference"."""
    if p_value < alpha and b != c:
        return "A better" if b > c else "B better"
    return "no significant difference"


def rate(successes: int, episodes: int) -> dict[str, Any]:
    """{successes, success_rate, ci95_low, ci95_high} with the project's Wilson interval."""
    low, high = wilson_interval(successes, episodes)
    return {"successes": successes, "success_rate": successes / episodes, "ci95_low": low, "ci95_high": high}


# ---------------------------------------------------------------- reading the folders
@dataclass(frozen=True)
class Cell:
    """One suite (or suite x family) of one folder: episode success by seed, and its scenes' env options."""

    suite: str  # the subfolder of a benchmark folder; "" for an eval folder's own results.json
    family: str | None
    success: dict[int, bool]  # seed -> success
    env_options: Any
    policy: str  # the policy's label in results.json
    suite_name: str  # the suite's name in results.json (what an eval folder's cell is called)

    @property
    def key(self) -> tuple[str, str | None]:
        """What pairs a cell of A with one of B."""
        return self.suite, self.family

    @property
    def label(self) -> str:
        return "/".join(part for part in (self.suite or self.suite_name, self.family) if part)


def read_results(path: Path) -> dict[str, Any]:
    """A results.json with a per_episode list of {seed: int, success: bool, ...}; CompareError otherwise."""
    if not path.is_file():
        raise CompareError(f"{path}: no such file")
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompareError(f"{path}: not a readable results file ({e})") from None
    rows = results.get("per_episode") if isinstance(results, dict) else None
    if not isinstance(rows, list) or not rows:
        raise CompareError(f"{path}: no per_episode list (is it an `rt1-sim eval` results.json?)")
    for row in rows:
        ok = isinstance(row, dict) and type(row.get("seed")) is int and row.get("success") in (True, False)
        if not ok:
            raise CompareError(
                f"{path}: per_episode row {row!r} lacks an integer seed or a true/false success"
            )
    return results


def cells_of_results(results: Mapping[str, Any], suite: str, path: Path) -> list[Cell]:
    """The cells of one results.json: one, or one per `family` when its rows carry several (a `mix` suite)."""
    config = results.get("config") if isinstance(results.get("config"), dict) else {}
    policy = results.get("policy") if isinstance(results.get("policy"), dict) else {}
    by_family: dict[str | None, dict[int, bool]] = {}
    for row in results["per_episode"]:
        seeds = by_family.setdefault(row.get("family"), {})
        if row["seed"] in seeds:
            raise CompareError(f"{path}: seed {row['seed']} appears twice in per_episode")
        seeds[row["seed"]] = bool(row["success"])
    if len(by_family) == 1:  # one family (or none): the suite is the cell
        by_family = {None: next(iter(by_family.values()))}
    return [
        Cell(
            suite,
            family,
            success,
            config.get("env_options"),
            str(policy.get("label", "?")),
            str(config.get("name", "all")),
        )
        for family, success in sorted(by_family.items(), key=lambda item: str(item[0]))
    ]


def load_cells(folder: Path) -> dict[tuple[str, str | None], Cell]:
    """Every cell of an eval folder (a results.json) or of a benchmark folder (suite subfolders with one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CompareError(f"{folder}: no such folder")
    if (folder / RESULTS_FILE).exists():
        sources = [("", folder / RESULTS_FILE)]
    else:
        # Suite subfolders at any depth (`rt1-sim benchmark` writes <split>/<family>/), but not the
        # benchmark's re-runs of single example episodes.
        found = sorted(
            p for p in folder.rglob(RESULTS_FILE) if EXAMPLES_DIR not in p.relative_to(folder).parts
        )
        sources = [(p.parent.relative_to(folder).as_posix(), p) for p in found]
    if not sources:
        raise CompareError(
            f"{folder}: no {RESULTS_FILE} (an eval folder) and no suite subfolder with one "
            "(a benchmark folder)"
        )
    cells = [cell for suite, path in sources for cell in cells_of_results(read_results(path), suite, path)]
    return {cell.key: cell for cell in cells}


# ---------------------------------------------------------------- pairing
def check_pairable(a: Mapping[Any, Cell], b: Mapping[Any, Cell], folder_a: Path, folder_b: Path) -> None:
    """CompareError unless A and B hold the same cells, each on the same seeds and the same scenes."""
    both = f"{folder_a} (A) and {folder_b} (B)"
    if set(a) != set(b):
        only_a = sorted(a[k].label for k in set(a) - set(b))
        only_b = sorted(b[k].label for k in set(b) - set(a))
        raise CompareError(
            f"{both} do not hold the same suites/families: only in A {only_a}, only in B {only_b}"
        )
    for key, cell in a.items():
        seeds_a, seeds_b = set(cell.success), set(b[key].success)
        if seeds_a != seeds_b:
            side, seed = ("A", min(seeds_a - seeds_b)) if seeds_a - seeds_b else ("B", min(seeds_b - seeds_a))
            raise CompareError(
                f"{both} were not run on the same seeds: in {cell.label}, seed {seed} is only in {side} "
                f"(A has {len(seeds_a)} seeds, B {len(seeds_b)}); compare runs of the same suite"
            )
        if cell.env_options != b[key].env_options:
            raise CompareError(
                f"{both} ran {cell.label} with different env_options ({cell.env_options} vs "
                f"{b[key].env_options}): the same seeds are not the same scenes"
            )


def compare_cell(a: Cell, b: Cell, alpha: float) -> dict[str, Any]:
    """The paired comparison of one cell (same seeds on both sides)."""
    seeds = sorted(a.success)
    only_a = sum(a.success[s] and not b.success[s] for s in seeds)
    only_b = sum(b.success[s] and not a.success[s] for s in seeds)
    rate_a = rate(sum(a.success.values()), len(seeds))
    rate_b = rate(sum(b.success.values()), len(seeds))
    p_value = mcnemar_exact_p(only_a, only_b)
    return {
        "cell": a.label,
        "suite": a.suite,
        "family": a.family,
        "episodes": len(seeds),
        "a": rate_a,
        "b": rate_b,
        "difference": rate_b["success_rate"] - rate_a["success_rate"],  # B - A
        "only_a": only_a,  # b: seeds A solved and B did not
        "only_b": only_b,  # c: seeds B solved and A did not
        "p_value": p_value,
        "verdict": verdict(only_a, only_b, p_value, alpha),
    }


def compare(folder_a: str | Path, folder_b: str | Path, alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    """Compare two eval/benchmark folders cell by cell (what compare.json holds)."""
    if not 0.0 < alpha < 1.0:
        raise CompareError(f"--alpha must be in (0, 1), got {alpha}")
    folder_a, folder_b = Path(folder_a), Path(folder_b)
    a, b = load_cells(folder_a), load_cells(folder_b)
    check_pairable(a, b, folder_a, folder_b)
    keys = sorted(a, key=lambda k: (k[0], str(k[1])))
    return {
        "a": {"folder": str(folder_a), "policy": sorted({c.policy for c in a.values()})},
        "b": {"folder": str(folder_b), "policy": sorted({c.policy for c in b.values()})},
        "test": TEST_NAME,
        "alpha": alpha,
        "cells": [compare_cell(a[k], b[k], alpha) for k in keys],
    }


# ---------------------------------------------------------------- report
def _percent(block: Mapping[str, Any]) -> str:
    return f"{block['success_rate']:.1%} ({block['ci95_low']:.1%}-{block['ci95_high']:.1%})"


def to_markdown(report: Mapping[str, Any]) -> str:
    """The comparison as a short markdown document: which folder is A and B, then one table row per cell."""
    lines = [
        f"A: `{report['a']['folder']}` (policy {', '.join(report['a']['policy'])})  ",
        f"B: `{report['b']['folder']}` (policy {', '.join(report['b']['policy'])})  ",
        f"Paired by seed; {report['test']}, alpha {report['alpha']:g}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for c in report["cells"]:
        lines.append(
            f"| {c['cell']} | {c['episodes']} | {_percent(c['a'])} | {_percent(c['b'])} | "
            f"{c['difference']:+.1%} | {c['only_a']} | {c['only_b']} | {c['p_value']:.4g} | {c['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def check_out(out: Path, overwrite: bool = False) -> list[Path]:
    """What --overwrite replaces in `out` (reads only): a new or empty folder, or with `overwrite` one whose
    compare.json is a report this command wrote, with its compare.md; any other file is someone else's (a
    compare.md of one's own, an eval run's results) and refuses the folder even with `overwrite`."""
    try:
        written = json.loads((Path(out) / COMPARE_JSON).read_text()).get("test") == TEST_NAME
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        written = False
    return prepare_folder(out, "--out", (COMPARE_JSON, COMPARE_MD) if written else (), overwrite)


def write_report(report: Mapping[str, Any], out: Path, overwrite: bool = False) -> None:
    """compare.json and compare.md into `out` (`check_out`'s rule), each written atomically."""
    make_folder(out, "--out", check_out(out, overwrite))
    atomic_write_text(out / COMPARE_JSON, json.dumps(report, indent=1) + "\n")
    atomic_write_text(out / COMPARE_MD, to_markdown(report))


# ---------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, help="eval output folder (results.json) or benchmark folder: A")
    parser.add_argument("b", type=Path, help="the same for B, run on the same seeds")
    parser.add_argument(
        "--alpha", type=float, default=DEFAULT_ALPHA, help=f"significance level (default {DEFAULT_ALPHA})"
    )
    parser.add_argument(
        "--out", type=Path, help="also write compare.json and compare.md into this folder, new or empty"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier comparison in --out instead of refusing"
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.out is not None:
            check_out(args.out, args.overwrite)  # first: a refused folder is named before any reading
        report = compare(args.a, args.b, args.alpha)
        if args.out is not None:
            write_report(report, args.out, args.overwrite)
    except (UserError, OSError) as e:
        print(f"rt1-sim compare: error: {e}", file=sys.stderr)
        return 2
    print(to_markdown(report), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m rt1_sim.compare A B`."""
    parser = argparse.ArgumentParser(prog="python -m rt1_sim.compare", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
