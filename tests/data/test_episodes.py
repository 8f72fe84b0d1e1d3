"""Dataset layer: lossless round trip in the IO layout, IO's own file names, one clear error per defect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import envs  # noqa: F401
from envs.spaces import CAMERA_NAMES, RAW_COLUMNS, RESULTS_COLUMNS
from envs.tasks.single_cube import PickCubeExpert as ScriptedExpert
from rt1_sim.data.episodes import (
    DatasetError,
    EpisodeRecorder,
    list_episodes,
    read_episode,
    write_dataset_info,
    write_episode,
)
from rt1_sim.rollout import rollout


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory):
    """One expert episode kept in memory and written to disk."""
    env = gym.make("PandaPick-v0")
    recorder = EpisodeRecorder(CAMERA_NAMES)
    result = rollout(env, ScriptedExpert(env, noise=0.2), seed=4, on_step=recorder)
    episode = recorder.episode(result.instruction, {"seed": 4, "success": result.success})
    root = tmp_path_factory.mktemp("rt") / "ds"
    write_episode(root, CAMERA_NAMES, 0, episode)
    write_dataset_info(root, CAMERA_NAMES, [len(episode)])
    return episode, root


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


def test_round_trip_is_lossless(recorded):
    episode, root = recorded
    assert list_episodes(root, CAMERA_NAMES) == [len(episode)]
    back = read_episode(root, CAMERA_NAMES, 0, expected_length=len(episode))
    for cam in CAMERA_NAMES:
        assert np.array_equal(back.images[cam], episode.images[cam])
    np.testing.assert_array_equal(back.actions, episode.actions)  # float32 -> %.9g text -> float32 is exact
    np.testing.assert_allclose(back.raw_states, episode.raw_states, rtol=1e-8, atol=1e-12)
    assert back.instruction == episode.instruction == "pick up the red cube"
    assert back.meta["seed"] == 4 and back.meta["success"] is True
    # terminate only on the last frame
    assert back.actions[-1, -1] == 1.0 and back.actions[:-1, -1].sum() == 0


def test_csv_columns_follow_the_io_layout(recorded):
    _, root = recorded
    results = pd.read_csv(root / "front" / "data_000" / "results.csv")
    raw = pd.read_csv(root / "wrist" / "data_000" / "results_raw.csv")
    assert tuple(results.columns) == RESULTS_COLUMNS
    assert tuple(raw.columns) == RAW_COLUMNS
    assert raw["task_description"].iloc[0] == "pick_up_the_red_cube"
    assert (root / "front" / "data_000" / "rgb" / "image_001.png").is_file()


def test_reads_io_singular_file_names_and_missing_terminate_column(recorded, tmp_path):
    episode, root = recorded
    root = _copy(root, tmp_path)
    for cam in CAMERA_NAMES:
        d = root / cam / "data_000"
        results = pd.read_csv(d / "results.csv").drop(columns=["terminate_episode"])
        results.to_csv(d / "result.csv", index=False)
        (d / "results.csv").unlink()
        (d / "results_raw.csv").rename(d / "result_raw.csv")
    back = read_episode(root, CAMERA_NAMES, 0)
    np.testing.assert_array_equal(back.actions[:, :-1], episode.actions[:, :-1])
    assert back.actions[-1, -1] == 1.0  # IO has no terminate label: the last frame ends the episode


def _break_missing_frame(d: Path) -> None:
    (d / "rgb" / "image_003.png").unlink()


def _break_row_count(d: Path) -> None:
    raw = pd.read_csv(d / "results_raw.csv")
    raw.iloc[:-1].to_csv(d / "results_raw.csv", index=False)


def _break_missing_column(d: Path) -> None:
    pd.read_csv(d / "results.csv").drop(columns=["ee_command_rotation_y"]).to_csv(
        d / "results.csv", index=False
    )


def _break_malformed_csv(d: Path) -> None:
    (d / "results.csv").write_text('ee_command_position_x,"unterminated\n1,2,3,4\n')


def _break_non_numeric(d: Path) -> None:
    df = pd.read_csv(d / "results.csv")
    df["ee_command_position_z"] = df["ee_command_position_z"].astype(object)
    df.loc[2, "ee_command_position_z"] = "oops"
    df.to_csv(d / "results.csv", index=False)


def _break_unreadable_image(d: Path) -> None:
    (d / "rgb" / "image_002.png").write_bytes(b"not a png")


@pytest.mark.parametrize(
    "breaker, message",
    [
        (_break_missing_frame, "image_003.png"),
        (_break_row_count, "rows"),
        (_break_missing_column, "ee_command_rotation_y"),
        (_break_malformed_csv, "not a readable CSV"),
        (_break_non_numeric, "ee_command_position_z"),
        (_break_unreadable_image, "unreadable image"),
    ],
)
def test_each_defect_is_one_clear_error_naming_the_episode(recorded, tmp_path, breaker, message):
    _, root = recorded
    root = _copy(root, tmp_path)
    breaker(root / "front" / "data_000")
    with pytest.raises(DatasetError) as err:
        read_episode(root, CAMERA_NAMES, 0)
    assert message in str(err.value) and "data_000" in str(err.value)


def test_dataset_level_errors(recorded, tmp_path):
    _, root = recorded
    with pytest.raises(DatasetError, match="does not exist"):
        list_episodes(tmp_path / "nowhere", CAMERA_NAMES)
    with pytest.raises(DatasetError, match="'side'"):
        list_episodes(root, ("front", "side"))
    root = _copy(root, tmp_path)
    (root / "front" / "dataset_info.json").write_text("{broken")
    with pytest.raises(DatasetError, match="dataset_info.json"):
        list_episodes(root, CAMERA_NAMES)
    (root / "front" / "dataset_info.json").write_text(json.dumps({"episode_length": [3]}))
    with pytest.raises(DatasetError, match="says 3"):
        read_episode(root, CAMERA_NAMES, 0, expected_length=3)
    (root / "front" / "dataset_info.json").unlink()
    with pytest.raises(DatasetError, match="missing"):
        list_episodes(root, CAMERA_NAMES)


def test_dataset_info_is_checked_against_the_folders_and_every_view(tiny_dataset, tmp_path):
    root = _copy(tiny_dataset, tmp_path)  # 4 episodes in both views
    lengths = list_episodes(root, CAMERA_NAMES)
    write_dataset_info(root, CAMERA_NAMES, lengths[:1])  # lists 1 of the 4 folders
    with pytest.raises(DatasetError, match="lists 1 episodes, but .*front holds 4 episode folders"):
        list_episodes(root, CAMERA_NAMES)
    write_dataset_info(root, CAMERA_NAMES, lengths)
    (root / "wrist" / "dataset_info.json").write_text(json.dumps({"episode_length": lengths[::-1]}))
    with pytest.raises(DatasetError, match=r"wrist/dataset_info\.json: lists other episode lengths than"):
        list_episodes(root, CAMERA_NAMES)
    (root / "wrist" / "dataset_info.json").unlink()
    with pytest.raises(DatasetError, match=r"wrist/dataset_info\.json: missing"):
        list_episodes(root, CAMERA_NAMES)
    assert list_episodes(root, ("front",)) == lengths  # a dataset read with one view needs only that view's
    write_dataset_info(root, CAMERA_NAMES, lengths)
    shutil.rmtree(root / "wrist" / "data_002")
    with pytest.raises(DatasetError, match=r"wrist holds 3 episode folders \(missing data_002\)"):
        list_episodes(root, CAMERA_NAMES)


def test_a_corrupt_episode_json_names_the_file(recorded, tmp_path):
    _, root = recorded
    root = _copy(root, tmp_path)
    meta = root / "front" / "data_000" / "episode.json"
    meta.write_text("[1, 2")
    with pytest.raises(DatasetError, match=f"{meta}: not valid JSON"):
        read_episode(root, CAMERA_NAMES, 0)
