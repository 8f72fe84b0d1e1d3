"""What a run logs: metrics.csv with fixed, namespaced columns (`train/...`, `val/...`, `eval/...`),
TensorBoard scalars when installed, and the running sums between two train rows."""

from __future__ import annotations

import csv
import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from tqdm import tqdm

from envs.spaces import ACTION_TABLE, CAMERA_NAMES, RESULTS_COLUMNS
from rt1_sim.distributed import Distributed
from rt1_sim.files import disk_full_as_error
from rt1_sim.model.keypoints import KEYPOINT_NAMES
from rt1_sim.model.state_head import STATE_NAMES
from rt1_sim.run_layout import METRICS_FILE, TENSORBOARD_DIR

log = logging.getLogger(__name__)


# With the state head (aux_state_weight > 0): its validation error in metres per position, and its loss.
STATE_COLUMNS = [f"val/state_error_m/{name}" for name in STATE_NAMES]
# With keypoint maps: the distance between each map's expected pixel and its label, per camera and keypoint.
KEYPOINT_COLUMNS = [
    f"val/keypoint_error_px/{view}/{name}" for view in CAMERA_NAMES for name in KEYPOINT_NAMES
]


# Per-dimension names are the dataset's columns (ee_command_position_x, ...), per-block ones the table's.
VAL_COLUMNS = (
    ["val/loss", "val/token_acc", "val/loss_blank_instruction", "val/loss_other_images"]
    + [f"val/token_acc/{c}" for c in RESULTS_COLUMNS]
    + [f"val/action_mae/{d.name}" for d in ACTION_TABLE]
    + STATE_COLUMNS
    + KEYPOINT_COLUMNS
)


TRAIN_COLUMNS = [
    "train/loss",
    "train/token_acc",
    "train/lr",
    "train/samples_per_s",
    "train/state_loss",
    "train/keypoint_loss",
]


EVAL_COLUMNS = ["eval/success_rate", "eval/ci95_low", "eval/ci95_high"]


METRIC_COLUMNS = ["step", "epoch", "time_s", *TRAIN_COLUMNS, *VAL_COLUMNS, *EVAL_COLUMNS]


class MetricsLog:
    """metrics.csv (fixed columns, namespaced keys) and TensorBoard scalars when installed; rank 0 only."""

    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool) -> None:
        self.path = run_dir / METRICS_FILE
        with disk_full_as_error(self.path):
            if resume_step is not None and self.path.is_file():
                # Rows logged after the checkpoint we resume from are redone: drop them.
                old = pd.read_csv(self.path)
                # (a run from before a column existed gets that column empty)
                kept = old[old["step"] <= resume_step].reindex(columns=METRIC_COLUMNS)
                kept.to_csv(self.path, index=False)
            new = not self.path.is_file()
            self.file = open(self.path, "a", newline="")  # noqa: SIM115  (kept open; close() closes it)
            self.csv = csv.DictWriter(self.file, fieldnames=METRIC_COLUMNS)
            if new:
                self.csv.writeheader()
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("TensorBoard is not installed: metrics go to %s only", self.path)
            else:
                self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=resume_step)

    def write(self, row: dict[str, Any]) -> None:
        with disk_full_as_error(self.path):
            self.csv.writerow(row)
            self.file.flush()
        if self.writer is not None:
            for key, value in row.items():
                if "/" in key and value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


class MetricWindow:
    """Running sums of the train metrics between two log rows, kept on the device (no sync per step)."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(
            6, dtype=torch.float64, device=device
        )  # loss (per step), hits, tokens, samples, state loss, keypoint loss (per step)
        self.steps = 0
        self.start = time.perf_counter()
        self.has_aux = False
        self.has_keypoints = False

    def add(
        self,
        loss: torch.Tensor,
        hits: torch.Tensor,
        tokens: int,
        samples: int,
        aux: torch.Tensor | None,
        keypoints: torch.Tensor | None = None,
    ) -> None:
        self.sums[0] += loss.detach().double()
        if aux is not None:
            self.sums[4] += aux.detach().double()
            self.has_aux = True
        if keypoints is not None:
            self.sums[5] += keypoints.detach().double()
            self.has_keypoints = True
        self.sums[1] += hits.sum()
        self.sums[2] += tokens
        self.sums[3] += samples
        self.steps += 1

    def collect(self, job: Distributed) -> dict[str, float]:
        """Mean loss and token accuracy since the last call (all ranks), samples/s of the whole job."""
        if job.enabled:
            dist.all_reduce(self.sums)
        loss, hits, tokens, samples, aux, keypoints = self.sums.tolist()
        out = {
            "train/loss": loss / (self.steps * job.world_size),
            "train/token_acc": hits / max(tokens, 1.0),
            "train/samples_per_s": samples / (time.perf_counter() - self.start),
        }
        if self.has_aux:
            out["train/state_loss"] = aux / (self.steps * job.world_size)
        if self.has_keypoints:
            out["train/keypoint_loss"] = keypoints / (self.steps * job.world_size)
        self.sums.zero_()
        self.steps = 0
        self.start = time.perf_counter()
        return out


def show_metrics(bar: tqdm, metrics: dict[str, float]) -> None:
    bar.set_postfix(
        loss=f"{metrics['train/loss']:.3f}",
        lr=f"{metrics['train/lr']:.2e}",
        samples_s=f"{metrics['train/samples_per_s']:.1f}",
        refresh=False,
    )
