"""What an evaluation reports: results.json, episodes.csv, the report's summary line, a recording's metadata.

results.json holds the LeRobot-like aggregate, the per-variation breakdown, per-episode rows, the config, the
checkpoint and the versions; everything is deterministic for a suite except its `timing` block."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

import rt1_sim
from envs.spaces import CAMERA_NAMES
from rt1_sim.config import EvalConfig
from rt1_sim.config_loader import config_to_dict
from rt1_sim.data.episodes import RECORD_CONFIG_FILE, commit_episode, staging_dirs, write_dataset_info
from rt1_sim.eval.policy_choice import PolicyChoice
from rt1_sim.eval.stats import breakdown, rate_block
from rt1_sim.files import atomic_write_text
from rt1_sim.run_layout import EPISODES_FILE, RESULTS_FILE

# Columns of every episode row. The task's own numbers at the end (`info["task_metrics"]`, as METRIC_PREFIX +
# name) follow "steps"; the env's variation() keys come between these and "video".
ROW_COLUMNS = (
    "seed",
    "success",
    "success_once",
    "steps",
    "end_reason",
    "instruction",
    "policy_instruction",
)
METRIC_PREFIX = "final_"
RENDERER = "pybullet ER_TINY_RENDERER (CPU)"  # what envs/sim.py renders every camera with


@dataclass(frozen=True)
class EvalReport:
    """What `evaluate` measured; `results` is exactly the content of results.json."""

    results: dict[str, Any]
    out: Path

    @property
    def success_rate(self) -> float:
        return self.results["success_rate"]

    @property
    def per_episode(self) -> list[dict[str, Any]]:
        return self.results["per_episode"]

    def summary(self) -> str:
        """One line a person can paste: suite, policy, successes, rate with its interval, speed."""
        r, t = self.results, self.results["timing"]
        return (
            f"{r['config']['name']} suite, policy {r['policy']['label']}: {r['successes']}/{r['episodes']} "
            f"success = {r['success_rate']:.1%} (Wilson 95% CI {r['ci95_low']:.1%}-{r['ci95_high']:.1%}), "
            f"success_once {r['success_once']:.1%}, {r['mean_steps']:.1f} mean steps; "
            f"{t['episodes_per_minute']:.1f} episodes/min with {t['workers']} worker(s) x "
            f"{t['world_size']} process(es); {self.out / RESULTS_FILE}"
        )


def variation_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The env's variation keys, in order of first appearance over all rows (families of a `mix` suite
    describe their episodes with different keys)."""
    names: dict[str, None] = {}
    for row in rows:
        names.update((k, None) for k in row if k not in ROW_COLUMNS and k != "video" and not _metric(k))
    return list(names)


def metric_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The task-metric columns (`final_<name>`), in order of first appearance over all rows."""
    names: dict[str, None] = {}
    for row in rows:
        names.update((k, None) for k in row if _metric(k))
    return list(names)


def _metric(key: str) -> bool:
    return key.startswith(METRIC_PREFIX)


def episode_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """episodes.csv's columns: ROW_COLUMNS with the task metrics after "steps", variation keys, "video"."""
    at = ROW_COLUMNS.index("steps") + 1
    return [*ROW_COLUMNS[:at], *metric_names(rows), *ROW_COLUMNS[at:], *variation_names(rows), "video"]


def versions() -> dict[str, Any]:
    """Software that can change results (rendering drifts between simulator versions); never imports torch."""
    import pybullet  # imported (quietly: envs/quiet.py) by envs already

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "rt1_sim": rt1_sim.__version__,
        "python": platform.python_version(),
        "pybullet": version("pybullet"),
        "pybullet_api": pybullet.getAPIVersion(),
        "renderer": RENDERER,
        "torch": version("torch"),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
    }


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_results(
    config: EvalConfig,
    source: str,
    choice: PolicyChoice,
    rows: list[dict[str, Any]],
    ranges: Mapping[str, tuple[float, float]],
    max_steps: int,
) -> dict[str, Any]:
    """results.json without its timing block: identical for identical suites, whatever the workers.
    `max_steps` is the episode limit used (the suite's, or the env's registered one when the suite sets
    none)."""
    n = len(rows)
    successes = sum(r["success"] for r in rows)
    steps = [r["steps"] for r in rows]
    rate = rate_block(successes, n)
    aggregated = {
        **rate,
        "pc_success": 100.0 * rate["success_rate"],
        "success_at_end": rate["success_rate"],
        "success_once": sum(r["success_once"] for r in rows) / n,
        "mean_steps": float(np.mean(steps)),
        "median_steps": float(np.median(steps)),
    }
    checkpoint = choice.checkpoint
    policy = {
        "name": config.policy.name,
        "kind": choice.kind,
        "label": choice.label,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_sha256": sha256(checkpoint) if checkpoint is not None else None,
    }
    headline = ("success_rate", "ci95_low", "ci95_high", "episodes", "successes", "success_at_end")
    return {
        **{k: aggregated[k] for k in headline},
        "success_once": aggregated["success_once"],
        "mean_steps": aggregated["mean_steps"],
        "median_steps": aggregated["median_steps"],
        "max_steps": max_steps,
        "aggregated": aggregated,
        "per_variation": breakdown(rows, variation_names(rows), ranges),
        "policy": policy,
        "config": config_to_dict(config),
        "config_file": source,
        "versions": versions(),
        "per_episode": rows,
    }


def write_results(out: Path, results: dict[str, Any]) -> None:
    """results.json and episodes.csv into the run folder, atomically."""
    rows = results["per_episode"]
    atomic_write_text(out / RESULTS_FILE, json.dumps(results, indent=1) + "\n")
    table = pd.DataFrame(rows, columns=episode_columns(rows))
    atomic_write_text(out / EPISODES_FILE, table.to_csv(index=False, float_format="%.6g"))


def commit_recording(record: Path, rows: Sequence[dict[str, Any]], results: dict[str, Any]) -> None:
    """Make the staged episodes visible as data_000, data_001, ... in seed order, then list their lengths."""
    for index, row in enumerate(rows):
        commit_episode(record, CAMERA_NAMES, staging_dirs(record, CAMERA_NAMES, f"seed{row['seed']}"), index)
    write_dataset_info(record, CAMERA_NAMES, [row["steps"] for row in rows])
    meta = {k: results[k] for k in ("config", "config_file", "policy", "versions")}
    atomic_write_text(record / RECORD_CONFIG_FILE, json.dumps(meta, indent=1) + "\n")
