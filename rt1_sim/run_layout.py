"""What a run folder holds: the file and folder names that `train`, `eval` and `benchmark` write and that
`plot` and `compare` read. The standard library only, so reading a finished run imports no torch and no
simulator.

    <train run>/  train_config.json  train.log  metrics.csv  tensorboard/  checkpoint_last.pt
                  checkpoint_best.pt  learning_curve.png  eval/epoch_<E>/<an eval run>
    <eval run>/   results.json  episodes.csv  eval.log  videos/
    <collection>/ collect_config.json  Panda_<family>/<a dataset folder>
    <benchmark>/  benchmark_settings.json  benchmark.json  benchmark.md  report.html  examples/
                  <split>/<family>/<an eval run>
"""

from __future__ import annotations

import math
from pathlib import Path

# ---------------------------------------------------------------- a training run (log_dir/run_name)
TRAIN_CONFIG_FILE = "train_config.json"  # the resolved config
TRAIN_LOG_FILE = "train.log"
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
LAST_CHECKPOINT = "checkpoint_last.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"
CURVE_FILE = "learning_curve.png"  # rt1-sim plot
EVAL_DIR = "eval"  # the closed-loop evaluations, one eval run per epoch_<E>
# What a training run writes into its folder: what --overwrite may replace.
TRAIN_RUN_ENTRIES = (
    TRAIN_CONFIG_FILE,
    TRAIN_LOG_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    LAST_CHECKPOINT,
    BEST_CHECKPOINT,
    EVAL_DIR,
    CURVE_FILE,
)

# ---------------------------------------------------------------- a collection (rt1-sim collect --out)
COLLECT_CONFIG_FILE = "collect_config.json"  # what the collection was: the next run resumes it or is refused

# ---------------------------------------------------------------- an evaluation run
RESULTS_FILE = "results.json"  # written last: an eval folder without it did not finish
EPISODES_FILE = "episodes.csv"
EVAL_LOG_FILE = "eval.log"
VIDEO_DIR = "videos"

# ---------------------------------------------------------------- a benchmark run
BENCHMARK_SETTINGS_FILE = "benchmark_settings.json"  # written first: what the folder's (unfinished) run is
BENCHMARK_FILE = "benchmark.json"
TABLE_FILE = "benchmark.md"
REPORT_FILE = "report.html"
EXAMPLES_DIR = "examples"


def eval_folder(run_dir: Path, epoch: float) -> Path:
    """eval/epoch_<E> of a training run: E is the whole epoch count after a whole epoch, else the fractional
    epoch truncated to six decimals (truncated, so that an evaluation just before an epoch's end never takes
    that end's name)."""
    whole = math.floor(epoch)
    micro = math.floor((epoch - whole) * 1_000_000)
    name = f"{whole}" if epoch == whole else f"{whole}.{max(micro, 1):06d}".rstrip("0")
    return run_dir / EVAL_DIR / f"epoch_{name}"
