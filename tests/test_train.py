"""Training: IO's config is valid input, a tiny RT-1 overfits tiny data, resume is bit-exact, a 2-process gloo
DDP run follows the single-process loss, train-then-evaluate works, and every bad input is one clear error."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from envs import FAMILIES
from rt1_sim import cli
from rt1_sim.checkpoint import MODEL_KEYS, CheckpointError
from rt1_sim.config import TrainConfig
from rt1_sim.config_loader import load_config
from rt1_sim.data.episodes import DatasetError, read_episode
from rt1_sim.data.windows import split_episodes
from rt1_sim.distributed import Distributed
from rt1_sim.errors import ConfigError, OutputError
from rt1_sim.model.presets import PRESETS
from rt1_sim.outputs import LOCK_FILE
from rt1_sim.plot import PlotError, family_success, plot_learning_curve
from rt1_sim.policy import RT1Policy
from rt1_sim.preprocess import resize_images
from rt1_sim.run_layout import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    METRICS_FILE,
    TRAIN_CONFIG_FILE,
    TRAIN_LOG_FILE,
    eval_folder,
)
from rt1_sim.train import train
from rt1_sim.train.data import build_data
from rt1_sim.train.metrics import METRIC_COLUMNS, MetricsLog
from rt1_sim.train.run_folder import RUN_FOLDER, TRAIN_KEYS

REPO = Path(__file__).resolve().parent.parent
IO_KEYS = (
    "mode device data_path cam_view log_dir time_sequence_length lr batch_size epochs resume "
    "resume_from_checkpoint predicting_next_ts world_size dist_url val_interval num_val_threads "
    "num_eval_threads num_train_episode num_val_episode using_proprioception network_configs "
    "scheduler_configs"
).split()


def tiny_config(tiny_dataset: Path, log_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The micro preset on 32x32 frames (resized once by the cache): a few seconds for a hundred steps."""
    config = {
        "data_path": str(tiny_dataset),
        "log_dir": str(log_dir),
        "preset": "micro",
        "device": "cpu",
        "batch_size": 8,
        "epochs": 2,
        "lr": 3e-3,
        "progress": False,
        "network_configs": {"image_height": 32, "image_width": 32, "crop_size": 28},
    }
    config.update(overrides)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(json.dumps(config))
    return path


def run_train(path: Path, *overrides: str) -> dict[str, Any]:
    return train(load_config(TrainConfig, path, overrides), torch.device("cpu"), config_path=path)


@pytest.fixture(autouse=True)
def _restore_torch_globals() -> Iterator[None]:
    """Training sets process-wide torch state (deterministic algorithms); other tests must not inherit it."""
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- config
def test_io_reference_config_has_every_io_key_and_loads() -> None:
    path = REPO / "train_configs" / "io_reference.json"
    raw = json.loads(path.read_text())
    assert set(IO_KEYS) - {"num_eval_threads"} <= set(raw)  # the README example names it num_val_threads
    cfg = load_config(TrainConfig, path)
    assert cfg.network == PRESETS["paper"].__class__(**{**PRESETS["paper"].to_dict(), "crop_size": 236})
    assert (cfg.scheduler_configs.T_0, cfg.scheduler_configs.verbose, cfg.num_val_threads) == (10, True, 25)
    # IO's code spells the evaluation workers num_eval_threads: both names are accepted.
    assert load_config(TrainConfig, path, ["num_eval_threads=4"]).num_eval_threads == 4


def test_cpu_config_is_the_cpu_preset_on_both_cameras() -> None:
    cfg = load_config(TrainConfig, REPO / "train_configs" / "cpu.json")
    assert cfg.preset == "cpu" and cfg.network == PRESETS["cpu"]
    assert cfg.cam_view == ("front", "wrist") and cfg.time_sequence_length == 6
    assert (cfg.network.image_height, cfg.network.image_width) == (96, 96)


@pytest.mark.parametrize(
    "content, match",
    [
        ({"learning_rate": 1e-3}, "unknown key 'learning_rate'"),
        ({"network_configs": {"num_layer": 2}}, "unknown key 'network_configs.num_layer'"),
        ({"network_configs": {"num_layers": 2.5}}, "'network_configs.num_layers' must be int"),
        ({"scheduler_configs": {"T_0": "ten"}}, "'scheduler_configs.T_0' must be int"),
        ({"batch_size": 2.5}, "'batch_size' must be int"),
        ({"cam_view": "front"}, "'cam_view' must be"),
    ],
)
def test_unknown_key_or_wrong_type_names_the_key_and_the_file(
    tmp_path: Path, content: dict[str, Any], match: str
) -> None:
    path = write_config(tmp_path / "bad.json", content)
    with pytest.raises(ConfigError, match=match) as error:
        load_config(TrainConfig, path)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------- bad inputs
