"""What used to mislead or pass silently: each now says what is true, or refuses with one line."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rt1_sim.cli import USER_ERROR_STATUS, main
from rt1_sim.config import TrainConfig
from rt1_sim.config_loader import config_from_dict
from rt1_sim.data.episodes import read_episode
from rt1_sim.distributed import Distributed
from rt1_sim.errors import ConfigError, DatasetError, PlotError
from rt1_sim.eval import harness
from rt1_sim.plot import read_metrics
from rt1_sim.pool import WORKER_DIED, WorkerDied, worker_pool
from rt1_sim.train import loop as train_loop
from rt1_sim.train import select_device, train

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def tiny_train(data: Any, log_dir: Path, **keys: Any) -> TrainConfig:
    """A micro run at 32x32 on `data` (a folder or a list of folders), bit-exact on CPU."""
    return config_from_dict(
        TrainConfig,
        {
            "data_path": data,
            "log_dir": str(log_dir),
            "device": "cpu",
            "preset": "micro",
            "batch_size": 8,
            "epochs": 1,
            "instruction_encoder": "hash",
            "frame_cache": "memory",
            "tensorboard": False,
            "progress": False,
            "deterministic": True,
            "network_configs": {"image_height": 32, "image_width": 32, "crop_size": 28},
            **keys,
        },
        "test",
    )


# ---------------------------------------------------------------- a worker that dies
def _die(_: int) -> None:
    import os

    os._exit(3)


def _nothing() -> None:
    pass


def test_a_dead_worker_promises_no_rerun_the_pool_cannot_know_about() -> None:
    with worker_pool(2, _nothing, (), _nothing) as imap, pytest.raises(WorkerDied) as died:
        list(imap(_die, range(4)))
    assert str(died.value) == WORKER_DIED and "re-run" not in str(died.value)


def test_after_an_eval_worker_dies_the_advice_given_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """eval's folder is never resumed: "re-run the same command" was refused; the advice now is --overwrite,
    and that command runs."""
    real_pool = harness.worker_pool

    @contextlib.contextmanager
    def dying_pool(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real_pool(*args, **kwargs):  # its workers start as they would

            def imap_then_die(fn: Any, items: Any) -> Iterator[Any]:
                yield from ()
                raise WorkerDied(WORKER_DIED)  # what imap raises when a worker process dies

            yield imap_then_die

    out = tmp_path / "e"
    argv = ["eval", "--policy", "scripted", "--episodes", "1", "--out", str(out), "--workers", "1"]
    monkeypatch.setattr(harness, "worker_pool", dying_pool)
    assert main(argv) == USER_ERROR_STATUS
    err = capsys.readouterr().err
    assert "worker process died" in err and "--overwrite" in err and "re-run the same command" not in err
    monkeypatch.setattr(harness, "worker_pool", real_pool)
    assert main(argv) == USER_ERROR_STATUS  # the same command: refused, as the old advice never knew
    assert "already holds" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "results.json").is_file()


# ---------------------------------------------------------------- plot
@pytest.mark.parametrize(
    ("row", "said"),
    [
        ("3,0.75,2.0,oops,,,,", "'oops' in column 'train/loss'"),
        ("3,0.75", "has 2 fields, the header 8"),
        ("3,,2.0,5.0,,,,", "line 3 has no epoch"),
    ],
)
def test_a_malformed_metrics_row_is_one_line_from_plot(tmp_path: Path, row: str, said: str) -> None:
    header = "step,epoch,time_s,train/loss,train/token_acc,train/lr,val/loss,eval/success_rate"
    (tmp_path / "metrics.csv").write_text(f"{header}\n1,0.25,1.0,5.5,0.1,0.001,,\n{row}\n")
    with pytest.raises(PlotError, match=said.replace("(", r"\(")):
        read_metrics(tmp_path)


# ---------------------------------------------------------------- benchmark scripts
@pytest.mark.parametrize(
    ("script", "option"),
    [
        ("env_speed.py", "--steps"),
        ("env_speed.py", "--rounds"),
        ("inference_latency.py", "--steps"),
        ("train_step_options.py", "--steps"),
        ("train_throughput.py", "--steps"),
        ("train_memory.py", "--steps"),
    ],
)
def test_benchmark_scripts_refuse_negative_counts(script: str, option: str) -> None:
    cmd = [sys.executable, str(BENCHMARKS / script), option, "-5", "--json", "--source", "x"]
    if script != "train_memory.py":
        cmd = cmd[:-2]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and f"argument {option}: must be >= 1, got -5" in proc.stderr, proc.stderr
    assert "{" not in proc.stdout  # no rate reported


# ---------------------------------------------------------------- datasets
def test_one_folder_listed_twice_in_data_path_is_refused_naming_both(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    again = f"{tiny_dataset.parent}/./{tiny_dataset.name}/"
    cfg = tiny_train([str(tiny_dataset), again], tmp_path)
    with pytest.raises(ConfigError, match="are the same folder") as refused:
        train(cfg, select_device("cpu", Distributed()))
    assert str(tiny_dataset) in str(refused.value) and again in str(refused.value)
    assert not any(tmp_path.iterdir())


def test_a_missing_csv_in_another_view_is_refused_naming_it(tiny_dataset: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    missing = data / "wrist" / "data_001" / "results_raw.csv"
    missing.unlink()
    with pytest.raises(DatasetError, match=r"wrist/data_001: missing results_raw.csv"):
        read_episode(data, ("front", "wrist"), 1)
    read_episode(data, ("front",), 1)  # a run on the front camera alone does not need it


# ---------------------------------------------------------------- resume and the logged loss
class _Killed(Exception):
    pass


def test_the_first_loss_logged_after_a_resume_averages_the_same_steps(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """checkpoint_every_steps=3, a row every 4 steps: killed after step 4, resumed from step 3. The row at
    step 4 averaged only step 4 after the resume, steps 1-4 without one; a row at every checkpoint makes both
    runs average the same steps (weights bit-exact either way)."""
    keys = {"max_steps": 6, "log_every_steps": 4, "checkpoint_every_steps": 3}
    device = select_device("cpu", Distributed())
    train(tiny_train(str(tiny_dataset), tmp_path, run_name="whole", **keys), device)
    real_step = train_loop.train_step

    def step_then_kill(t: Any, batch: Any) -> Any:
        if t.state.step == 4:
            raise _Killed
        return real_step(t, batch)

    monkeypatch.setattr(train_loop, "train_step", step_then_kill)
    with pytest.raises(_Killed):
        train(tiny_train(str(tiny_dataset), tmp_path, run_name="part", **keys), device)
    monkeypatch.setattr(train_loop, "train_step", real_step)
    checkpoint = tmp_path / "part" / "checkpoint_last.pt"
    resumed = tiny_train(
        str(tiny_dataset), tmp_path, resume=True, resume_from_checkpoint=str(checkpoint), **keys
    )
    train(resumed, device)

    def losses(run: str) -> dict[int, float]:
        rows = pd.read_csv(tmp_path / run / "metrics.csv").dropna(subset=["train/loss"])
        return dict(zip(rows["step"], rows["train/loss"], strict=True))

    whole, part = losses("whole"), losses("part")
    assert sorted(whole) == sorted(part) and 4 in whole and 6 in whole
    assert whole == part
