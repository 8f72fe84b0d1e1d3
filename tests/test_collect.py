"""rt1-sim collect: worker-count independence, kill-and-resume, settings checks, and the command line."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from envs.spaces import CAMERA_NAMES
from rt1_sim.collect import CollectConfig, collect
from rt1_sim.data.episodes import list_episodes, read_episode
from rt1_sim.errors import UserError


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def test_collected_dataset_reads_back(tiny_dataset):
    lengths = list_episodes(tiny_dataset, CAMERA_NAMES)
    assert len(lengths) == 4
    for i, n in enumerate(lengths):
        ep = read_episode(tiny_dataset, CAMERA_NAMES, i, expected_length=n)
        assert ep.meta["seed"] == i and ep.meta["success"] and ep.images["front"].shape == (n, 96, 96, 3)


def test_result_does_not_depend_on_worker_count(tiny_dataset, tmp_path):
    collect(tmp_path / "w2", 4, CollectConfig(seed=0), workers=2, progress=False)
    assert _same_tree(tiny_dataset, tmp_path / "w2")


def test_resume_extends_and_refuses_other_settings(tiny_dataset, tmp_path):
    partial = tmp_path / "partial"
    collect(partial, 2, CollectConfig(seed=0), progress=False)
    collect(partial, 4, CollectConfig(seed=0), progress=False)
    assert _same_tree(tiny_dataset, partial)
    with pytest.raises(ValueError, match="noise"):
        collect(partial, 5, CollectConfig(seed=0, noise=0.3), progress=False)


def test_kill_then_rerun_gives_the_same_dataset(tmp_path):
    reference = tmp_path / "reference"
    collect(reference, 8, CollectConfig(seed=0), progress=False)
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "rt1_sim.cli",
        "collect",
        "--out",
        str(out),
        "--episodes",
        "8",
        "--seed",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    info = out / "front" / "dataset_info.json"
    deadline = time.time() + 60
    while time.time() < deadline:  # kill as soon as at least one episode is committed
        if info.exists() and json.loads(info.read_text() or '{"episode_length": []}')["episode_length"]:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = len(json.loads(info.read_text())["episode_length"])
    assert 1 <= committed < 8, "the kill should land while collection is under way"
    subprocess.run(cmd, check=True, capture_output=True)
    assert _same_tree(reference, out)


def test_keep_failures_keeps_unsuccessful_episodes(tmp_path):
    # A 1-step limit: every episode fails; by default they would be dropped, with the flag they are kept.
    summary = collect(
        tmp_path / "f", 2, CollectConfig(seed=0, keep_failures=True, max_steps=1), progress=False
    )
    assert summary["episodes"] == 2 and summary["expert_success_rate"] == 0.0
    assert list_episodes(tmp_path / "f", CAMERA_NAMES) == [1, 1]
    with pytest.raises(UserError, match="kept"):
        collect(tmp_path / "g", 1, CollectConfig(seed=0, max_steps=1), progress=False)


def test_collect_loads_a_collect_config_like_train_and_eval(tmp_path, capsys):
    import argparse

    from rt1_sim import cli
    from rt1_sim.collect import add_arguments, shorthand_overrides
    from rt1_sim.config import load_config

    path = tmp_path / "collect.json"
    path.write_text(json.dumps({"noise": 0.05, "env_options": {"num_distractors": 1}}))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--out",
            "x",
            "--episodes",
            "1",
            "--config",
            str(path),
            "--set",
            "seed=3",
            "--env-option",
            "cube_color=blue",
            "--image-size",
            "64",
            "64",
            "--keep-failures",
        ]
    )
    cfg = load_config(CollectConfig, args.config, [*args.overrides, *shorthand_overrides(args)])
    assert cfg == CollectConfig(
        seed=3,
        noise=0.05,
        keep_failures=True,
        env_options={"num_distractors": 1, "cube_color": "blue", "image_size": [64, 64]},
    )
    # A wrong key or env option is one line naming it, before anything is collected.
    assert cli.main(["collect", "--out", str(tmp_path / "bad"), "--episodes", "1", "--set", "nosie=0.2"]) == 2
    assert "unknown key 'nosie'" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "collect",
                "--out",
                str(tmp_path / "bad"),
                "--episodes",
                "1",
                "--set",
                "env_options.cube_colour=red",
            ]
        )
        == 2
    )
    assert "cube_colour" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