def test_missing_data_path_and_too_few_episodes_are_clear_errors(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_dataset, tmp_path)
    path = write_config(tmp_path / "no_data.json", {k: v for k, v in config.items() if k != "data_path"})
    with pytest.raises(ConfigError, match=f"{path}: data_path is missing"):
        run_train(path)
    path = write_config(tmp_path / "few.json", {**config, "num_train_episode": 4, "num_val_episode": 1})
    with pytest.raises(DatasetError, match="4 training \\+ 1 validation episodes, but the dataset holds 4"):
        run_train(path)
    path = write_config(tmp_path / "nowhere.json", {**config, "data_path": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="data_path .*nowhere: dataset folder does not exist"):
        run_train(path)
    assert not any(tmp_path.glob("*/" + TRAIN_CONFIG_FILE))  # nothing written for a run that could not start


def test_imagenet_weights_that_do_not_fit_are_a_clear_error(tiny_dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_dataset, tmp_path, max_steps=1)
    missing = write_config(
        tmp_path / "missing.json", {**config, "imagenet_weights": str(tmp_path / "b3.pth")}
    )
    with pytest.raises(ConfigError, match=f"{missing}: imagenet_weights .*b3.pth"):
        run_train(missing)
    torch.save({"features.0.0.weight": torch.zeros(1, 1, 1, 1)}, tmp_path / "other.pth")
    other = write_config(tmp_path / "other.json", {**config, "imagenet_weights": str(tmp_path / "other.pth")})
    with pytest.raises(ConfigError, match="do not fit this config"):
        run_train(other)


def test_corrupt_truncated_or_foreign_checkpoint_is_a_clear_error(tiny_dataset: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.json", tiny_config(tiny_dataset, tmp_path, run_name="a", max_steps=1))
    run_train(path)
    good = tmp_path / "a" / LAST_CHECKPOINT
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    for bad, match in [
        (truncated, "not a readable checkpoint"),
        (garbage, "not a readable checkpoint"),
        (tmp_path / "missing.pt", "no such file"),
    ]:
        with pytest.raises(CheckpointError, match=f"{bad}: {match}"):
            run_train(path, "resume=true", f"resume_from_checkpoint={bad}", "run_name=b")
    with pytest.raises(ConfigError, match="network_configs.num_layers: 2 in the checkpoint, 3 now"):
        run_train(path, "resume=true", f"resume_from_checkpoint={good}", "network_configs.num_layers=3")
    # The command line reports the same message and exits with status 2, without a traceback.
    assert (
        cli.main(
            [
                "train",
                "--config",
                str(path),
                "--set",
                "resume=true",
                "--set",
                f"resume_from_checkpoint={garbage}",
            ]
        )
        == 2
    )


# ---------------------------------------------------------------- learning
def test_tiny_model_overfits_one_episode(tiny_dataset: Path, tmp_path: Path) -> None:
    """Loss falls far below its start and greedy train tokens become (almost) all correct; the checkpoint is
    self-describing: weights_only loading, every key, and RT1Policy rebuilds the model from it alone."""
    config = tiny_config(
        tiny_dataset,
        tmp_path,
        run_name="overfit",
        num_train_episode=1,
        batch_size=16,
        epochs=100,
        lr=5e-3,
        augment=False,
        log_every_steps=1,
        scheduler_configs={"T_0": 1000},
        network_configs={"image_height": 32, "image_width": 32, "crop_size": 32},
    )
    summary = run_train(write_config(tmp_path / "overfit.json", config))
    metrics = pd.read_csv(tmp_path / "overfit" / METRICS_FILE)
    start, end = metrics["train/loss"].iloc[0], metrics["train/loss"].iloc[-3:].mean()
    assert end < 0.05 * start, (start, end)
    assert metrics["train/token_acc"].iloc[-3:].mean() > 0.97
    assert summary["steps"] == 100 and set(summary) >= {
        "train/loss",
        "train/token_acc",
        "train/samples_per_s",
    }

    run_dir = tmp_path / "overfit"
    written = {TRAIN_CONFIG_FILE, TRAIN_LOG_FILE, METRICS_FILE, LAST_CHECKPOINT}
    assert {p.name for p in run_dir.iterdir()} == written
    state = torch.load(run_dir / LAST_CHECKPOINT, weights_only=True)
    assert set(MODEL_KEYS + TRAIN_KEYS) <= set(state) and state["step"] == 100
    assert state["config"]["network_configs"]["image_height"] == 32  # the resolved config, every field
    resolved = load_config(TrainConfig, run_dir / TRAIN_CONFIG_FILE)  # the run folder's config is valid input
    assert resolved.network == load_config(TrainConfig, tmp_path / "overfit.json").network
    # The policy brings the env's 96x96 frames to the network's 32x32 as the frame cache brought the
    # dataset's: the same action and logits as for frames resized beforehand.
    episode = read_episode(tiny_dataset, ("front", "wrist"), 0)
    full = [{v: episode.images[v][i] for v in ("front", "wrist")} for i in range(3)]
    small = [{v: resize_images(o[v], (32, 32)) for v in o} for o in full]
    assert full[0]["front"].shape == (96, 96, 3) and small[0]["front"].shape == (32, 32, 3)
    policies = [RT1Policy.from_checkpoint(run_dir / LAST_CHECKPOINT) for _ in range(2)]
    for policy in policies:
        policy.reset(episode.instruction)
    for big, little in zip(full, small, strict=True):
        (a, la), (b, lb) = policies[0].act_with_logits(big), policies[1].act_with_logits(little)
        assert np.array_equal(a, b) and torch.equal(la, lb)


def test_resume_continues_at_the_next_step_bit_exactly(tiny_dataset: Path, tmp_path: Path) -> None:
    """3 steps, then resume to the end (mid-epoch, with dropout and augmentation) == one uninterrupted run."""
    config = tiny_config(
        tiny_dataset,
        tmp_path,
        batch_size=4,
        epochs=2,
        num_train_episode=2,
        num_val_episode=1,
        deterministic=True,
        scheduler_configs={"T_0": 1, "interval": "step"},
        network_configs={"image_height": 32, "image_width": 32, "crop_size": 28, "dropout_rate": 0.1},
    )
    path = write_config(tmp_path / "r.json", config)
    run_train(path, "run_name=whole")
    part = run_train(path, "run_name=part", "max_steps=3")
    assert part["steps"] == 3
    state = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    assert (state["step"], state["epoch"], state["epoch_step"]) == (3, 0, 3)
    resumed = run_train(path, "resume=true", f"resume_from_checkpoint={tmp_path / 'part' / LAST_CHECKPOINT}")
    assert resumed["run_dir"] == str(tmp_path / "part")  # a resumed run continues in its own folder

    whole = torch.load(tmp_path / "whole" / LAST_CHECKPOINT, weights_only=True)
    again = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    assert whole["step"] == again["step"] > 3
    for key, tensor in whole["model"].items():
        assert torch.equal(tensor, again["model"][key]), key
    assert whole["optimizer"]["state"][0]["step"] == again["optimizer"]["state"][0]["step"]
    assert whole["best_val_loss"] == again["best_val_loss"]
    assert (tmp_path / "whole" / BEST_CHECKPOINT).is_file()
    # The metrics file holds each step once: rows after the checkpoint were dropped, then redone.
    steps = pd.read_csv(tmp_path / "part" / METRICS_FILE).dropna(subset=["train/loss"])["step"]
    assert steps.is_unique and steps.max() == whole["step"]


def test_inference_crop_changes_validation_and_the_policy_never_the_training(
    tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """inference_crop "center": the same weights as without it, validation on centred crops (another loss),
    and checkpoints that tell the policy to crop; a resumed run may switch it on."""
    config = tiny_config(
        tiny_dataset, tmp_path, epochs=1, num_train_episode=2, num_val_episode=1, deterministic=True
    )
    path = write_config(tmp_path / "c.json", config)
    full = run_train(path, "run_name=full")
    centre = run_train(path, "run_name=centre", "inference_crop=center")
    assert full["val/loss"] != centre["val/loss"]
    states = {
        name: torch.load(tmp_path / name / LAST_CHECKPOINT, weights_only=True) for name in ("full", "centre")
    }
    for key, tensor in states["full"]["model"].items():
        assert torch.equal(tensor, states["centre"]["model"][key]), key
    assert states["full"]["model_config"]["inference_crop"] == "none"
    assert states["centre"]["model_config"]["inference_crop"] == "center"
    assert RT1Policy.from_checkpoint(tmp_path / "centre" / LAST_CHECKPOINT).model.inference_crop == "center"
    run_train(path, "run_name=part", "max_steps=2")
    resumed = f"resume_from_checkpoint={tmp_path / 'part' / LAST_CHECKPOINT}"
    with caplog.at_level(logging.INFO, logger="rt1_sim.train.checkpoints"):
        run_train(path, "resume=true", resumed, "inference_crop=center")
    assert "checkpoint_best starts over" in caplog.text  # its losses came from full frames
    again = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    assert again["model_config"]["inference_crop"] == "center"
    for key, tensor in states["full"]["model"].items():
        assert torch.equal(tensor, again["model"][key]), key
    with pytest.raises(ConfigError, match="inference_crop must be one of"):
        load_config(TrainConfig, path, ["inference_crop=random"])
    with pytest.raises(ConfigError, match="augment false trains on full frames"):
        load_config(TrainConfig, path, ["inference_crop=center", "augment=false"])


def test_resuming_on_other_data_says_so(
    tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The checkpoint records each folder's window count and action CRC-32: a resume on the same data is
    silent, one on data whose actions changed (a collection on another machine) warns that the remaining
    batches are not the original run's."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    config = tiny_config(data, tmp_path, batch_size=4, epochs=1, num_val_episode=1, run_name="r")
    path = write_config(tmp_path / "d.json", config)
    run_train(path, "max_steps=2")
    checkpoint = tmp_path / "r" / LAST_CHECKPOINT
    assert len(torch.load(checkpoint, weights_only=True)["data_fingerprint"]) == 1
    resume = ("resume=true", f"resume_from_checkpoint={checkpoint}")
    with caplog.at_level(logging.WARNING, logger="rt1_sim.train"):
        run_train(path, *resume, "max_steps=3")
    assert "not what the checkpoint was trained on" not in caplog.text
    for results in data.glob("*/data_000/results.csv"):  # one command of episode 0, in every camera's copy
        table = pd.read_csv(results)
        table.loc[1, "ee_command_position_x"] = -table.loc[1, "ee_command_position_x"] + 0.001
        table.to_csv(results, index=False)
    with caplog.at_level(logging.WARNING, logger="rt1_sim.train"):
        run_train(path, *resume, "max_steps=4")
    assert "the training data is not what the checkpoint was trained on" in caplog.text


def test_evaluations_inside_epochs_change_no_weight_and_a_killed_one_is_redone_on_resume(
    tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """eval_every_steps evaluations (with their forked RNG) leave training bit-identical to a run without
    them; an evaluation a kill cut short (no results.json) runs first when the run resumes."""
    suite = write_config(tmp_path / "suite.json", {"name": "smoke", "episodes": 1, "max_steps": 2})
    config = tiny_config(
        tiny_dataset,
        tmp_path,
        batch_size=4,
        epochs=2,
        num_train_episode=2,
        num_val_episode=1,
        deterministic=True,
        num_eval_threads=1,
        eval_every_steps=2,
        scheduler_configs={"T_0": 1, "interval": "step"},
    )
    path = write_config(tmp_path / "e.json", config)
    run_train(path, "run_name=plain", "eval_every_steps=0")
    part = run_train(path, "run_name=evals", "max_steps=2", f"eval_config={suite}")
    assert part["steps"] == 2
    (folder,) = (tmp_path / "evals" / "eval").iterdir()
    # As if the run had been killed during this evaluation: no results.json, no metrics row.
    (folder / "results.json").unlink()
    metrics = pd.read_csv(tmp_path / "evals" / METRICS_FILE)
    metrics[metrics["eval/success_rate"].isna()].to_csv(tmp_path / "evals" / METRICS_FILE, index=False)
    checkpoint = tmp_path / "evals" / LAST_CHECKPOINT
    with caplog.at_level(logging.INFO, logger="rt1_sim.train"):
        run_train(path, "resume=true", f"resume_from_checkpoint={checkpoint}", f"eval_config={suite}")
    assert "did not finish before the run stopped: running it now" in caplog.text
    assert (folder / "results.json").is_file()
    plain = torch.load(tmp_path / "plain" / LAST_CHECKPOINT, weights_only=True)
    evals = torch.load(checkpoint, weights_only=True)
    assert plain["step"] == evals["step"] > 4
    for key, tensor in plain["model"].items():
        assert torch.equal(tensor, evals["model"][key]), key
    done = sorted(float(p.name.removeprefix("epoch_")) for p in (tmp_path / "evals" / "eval").iterdir())
    length = plain["step"] // 2  # steps per epoch (2 epochs)
    assert length > 2
    # Every 2 steps of each epoch, counted from the epoch's start; the first epoch's end when its length is
    # even, and after the last step.
    assert len(done) == 2 * ((length - 1) // 2) + (length % 2 == 0) + 1
    expected = [e + k / length for e in (0, 1) for k in range(2, length, 2)] + [1.0] * (length % 2 == 0)
    assert np.allclose(sorted(expected + [2.0]), done, atol=1e-5)
    evaluated = pd.read_csv(tmp_path / "evals" / METRICS_FILE).dropna(subset=["eval/success_rate"])
    assert np.allclose(sorted(evaluated["epoch"]), done, atol=1e-5)  # one row per evaluation, none twice


@pytest.mark.parametrize("end", ["epochs=1", "max_steps=2"])  # after the last epoch; inside the first
def test_a_final_evaluation_a_kill_cut_short_is_run_on_resume_and_only_it(
    end: str, tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A complete run whose last closed-loop evaluation never finished resumes to run that evaluation and
    nothing else (no step, no checkpoint written); once it is done the run is finished and refused."""
    suite = write_config(tmp_path / "suite.json", {"name": "smoke", "episodes": 1, "max_steps": 2})
    config = tiny_config(tiny_dataset, tmp_path, run_name="done", num_eval_threads=1, eval_config=str(suite))
    path = write_config(tmp_path / "f.json", config)
    finished = run_train(path, end)
    (folder,) = (tmp_path / "done" / "eval").iterdir()
    for written in folder.iterdir():  # as if killed during it: an empty folder, no metrics row
        written.unlink()
    metrics = pd.read_csv(tmp_path / "done" / METRICS_FILE)
    metrics[metrics["eval/success_rate"].isna()].to_csv(tmp_path / "done" / METRICS_FILE, index=False)
    checkpoint = tmp_path / "done" / LAST_CHECKPOINT
    weights = checkpoint.read_bytes()
    resume = ["resume=true", f"resume_from_checkpoint={checkpoint}", end]
    with caplog.at_level(logging.INFO, logger="rt1_sim.train"):
        summary = run_train(path, *resume)
    assert "did not finish before the run stopped: running it now" in caplog.text
    assert summary["steps"] == finished["steps"] and "eval/success_rate" in summary
    assert (folder / "results.json").is_file() and checkpoint.read_bytes() == weights
    assert [p.name for p in (tmp_path / "done" / "eval").iterdir()] == [folder.name]
    evaluated = pd.read_csv(tmp_path / "done" / METRICS_FILE).dropna(subset=["eval/success_rate"])
    assert len(evaluated) == 1 and evaluated["step"].tolist() == [finished["steps"]]
    with pytest.raises(ConfigError, match=f"nothing left to train .*final evaluation is in {folder}"):
        run_train(path, *resume)
    with pytest.raises(ConfigError, match="nothing left to train"):  # elsewhere: nothing of this run to do
        run_train(path, *resume, "run_name=elsewhere")


def test_eval_folders_never_round_onto_an_epochs_end() -> None:
    run = Path("run")
    assert eval_folder(run, 2.0).name == "epoch_2"
    assert eval_folder(run, 0.25).name == "epoch_0.25"
    assert eval_folder(run, 9.9999999).name == "epoch_9.999999"
    assert eval_folder(run, 3 + 1e-9).name == "epoch_3.000001"


def test_memory_mapped_frames_train_exactly_like_frames_in_memory(
    tiny_dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The same seed gives the same batches and weights whether frames come from the disk cache (read by two
    DataLoader workers) or from memory; the second memory-mapped run reuses the cache the first built."""
    config = tiny_config(
        tiny_dataset,
        tmp_path,
        batch_size=4,
        epochs=1,
        max_steps=5,
        num_train_episode=3,
        num_val_episode=1,
        deterministic=True,
        log_every_steps=1,
        cache_dir=str(tmp_path / "cache"),
    )
    path = write_config(tmp_path / "m.json", config)
    memory = run_train(path, "run_name=memory", "frame_cache=memory")
    with caplog.at_level(logging.INFO, logger="rt1_sim.data.frame_cache"):
        mapped = run_train(path, "run_name=mapped", "frame_cache=memmap", "num_workers=2")
        built = caplog.text
        caplog.clear()
        again = run_train(path, "run_name=again", "frame_cache=memmap")
    assert ": building (no cache yet)" in built and ": reused (dataset unchanged)" in caplog.text
    assert memory["steps"] == mapped["steps"] == again["steps"] == 5
    assert memory["val/loss"] == mapped["val/loss"] == again["val/loss"]
    states = [
        torch.load(tmp_path / run / LAST_CHECKPOINT, weights_only=True)
        for run in ("memory", "mapped", "again")
    ]
    for key, tensor in states[0]["model"].items():
        assert torch.equal(tensor, states[1]["model"][key]) and torch.equal(
            tensor, states[2]["model"][key]
        ), key
    losses = [
        pd.read_csv(tmp_path / run / METRICS_FILE)["train/loss"].dropna().tolist()
        for run in ("memory", "mapped")
    ]
    assert losses[0] == losses[1]


def test_two_process_gloo_ddp_follows_the_single_process_loss(tiny_dataset: Path, tmp_path: Path) -> None:
    """torchrun, 2 CPU processes x batch 4 against 1 process x batch 8: same data, same effective batch."""
    config = tiny_config(
        tiny_dataset,
        tmp_path,
        epochs=3,
        num_train_episode=3,
        num_val_episode=1,
        log_every_steps=1,
        augment=False,
        torch_threads=1,
    )
    path = write_config(tmp_path / "ddp.json", config)
    single = run_train(path, "run_name=single")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "rt1_sim.train",
        "--config",
        str(path),
        "--set",
        "run_name=ddp",
        "--set",
        "batch_size=4",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    ddp = pd.read_csv(tmp_path / "ddp" / METRICS_FILE).dropna(subset=["train/loss"])
    ones = pd.read_csv(tmp_path / "single" / METRICS_FILE).dropna(subset=["train/loss"])
    assert summary["steps"] == single["steps"] == len(ddp) == len(ones)  # same number of steps per epoch
    start, end = ones["train/loss"].iloc[0], ones["train/loss"].iloc[-1]
    assert ddp["train/loss"].iloc[-1] < start - 0.5 * (start - end)  # learns as much, give or take
    np.testing.assert_allclose(ddp["train/loss"], ones["train/loss"], rtol=0.1)
    assert abs(summary["val/loss"] - single["val/loss"]) < 0.1 * single["val/loss"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["ddp", "single"]  # rank 0 wrote alone
    assert len(list((tmp_path / "ddp").glob("*.log"))) == 1


def test_train_then_evaluate_in_one_run(tiny_dataset: Path, tmp_path: Path) -> None:
    suite = write_config(tmp_path / "suite.json", {"name": "smoke", "episodes": 1, "max_steps": 3})
    config = tiny_config(tiny_dataset, tmp_path, run_name="te", max_steps=2, eval_config=str(suite))
    summary = run_train(write_config(tmp_path / "te.json", config))
    assert summary["eval/success_rate"] == 0.0  # 3 steps of an untrained policy pick nothing up
    (evaluated,) = (tmp_path / "te" / "eval").iterdir()  # epoch_<fraction>: stopped inside the first epoch
    assert evaluated.name.startswith("epoch_0.")
    results = json.loads((evaluated / "results.json").read_text())
    assert results["episodes"] == 1 and results["policy"]["label"] == "checkpoint_last"
    assert "eval/success_rate" in pd.read_csv(tmp_path / "te" / METRICS_FILE).dropna(how="all", axis=1)
    png = plot_learning_curve(tmp_path / "te")  # rt1-sim plot: loss and success panels
    with Image.open(png) as image:
        assert image.format == "PNG" and 3 * image.size[1] > image.size[0] > image.size[1] > 100
    assert family_success(tmp_path / "te").empty  # a single-task suite: no per-family panel


def test_plot_of_a_folder_without_metrics_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match=r"metrics\.csv: no such file"):
        plot_learning_curve(tmp_path)
    (tmp_path / METRICS_FILE).write_text("step,time_s\n1,0.5\n")
    with pytest.raises(PlotError, match=r"lacks the column\(s\) \['epoch', 'train/loss'\]"):
        plot_learning_curve(tmp_path)


# ---------------------------------------------------------------- checks before anything is written
def test_resume_refuses_settings_that_change_data_order_split_or_model(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    config = tiny_config(tiny_dataset, tmp_path, run_name="r", epochs=1, num_val_episode=1)
    path = write_config(tmp_path / "r.json", config)
    run_train(path)
    last = tmp_path / "r" / LAST_CHECKPOINT
    resume = ["resume=true", f"resume_from_checkpoint={last}"]
    with pytest.raises(ConfigError) as error:
        run_train(path, *resume, "epochs=2", "batch_size=4", "seed=1", "lr=0.01")
    message = str(error.value)
    for key in ("batch_size: 8 in the checkpoint, 4 now", "seed: 3407 in the checkpoint, 1 now", "lr: 0.003"):
        assert key in message, message
    assert "may change only" in message and "epochs" in message.split("may change only")[1]
    with pytest.raises(ConfigError, match="nothing left to train"):  # not a silent "resume" of a finished run
        run_train(path, *resume)
    before = torch.load(last, weights_only=True)["step"]
    assert run_train(path, *resume, "epochs=2", "log_every_steps=1")["steps"] > before  # these may change


def test_a_new_run_refuses_a_run_folder_that_holds_files(tiny_dataset: Path, tmp_path: Path) -> None:
    """A killed run leaves metrics.csv without a checkpoint: a fresh run must not append to it."""
    path = write_config(tmp_path / "k.json", tiny_config(tiny_dataset, tmp_path, run_name="k", max_steps=1))
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / METRICS_FILE).write_text("step,epoch\n99,9\n")
    with pytest.raises(OutputError, match="already holds metrics.csv.*--overwrite"):
        run_train(path)
    assert cli.main(["train", "--config", str(path)]) == 2
    train(load_config(TrainConfig, path), torch.device("cpu"), config_path=path, overwrite=True)
    assert 99 not in pd.read_csv(tmp_path / "k" / METRICS_FILE)["step"].tolist()


def test_a_second_run_into_a_run_folder_in_use_is_refused_naming_the_first(
    tiny_dataset: Path,
    tmp_path: Path,
    folder_holder: Callable[[Path], subprocess.Popen],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two runs with one run_name (or two resumes of one run) never both train: the second is refused in one
    line naming the folder and the first's PID, whether the first held the folder before the second's checks
    or took it while the second was loading its data; once the first process dies the folder is free."""
    config = tiny_config(tiny_dataset, tmp_path, run_name="same", max_steps=1)
    path = write_config(tmp_path / "c.json", config)
    folder = tmp_path / "same"

    def busy(pid: int) -> str:
        return f"{RUN_FOLDER} {folder}: another rt1-sim run (PID {pid}) is writing into this folder"

    holder = folder_holder(folder)
    with pytest.raises(OutputError, match=re.escape(busy(holder.pid))):
        run_train(path)
    assert cli.main(["train", "--config", str(path), "--overwrite"]) == 2
    error = capsys.readouterr().err.strip()
    assert busy(holder.pid) in error and len(error.splitlines()) == 1
    assert [p.name for p in folder.iterdir()] == [LOCK_FILE]  # nothing written
    holder.kill()
    holder.wait()
    run_train(path)
    assert not (folder / LOCK_FILE).exists()  # released when the run ended

    import rt1_sim.train.loop as loop_module

    real_build, late = loop_module.build, []

    def build_while_another_run_starts(*args: Any, **kwargs: Any) -> Any:
        built = real_build(*args, **kwargs)
        late.append(folder_holder(folder))  # it takes the folder after this run's checks passed
        return built

    monkeypatch.setattr(loop_module, "build", build_while_another_run_starts)
    resume = ["resume=true", f"resume_from_checkpoint={folder / LAST_CHECKPOINT}", "max_steps=2"]
    before = (folder / METRICS_FILE).read_bytes()
    with pytest.raises(OutputError) as refused:
        run_train(path, *resume)
    assert str(refused.value).startswith(busy(late[0].pid))
    assert (folder / METRICS_FILE).read_bytes() == before


def test_run_folder_and_eval_suite_are_checked_before_the_data(tmp_path: Path) -> None:
    """The data path does not exist: the errors below must come first (they are found before loading data)."""
    config = {
        "data_path": str(tmp_path / "no_data"),
        "log_dir": str(tmp_path),
        "preset": "micro",
        "device": "cpu",
    }
    suite = write_config(tmp_path / "suite.json", {"episodes": 1, "env_options": {"num_distractor": 1}})
    path = write_config(tmp_path / "s.json", {**config, "eval_config": str(suite)})
    with pytest.raises(ConfigError, match=r"suite\.json: unknown key 'env_options\.num_distractor'"):
        run_train(path)
    (tmp_path / "afile").write_text("x")
    path = write_config(tmp_path / "f.json", {**config, "log_dir": str(tmp_path / "afile")})
    with pytest.raises(OutputError, match="afile is a file"):
        run_train(path)
    with pytest.raises(ConfigError, match="data_path .*no_data"):  # with both fixed, the data is missing
        run_train(write_config(tmp_path / "ok.json", config))
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["afile", "f.json", "ok.json", "s.json", "suite.json"]


def test_files_get_the_users_umask(tiny_dataset: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        config = tiny_config(tiny_dataset, tmp_path, run_name="m", max_steps=1)
        run_train(write_config(tmp_path / "m.json", config))
    finally:
        os.umask(old)
    assert (tmp_path / "m" / LAST_CHECKPOINT).stat().st_mode & 0o777 == 0o644


def test_smoke_config_fits_twenty_episodes_and_is_suggested_for_small_datasets() -> None:
    cfg = load_config(TrainConfig, REPO / "train_configs" / "smoke.json")
    train_ids, val_ids = split_episodes(20, cfg.num_train_episode, cfg.num_val_episode, cfg.seed)
    assert len(train_ids) == 16 and len(val_ids) == 4 and cfg.eval_episodes <= 10
    bundled = load_config(TrainConfig, REPO / "train_configs" / "cpu.json")
    with pytest.raises(DatasetError, match="num_val_episode=40 leaves none.*train_configs/smoke.json"):
        split_episodes(20, bundled.num_train_episode, bundled.num_val_episode, bundled.seed)


@pytest.mark.parametrize(
    "override, key",
    [
        ("lr=NaN", "'lr' must be a finite number"),
        ("lr=-Infinity", "'lr' must be a finite number"),
        ("network_configs.efficientnet_width_mult=NaN", "efficientnet_width_mult"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"--set {override}.*{key}"):
        load_config(TrainConfig, None, [override])


# ---------------------------------------------------------------- several dataset folders (one per family)
def test_a_root_of_panda_folders_is_split_per_folder(
    tiny_tabletop_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """data_path = a root of Panda_<family> folders: every folder gives num_val_episode validation episodes,
    the run records the folders it resolved, logs a line per folder, and validates on all of them."""
    config = tiny_config(
        tiny_tabletop_root,
        tmp_path,
        run_name="root",
        max_steps=2,
        num_val_episode=1,
        cache_dir=str(tmp_path / "cache"),
        cam_view=["front"],
        time_sequence_length=2,
        torch_threads=1,  # small ops: one thread is faster than two that wait for each other
    )
    path = write_config(tmp_path / "root.json", config)
    with caplog.at_level(logging.INFO, logger="rt1_sim.train"):
        summary = run_train(path)
    folders = [str(tiny_tabletop_root / f"Panda_{f}") for f in sorted(FAMILIES)]
    assert json.loads((tmp_path / "root" / TRAIN_CONFIG_FILE).read_text())["data_path"] == folders
    for f in folders:
        assert f"data {f}: 1 train episodes (" in caplog.text
    assert "data: 6 dataset folders, 6 train episodes" in caplog.text and "6 val episodes" in caplog.text
    assert summary["steps"] == 2 and summary["val/loss"] > 0
    # The validation loss of each folder alone; the whole is their mean weighted by valid steps.
    (line,) = [r.getMessage() for r in caplog.records if "val/loss per dataset folder" in r.getMessage()]
    per_folder = dict(item.rsplit(" ", 1) for item in line.split("folder: ", 1)[1].split(", "))
    assert list(per_folder) == [f"Panda_{f}" for f in sorted(FAMILIES)]
    losses = [float(v) for v in per_folder.values()]
    assert min(losses) - 1e-4 <= summary["val/loss"] <= max(losses) + 1e-4 and len(set(losses)) > 1
    cfg = load_config(TrainConfig, path, ["frame_cache=memory", "num_train_episode=1"])
    data = build_data(cfg, str(path), Distributed())
    val_families = [
        json.loads((Path(f) / "front" / f"data_{part.cache.episodes[0]:03d}" / "episode.json").read_text())
        for f, part in zip(folders, data.val.datasets)
    ]
    assert [m["family"] for m in val_families] == sorted(FAMILIES)  # one validation episode per family
    assert [p.cache.instructions for p in data.val.datasets] == [[m["instruction"]] for m in val_families]


def test_a_list_of_folders_resumes_exactly_and_bad_entries_are_one_error(
    tiny_tabletop_root: Path, tmp_path: Path
) -> None:
    """Two folders: 2 steps + resume + 2 steps == 4 steps (augmentation, dropout, per-folder split), resume
    refuses another data_path; a missing, empty or repeated entry is one ConfigError naming it."""
    folders = [str(tiny_tabletop_root / "Panda_stack"), str(tiny_tabletop_root / "Panda_pick")]
    config = tiny_config(
        tiny_tabletop_root,
        tmp_path,
        data_path=folders,
        batch_size=4,
        max_steps=4,
        num_val_episode=1,
        deterministic=True,
        frame_cache="memory",
        cam_view=["front"],
        time_sequence_length=2,
        torch_threads=1,  # small ops: one thread is faster than two that wait for each other
        network_configs={"image_height": 32, "image_width": 32, "crop_size": 28, "dropout_rate": 0.1},
    )
    path = write_config(tmp_path / "two.json", config)
    run_train(path, "run_name=whole")
    run_train(path, "run_name=part", "max_steps=2")
    last = tmp_path / "part" / LAST_CHECKPOINT
    with pytest.raises(ConfigError, match="data_path: \\[.*Panda_pick.*\\] in the checkpoint"):
        run_train(path, "resume=true", f"resume_from_checkpoint={last}", f"data_path={folders[0]}")
    run_train(path, "resume=true", f"resume_from_checkpoint={last}")
    whole = torch.load(tmp_path / "whole" / LAST_CHECKPOINT, weights_only=True)
    again = torch.load(last, weights_only=True)
    assert whole["step"] == again["step"] == 4 and whole["config"]["data_path"] == folders
    for key, tensor in whole["model"].items():
        assert torch.equal(tensor, again["model"][key]), key
    (tmp_path / "empty").mkdir()
    for entry, match in [
        (str(tmp_path / "gone"), f"data_path\\[1\\] {tmp_path / 'gone'}: dataset folder does not exist"),
        (str(tmp_path / "empty"), f"data_path\\[1\\] {tmp_path / 'empty'}: the folder is empty"),
        (folders[0], "list of distinct folders"),
    ]:
        with pytest.raises(ConfigError, match=match):
            run_train(write_config(tmp_path / "bad.json", {**config, "data_path": [folders[0], entry]}))


def test_mid_epoch_evaluations_of_a_multitask_suite_give_a_per_family_curve(
    tiny_tabletop_root: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """eval_every_steps evaluates checkpoint_last inside the epoch (fractional epoch folders); a mix suite's
    results are logged and plotted per task family."""
    suite = write_config(
        tmp_path / "mix.json",
        {"name": "mix", "episodes": 6, "max_steps": 2, "env_id": "PandaTabletop-v0", "seed_start": 3200000},
    )
    config = tiny_config(
        tiny_tabletop_root,
        tmp_path,
        run_name="mt",
        epochs=1,
        max_steps=4,
        num_val_episode=0,
        cam_view=["front"],
        time_sequence_length=2,
        torch_threads=1,
        cache_dir=str(tmp_path / "cache"),
        eval_config=str(suite),
        eval_every_steps=2,
        num_eval_threads=1,
    )
    with caplog.at_level(logging.INFO, logger="rt1_sim.train"):
        run_train(write_config(tmp_path / "mt.json", config))
    evaluated = sorted((tmp_path / "mt" / "eval").iterdir())
    assert len(evaluated) == 2  # after step 2 (inside the epoch) and after step 4 (max_steps)
    assert all(p.name.startswith("epoch_0.") and (p / "results.json").is_file() for p in evaluated)
    assert "per family: " in caplog.text
    metrics = pd.read_csv(tmp_path / "mt" / METRICS_FILE)
    assert metrics["eval/success_rate"].notna().sum() == 2
    curve = family_success(tmp_path / "mt")
    assert len(curve) > 2 and set(curve["family"]) <= set(FAMILIES)
    assert (curve.groupby("epoch")["episodes"].sum() == 6).all()  # every episode counted once per evaluation
    closed = []
    monkeypatch.setattr("matplotlib.pyplot.close", closed.append)  # keep the figure to read its legends
    png = plot_learning_curve(tmp_path / "mt")
    with Image.open(png) as image:
        assert image.size[0] > 3.5 * image.size[1]  # three panels: loss, success, success per family
    (loss_panel, *_) = closed[0].axes
    assert "val/loss" not in metrics or metrics["val/loss"].isna().all()  # no validation yet in this run
    assert [t.get_text() for t in loss_panel.get_legend().get_texts()] == ["training loss"]


def test_instruction_standardize_centres_the_film_context_on_the_training_instructions(
    tiny_tabletop_root: Path, tmp_path: Path
) -> None:
    """The checkpoint carries the mean and gain of the distinct training instructions' embeddings; a policy
    loaded from it applies them; without the option the context goes in unchanged."""
    config = tiny_config(
        tiny_tabletop_root,
        tmp_path,
        max_steps=1,
        num_val_episode=0,
        cam_view=["front"],
        time_sequence_length=2,
        torch_threads=1,
        cache_dir=str(tmp_path / "cache"),
    )
    path = write_config(tmp_path / "std.json", config)
    run_train(path, "run_name=std", "instruction_standardize=true")
    run_train(path, "run_name=plain")
    state = torch.load(tmp_path / "std" / LAST_CHECKPOINT, weights_only=True)
    data = build_data(load_config(TrainConfig, path, ["num_val_episode=0"]), str(path), Distributed())
    distinct = sorted({text for part in data.train.datasets for text in part.cache.instructions})
    embeddings = torch.as_tensor(np.stack([data.instruction_encoder(text) for text in distinct]))
    assert len(distinct) > len(FAMILIES)  # every family, several instructions each
    torch.testing.assert_close(state["model"]["instruction_shift"], embeddings.mean(0))
    centred = (embeddings - embeddings.mean(0)) * state["model"]["instruction_gain"]
    assert abs(float(centred.pow(2).sum(1).mean()) - 1.0) < 1e-4  # unit root-mean-square norm
    policy = RT1Policy.from_checkpoint(tmp_path / "std" / LAST_CHECKPOINT)
    assert torch.equal(policy.model.instruction_shift, state["model"]["instruction_shift"])
    plain = torch.load(tmp_path / "plain" / LAST_CHECKPOINT, weights_only=True)["model"]
    assert not plain["instruction_shift"].any() and plain["instruction_gain"] == 1.0


def test_resuming_a_run_logged_before_a_metric_existed_keeps_its_rows(tmp_path: Path) -> None:
    """metrics.csv written before the validation probes existed: on resume its rows up to the checkpoint stay,
    later ones go, and the new columns come in empty."""
    old_columns = [c for c in METRIC_COLUMNS if "loss_blank" not in c and "loss_other" not in c]
    rows = pd.DataFrame({c: [1.0, 2.0, 3.0] if c == "train/loss" else [None] * 3 for c in old_columns})
    rows["step"] = [10, 20, 30]
    rows.to_csv(tmp_path / METRICS_FILE, index=False)
    MetricsLog(tmp_path, resume_step=20, tensorboard=False).close()
    kept = pd.read_csv(tmp_path / METRICS_FILE)
    assert list(kept.columns) == METRIC_COLUMNS and kept["step"].tolist() == [10, 20]
    assert kept["train/loss"].tolist() == [1.0, 2.0] and kept["val/loss_blank_instruction"].isna().all()


def test_state_head_trains_logs_and_resumes_bit_exactly(tiny_tabletop_root: Path, tmp_path: Path) -> None:
    """aux_state_weight > 0: the head's loss is logged and annealed, its validation error is reported per
    position, the checkpoint keeps its weights apart (the policy loads the checkpoint as any other), and a
    resumed run gives the same weights, head included, as an uninterrupted one."""
    config = tiny_config(
        tiny_tabletop_root,
        tmp_path,
        batch_size=4,
        epochs=1,
        num_val_episode=1,
        deterministic=True,
        aux_state_weight=1.0,
        aux_state_anneal_steps=4,
        instruction_encoder="hash",
    )
    path = write_config(tmp_path / "s.json", config)
    run_train(path, "run_name=whole")
    run_train(path, "run_name=part", "max_steps=2")
    run_train(path, "resume=true", f"resume_from_checkpoint={tmp_path / 'part' / LAST_CHECKPOINT}")
    whole = torch.load(tmp_path / "whole" / LAST_CHECKPOINT, weights_only=True)
    again = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    assert set(whole["state_head"]) and not any(k.startswith("head.") for k in whole["model"])
    for part in ("model", "state_head"):
        for key, tensor in whole[part].items():
            assert torch.equal(tensor, again[part][key]), (part, key)
    metrics = pd.read_csv(tmp_path / "whole" / METRICS_FILE)
    assert metrics["train/state_loss"].dropna().gt(0).all()
    val = metrics.dropna(subset=["val/loss"]).iloc[-1]
    # every family logs a target and a goal: both errors are metres, finite and within the workspace
    assert 0 < val["val/state_error_m/target"] < 1 and 0 < val["val/state_error_m/goal"] < 1
    policy = RT1Policy.from_checkpoint(tmp_path / "whole" / LAST_CHECKPOINT)
    assert policy.model.training is False


def test_keypoint_maps_train_log_validate_and_resume_bit_exactly(
    tiny_tabletop_root: Path, tmp_path: Path
) -> None:
    """network keypoint_maps 3: their loss is logged and falls, validation reports each camera's pixel error
    per keypoint, a resumed run gives the same weights as an uninterrupted one, and the checkpoint is a
    policy like any other (its keypoint readout included)."""
    config = tiny_config(
        tiny_tabletop_root,
        tmp_path,
        batch_size=4,
        epochs=1,
        num_val_episode=1,
        deterministic=True,
        instruction_encoder="hash",
        log_every_steps=1,
        network_configs={"image_height": 32, "image_width": 32, "crop_size": 28, "keypoint_maps": 3},
    )
    path = write_config(tmp_path / "k.json", config)
    run_train(path, "run_name=whole")
    run_train(path, "run_name=part", "max_steps=2")
    run_train(path, "resume=true", f"resume_from_checkpoint={tmp_path / 'part' / LAST_CHECKPOINT}")
    whole = torch.load(tmp_path / "whole" / LAST_CHECKPOINT, weights_only=True)
    again = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    assert any(k.startswith("keypoints.") for k in whole["model"])
    for key, tensor in whole["model"].items():
        assert torch.equal(tensor, again["model"][key]), key
    metrics = pd.read_csv(tmp_path / "whole" / METRICS_FILE)
    losses = metrics["train/keypoint_loss"].dropna()
    assert len(losses) > 4 and losses.iloc[-3:].mean() < losses.iloc[:3].mean()
    val = metrics.dropna(subset=["val/loss"]).iloc[-1]
    for view in ("front", "wrist"):
        for name in ("target", "gripper"):
            assert 0 < val[f"val/keypoint_error_px/{view}/{name}"] < 32  # pixels of a 32x32 frame
    policy = RT1Policy.from_checkpoint(tmp_path / "whole" / LAST_CHECKPOINT)
    assert policy.model.keypoints is not None and policy.model.config.keypoint_maps == 3


def test_state_weight_anneals_linearly_to_zero() -> None:
    from rt1_sim.train.trainer import Trainer, TrainState

    cfg = TrainConfig(aux_state_weight=0.5, aux_state_anneal_steps=10)
    t = Trainer.__new__(Trainer)
    t.cfg, t.state = cfg, TrainState(step=0)
    assert t.state_weight() == 0.5
    t.state = TrainState(step=5)
    assert t.state_weight() == pytest.approx(0.25)
    t.state = TrainState(step=20)
    assert t.state_weight() == 0.0
    t.cfg = TrainConfig(aux_state_weight=0.5)
    assert t.state_weight() == 0.5


def test_a_checkpoint_written_before_a_network_field_existed_resumes() -> None:
    """A checkpoint whose network record lacks fields added since (efficientnet_family, keypoint_maps) holds
    the network their defaults build: resume accepts it; a config asking for another value is refused."""
    import dataclasses

    from rt1_sim.checkpoint import CheckpointError
    from rt1_sim.model import RT1, checkpoint_state
    from rt1_sim.model.instruction import encoder_settings, make_instruction_encoder
    from rt1_sim.model.presets import get_preset
    from rt1_sim.model.rt1 import model_config
    from rt1_sim.train.checkpoints import check_compatible

    config, encoder = get_preset("micro"), encoder_settings(make_instruction_encoder("hash", 512))
    state = checkpoint_state(RT1(config), encoder)
    for key in ("efficientnet_family", "keypoint_maps"):
        del state["model_config"]["network"][key]
    check_compatible(state, model_config(RT1(config), encoder), "old.pt")
    other = model_config(RT1(dataclasses.replace(config, keypoint_maps=1)), encoder)
    with pytest.raises(CheckpointError, match="another model than the config's"):
        check_compatible(state, other, "old.pt")
