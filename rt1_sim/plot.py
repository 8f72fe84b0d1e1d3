"""`rt1-sim plot RUN_DIR`: the learning curve of a training run as a PNG, from its metrics.csv.

Left: training loss (every logged step) and validation loss (every validation) against epoch. Middle:
closed-loop success rate of checkpoint_last with its Wilson 95% interval at every evaluation (runs with
`eval_config`). Right, for a multi-task suite: the success of each task family at every evaluation (from the
run's eval/epoch_<E>/results.json). Needs matplotlib (`pip install -e ".[plot]"`); the file is written
atomically.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pandas as pd

from rt1_sim.errors import OutputError, PlotError, UserError
from rt1_sim.files import atomic_write
from rt1_sim.outputs import check_writable
from rt1_sim.run_layout import CURVE_FILE, EVAL_DIR, METRICS_FILE

RATE_KEYS = ("successes", "episodes", "success_rate")


def read_metrics(run_dir: Path) -> pd.DataFrame:
    path = run_dir / METRICS_FILE
    try:
        metrics = pd.read_csv(path)
    except FileNotFoundError:
        raise PlotError(f"{path}: no such file (is {run_dir} a training run folder?)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise PlotError(f"{path}: not a readable CSV ({e})") from None
    missing = [c for c in ("epoch", "train/loss") if c not in metrics]
    if missing:
        raise PlotError(f"{path}: lacks the column(s) {missing}")
    _check_rows(path, metrics)
    return metrics.apply(pd.to_numeric)


def _check_rows(path: Path, metrics: pd.DataFrame) -> None:
    """Every row has every field (train.MetricsLog writes them all: fewer is a cut or edited row), an
    epoch, and numbers only: pandas would fill a short row with NaN and read a word as a category to draw."""
    with open(path, newline="") as f:
        lines = csv.reader(f)
        width = len(next(lines, []))
        for number, fields in enumerate(lines, start=2):
            if fields and len(fields) != width:
                raise PlotError(
                    f"{path}: line {number} has {len(fields)} fields, the header {width} "
                    "(a cut or edited row)"
                )
    for column in metrics.columns:
        values = pd.to_numeric(metrics[column], errors="coerce")
        bad = values.isna() & metrics[column].notna()
        if bad.any():
            row = int(bad.idxmax())
            raise PlotError(
                f"{path}: line {row + 2} has {metrics[column].iloc[row]!r} in column {column!r}, "
                "not a number (a damaged or edited file)"
            )
    if metrics["epoch"].isna().any():
        raise PlotError(f"{path}: line {int(metrics['epoch'].isna().idxmax()) + 2} has no epoch")


def family_success(run_dir: Path, epochs: pd.Series | None = None) -> pd.DataFrame:
    """Success per task family at each closed-loop evaluation of a multi-task run: columns epoch, family,
    successes, episodes, success_rate; empty when the run's suite has a single family or none. `epochs`: keep
    only the evaluations at these epochs (metrics.csv's rows: a resumed run's abandoned evaluations are not
    plotted)."""
    columns = ["epoch", "family", *RATE_KEYS]
    rows = []
    for results_file in sorted((run_dir / EVAL_DIR).glob("epoch_*/results.json")):
        try:
            epoch = float(results_file.parent.name.removeprefix("epoch_"))
        except ValueError:
            continue  # not a folder the training loop names
        if epochs is not None and not (abs(epochs - epoch) < 1e-5).any():
            continue
        try:
            families = json.loads(results_file.read_text())["per_variation"].get("family", {})
            rows += [
                {"epoch": epoch, "family": name, **{k: families[name][k] for k in RATE_KEYS}}
                for name in families
            ]
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
            raise PlotError(f"{results_file}: not a readable evaluation result ({e!r})") from None
    table = pd.DataFrame(rows, columns=columns)
    if table["family"].nunique() < 2:
        return table.iloc[0:0]
    return table.sort_values(["family", "epoch"], ignore_index=True)


def plot_learning_curve(run_dir: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Draw the run's learning curve; returns the PNG's path (default RUN_DIR/learning_curve.png)."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir)
    out = Path(out) if out is not None else run_dir / CURVE_FILE
    if out.is_dir():
        raise OutputError(f"--out {out}: is a folder; give the PNG file to write (e.g. {out / CURVE_FILE})")
    check_writable(out.parent, f"--out {out}: its folder")
    evaluated = "eval/success_rate" in metrics and metrics["eval/success_rate"].notna().any()
    per_family = (
        family_success(run_dir, metrics.dropna(subset=["eval/success_rate"])["epoch"])
        if evaluated
        else pd.DataFrame()
    )
    panels = 1 + evaluated + (not per_family.empty)
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    loss = axes[0][0]
    train = metrics.dropna(subset=["train/loss"])
    loss.plot(train["epoch"], train["train/loss"], lw=0.8, alpha=0.8, label="training loss")
    val = metrics.dropna(subset=["val/loss"]) if "val/loss" in metrics else metrics.iloc[:0]
    if not val.empty:  # validation runs at each period's end: none yet early in a long epoch
        loss.plot(val["epoch"], val["val/loss"], "o-", label="validation loss")
    loss.set(xlabel="epoch", ylabel="cross-entropy per action token", yscale="log")
    loss.grid(alpha=0.3)
    loss.legend()
    if evaluated:
        success = axes[0][1]
        ev = metrics.dropna(subset=["eval/success_rate"])
        rate = 100 * ev["eval/success_rate"]
        errors = [rate - 100 * ev["eval/ci95_low"], 100 * ev["eval/ci95_high"] - rate]
        success.errorbar(ev["epoch"], rate, yerr=errors, fmt="o-", capsize=3, label="success (Wilson 95%)")
        success.set(xlabel="epoch", ylabel="closed-loop success (%)", ylim=(0, 102))
        success.grid(alpha=0.3)
        success.legend(loc="lower right")
    if not per_family.empty:
        families = axes[0][2]
        for name, group in per_family.groupby("family", sort=False):
            families.plot(group["epoch"], 100 * group["success_rate"], "o-", ms=3, label=name)
        families.set(xlabel="epoch", ylabel="closed-loop success per family (%)", ylim=(0, 102))
        families.grid(alpha=0.3)
        families.legend(loc="lower right", fontsize="small")
    fig.suptitle(title or run_dir.name)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a training run folder (holds metrics.csv)")
    parser.add_argument("--out", help=f"PNG to write (default: RUN_DIR/{CURVE_FILE})")
    parser.add_argument("--title", help="figure title (default: the run folder's name)")


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError('rt1-sim plot needs matplotlib: pip install -e ".[plot]"') from None
    print(plot_learning_curve(args.run_dir, args.out, args.title))
    return 0
