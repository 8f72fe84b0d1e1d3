"""The whole path from the command line, as a user types it: collect 2 episodes, train a few steps, evaluate
the checkpoint for 1 episode, plot the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd


def rt1_sim(*args: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "rt1_sim.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"rt1-sim {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_collect_train_evaluate_from_the_command_line(tmp_path: Path) -> None:
    rt1_sim("collect", "--out", "data", "--episodes", "2", "--workers", "1", "--seed", "0", cwd=tmp_path)
    config = tmp_path / "smoke.json"
    config.write_text(
        json.dumps(
            {
                "data_path": "data",
                "log_dir": "runs",
                "run_name": "smoke",
                "preset": "micro",
                "device": "cpu",
                "batch_size": 4,
                "epochs": 1,
                "max_steps": 3,
                "num_val_episode": 1,
                "progress": False,
            }
        )
    )
    summary = json.loads(rt1_sim("train", "--config", str(config), cwd=tmp_path).strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["val/loss"] > 0
    run = tmp_path / "runs" / "smoke"
    assert {"checkpoint_last.pt", "checkpoint_best.pt", "train_config.json", "metrics.csv"} <= {
        p.name for p in run.iterdir()
    }
    out = rt1_sim(
        "eval",
        "--policy",
        str(run / "checkpoint_last.pt"),
        "--episodes",
        "1",
        "--workers",
        "1",
        "--set",
        "max_steps=5",
        "--video",
        "all",
        "--out",
        "eval",
        cwd=tmp_path,
    )
    assert "success" in out
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["episodes"] == 1 and results["per_episode"][0]["steps"] <= 5
    assert len(pd.read_csv(tmp_path / "eval" / "episodes.csv")) == 1
    assert len(list((tmp_path / "eval").rglob("*.mp4"))) == 1
    rt1_sim("plot", str(run), cwd=tmp_path)
    assert (run / "learning_curve.png").stat().st_size > 1000
