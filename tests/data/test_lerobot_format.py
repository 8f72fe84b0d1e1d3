"""LeRobot's dataset format: `rt1-sim export` writes it, training reads it back, and LeRobot itself opens it
(that test runs where the `lerobot` package is installed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rt1_sim import cli
from rt1_sim.config import TrainConfig
from rt1_sim.config_loader import load_config
from rt1_sim.data import lerobot_format
from rt1_sim.data.episodes import DatasetError, task_folders
from rt1_sim.data.sources import list_episodes, read_episode
from rt1_sim.run_layout import LAST_CHECKPOINT, METRICS_FILE
from rt1_sim.train import train

pytest.importorskip("pyarrow")

VIEWS = ("front", "wrist")
# AV1 at CRF 30 on yuv420p (LeRobot's default encoding) is lossy: the mean error of a decoded frame against
# its PNG stays within a few levels (measured 2-4 at 96x96), single pixels at colour edges much more.
MEAN_PIXEL_ERROR = 8.0


def export(data: Path, out: Path, *options: str) -> int:
    return cli.main(["export", str(data), "--out", str(out), "--no-progress", *options])


@pytest.fixture(scope="module")
def exported(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "tiny"
    assert export(tiny_dataset, out) == 0
    return out


@pytest.fixture(scope="module")
def exported_root(tiny_tabletop_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "tabletop"
    assert export(tiny_tabletop_root, out) == 0
    return out


def pixel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_export_writes_lerobots_layout_and_reads_back_as_the_same_episodes(
    tiny_dataset: Path, exported: Path
) -> None:
    """info.json counts and features; every episode read back from the export has the source's actions,
    instruction, states and metadata, and frames within the codec's error, each at its own time (an
    off-by-one frame would sit nearer a neighbour's PNG)."""
    lengths = list_episodes(tiny_dataset, VIEWS)
    info = json.loads((exported / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"]) == (len(lengths), sum(lengths))
    features = info["features"]
    first = read_episode(tiny_dataset, VIEWS, 0)
    h, w = first.images["front"].shape[1:3]
    for v in VIEWS:
        assert features[f"observation.images.{v}"]["dtype"] == "video"
        assert features[f"observation.images.{v}"]["shape"] == [h, w, 3]
    assert features["action"]["shape"] == [8] and features["observation.state"]["shape"] == [9]
    assert features["observation.environment_state"]["shape"] == [7]  # PandaPick-v0 logs no goal
    assert set(json.loads((exported / "meta" / "stats.json").read_text())) >= {"action", "observation.state"}
    assert list_episodes(exported, VIEWS) == lengths
    for index, length in enumerate(lengths):
        ours, back = read_episode(tiny_dataset, VIEWS, index), read_episode(exported, VIEWS, index)
        assert len(back) == length and back.instruction == ours.instruction
        np.testing.assert_array_equal(back.actions, ours.actions)
        np.testing.assert_allclose(back.raw_states, ours.raw_states, atol=1e-6)
        assert back.meta["seed"] == ours.meta["seed"] and back.meta["dataset"] == tiny_dataset.name
        for v in VIEWS:
            assert back.images[v].shape == ours.images[v].shape
            assert pixel_error(back.images[v], ours.images[v]) < MEAN_PIXEL_ERROR
            shifted = pixel_error(back.images[v][1:], ours.images[v][:-1])
            assert pixel_error(back.images[v][1:], ours.images[v][1:]) < shifted


def test_a_multitask_root_is_one_dataset_with_a_task_string_per_episode(
    tiny_tabletop_root: Path, exported_root: Path
) -> None:
    folders = task_folders(tiny_tabletop_root)
    sources = [(f, i) for f in folders for i in range(len(list_episodes(f, VIEWS)))]
    episodes = pd.read_parquet(next((exported_root / "meta" / "episodes").glob("*/*.parquet")))
    tasks = pd.read_parquet(exported_root / "meta" / "tasks.parquet")
    assert len(episodes) == len(sources) == 12
    for row, (folder, index) in zip(episodes.itertuples(), sources):
        assert list(row.tasks) == [read_episode(folder, VIEWS, index).instruction]
    assert set(tasks.index) == {t for row in episodes.itertuples() for t in row.tasks}
    info = json.loads((exported_root / "meta" / "info.json").read_text())
    assert info["features"]["observation.environment_state"]["names"][-3:] == [
        "goal_pos_x",
        "goal_pos_y",
        "goal_pos_z",
    ]
    back = read_episode(exported_root, VIEWS, 0)
    np.testing.assert_allclose(back.goals, read_episode(folders[0], VIEWS, 0).goals, atol=1e-6)
    assert back.meta["family"] == folders[0].name.split("_", 1)[1]


def test_train_reads_a_lerobot_dataset(exported_root: Path, tmp_path: Path) -> None:
    """data_path may be a LeRobot dataset: it is split, cached and trained on like ours (privileged state
    included, from observation.environment_state)."""
    config = {
        "data_path": str(exported_root),
        "log_dir": str(tmp_path),
        "run_name": "lerobot",
        "preset": "micro",
        "device": "cpu",
        "batch_size": 4,
        "epochs": 1,
        "max_steps": 3,
        "num_val_episode": 2,
        "progress": False,
        "instruction_encoder": "hash",
        "aux_state_weight": 1.0,
        "network_configs": {"image_height": 32, "image_width": 32, "crop_size": 28},
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    train(load_config(TrainConfig, path, []), torch.device("cpu"), config_path=path)
    assert torch.load(tmp_path / "lerobot" / LAST_CHECKPOINT, weights_only=True)["step"] == 3
    metrics = pd.read_csv(tmp_path / "lerobot" / METRICS_FILE)
    assert np.isfinite(metrics["train/loss"].dropna()).all() and metrics["val/loss"].dropna().size
    assert metrics["train/state_loss"].dropna().gt(0).all()


def test_a_lerobot_dataset_without_our_cameras_or_action_is_one_line_naming_them(
    exported_root: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(exported_root, copy)
    info_path = copy / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    wrist = info["features"].pop("observation.images.wrist")
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"no camera 'wrist'.*observation\.images\.front"):
        list_episodes(copy, VIEWS)
    info["features"]["observation.images.wrist"] = wrist
    info["features"]["action"]["shape"] = [7]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"action of shape \[7\]; rt1-sim trains an 8-d action"):
        list_episodes(copy, VIEWS)
    info["codebase_version"] = "v2.1"
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match="LeRobot format v2.1; rt1-sim reads v3.0"):
        list_episodes(copy, VIEWS)


def test_export_follows_the_output_folder_rule(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder of someone else's files is refused (even with --overwrite), an earlier export only with
    --overwrite, which replaces it; nothing is written when refused."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    assert export(tiny_dataset, notes, "--overwrite") == 2
    assert "notes.txt" in capsys.readouterr().err and sorted(p.name for p in notes.iterdir()) == ["notes.txt"]
    out = tmp_path / "out"
    assert export(tiny_dataset, out) == 0
    before = (out / "meta" / "info.json").stat().st_mtime_ns
    assert export(tiny_dataset, out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "meta" / "info.json").stat().st_mtime_ns == before
    assert export(tiny_dataset, out, "--overwrite", "--crf", "20") == 0
    assert (out / "meta" / "info.json").stat().st_mtime_ns != before
    assert sorted(p.name for p in out.iterdir()) == ["data", "meta", "videos"]


def test_an_export_that_fails_midway_leaves_no_dataset(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = lerobot_format.LeRobotWriter.add
    calls = []

    def add_then_die(self: lerobot_format.LeRobotWriter, *args: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        added(self, *args)

    monkeypatch.setattr(lerobot_format.LeRobotWriter, "add", add_then_die)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        export(tiny_dataset, out)
    assert [p.name for p in out.iterdir() if p.name != ".rt1-sim.lock"] == []


def test_lerobot_opens_the_export(tiny_dataset: Path, exported: Path) -> None:
    """The real LeRobotDataset, offline: frame and episode counts, shapes, pixels against our PNGs (within
    the codec's error), actions and task strings exactly."""
    pytest.importorskip("lerobot")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    lengths = list_episodes(tiny_dataset, VIEWS)
    dataset = LeRobotDataset("local/rt1-sim-tiny", root=exported, video_backend="pyav")
    assert (dataset.num_episodes, dataset.num_frames) == (len(lengths), sum(lengths))
    starts = np.cumsum([0, *lengths])
    for index in range(len(lengths)):
        ours = read_episode(tiny_dataset, VIEWS, index)
        for frame in (0, lengths[index] - 1):
            item = dataset[int(starts[index] + frame)]
            assert int(item["episode_index"]) == index and int(item["frame_index"]) == frame
            assert item["task"] == ours.instruction
            np.testing.assert_array_equal(item["action"].numpy(), ours.actions[frame])
            for v in VIEWS:
                image = item[f"observation.images.{v}"]  # (3, H, W) float in [0, 1]
                assert tuple(image.shape) == (3, *ours.images[v].shape[1:3])
                decoded = (image.permute(1, 2, 0).numpy() * 255).round()
                assert pixel_error(decoded, ours.images[v][frame]) < MEAN_PIXEL_ERROR


def test_a_crf_the_encoder_refuses_is_one_line_and_writes_nothing(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ffmpeg would stop at once, and imageio-ffmpeg would not say so: the export checks first."""
    out = tmp_path / "out"
    assert export(tiny_dataset, out, "--crf", "70") == 2
    assert "--crf 70: libsvtav1 takes 0..63" in capsys.readouterr().err and not out.exists()


def test_a_new_export_in_the_same_folder_is_read_afresh(tiny_dataset: Path, tmp_path: Path) -> None:
    """Readers cached per file (decoders, episode metadata) see a re-export, not the files it replaced."""
    out = tmp_path / "out"
    assert export(tiny_dataset, out) == 0
    first = read_episode(out, VIEWS, 1).images["front"]
    assert export(tiny_dataset, out, "--overwrite", "--crf", "5") == 0
    again = read_episode(out, VIEWS, 1).images["front"]
    lerobot_format._cached_decoder.cache_clear()
    lerobot_format._open_source.cache_clear()
    assert np.array_equal(again, read_episode(out, VIEWS, 1).images["front"])
    assert not np.array_equal(first, again)


def test_files_roll_over_and_episodes_read_in_any_order(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With size limits of 0 every episode starts new data and video files (the chunk/file indices LeRobot
    follows); read back last-first, each episode still has its own actions and frames (a decoder seeks)."""
    monkeypatch.setattr(lerobot_format, "DATA_FILE_MB", 0)
    monkeypatch.setattr(lerobot_format, "VIDEO_FILE_MB", 0)
    out = tmp_path / "out"
    assert export(tiny_dataset, out) == 0
    lengths = list_episodes(tiny_dataset, VIEWS)
    assert len(list((out / "data").glob("chunk-000/*.parquet"))) == len(lengths)
    assert len(list((out / "videos" / "observation.images.wrist").glob("chunk-000/*.mp4"))) == len(lengths)
    for index in reversed(range(len(lengths))):
        ours, back = read_episode(tiny_dataset, VIEWS, index), read_episode(out, VIEWS, index)
        np.testing.assert_array_equal(back.actions, ours.actions)
        for v in VIEWS:
            assert pixel_error(back.images[v], ours.images[v]) < MEAN_PIXEL_ERROR


def test_episodes_of_one_video_file_read_last_first(tiny_dataset: Path, exported: Path) -> None:
    """Out of order, each episode's frames are found by seeking into the shared file: still its own, each at
    its own time."""
    lerobot_format._cached_decoder.cache_clear()
    for index in reversed(range(len(list_episodes(tiny_dataset, VIEWS)))):
        ours, back = read_episode(tiny_dataset, VIEWS, index), read_episode(exported, VIEWS, index)
        for v in VIEWS:
            aligned = pixel_error(back.images[v][1:], ours.images[v][1:])
            shifted = pixel_error(back.images[v][1:], ours.images[v][:-1])
            assert aligned < MEAN_PIXEL_ERROR and aligned < shifted
