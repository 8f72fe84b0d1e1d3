"""rt1-sim collect: worker-count independence, kill-and-resume, settings checks, and the command line."""

from __future__ import annotations

import dataclasses
import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs import FAMILIES
from envs.spaces import CAMERA_NAMES
from rt1_sim import cli, outputs
from rt1_sim.collect import CollectConfig, collect, collect_datasets, dataset_plan
from rt1_sim.data.episodes import list_episodes, read_episode
from rt1_sim.errors import ConfigError, DatasetError, OutputError, UserError
from rt1_sim.pool import worker_pool


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
    from rt1_sim.collect import add_arguments, config_from_args

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
    cfg = config_from_args(args)
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


# ---------------------------------------------------------------- a user's mistakes, and an adversary's
def _die(_: int) -> None:
    os._exit(3)  # a worker killed mid-task (out of memory, kill -9)


def _nothing() -> None:
    pass


def test_a_worker_that_dies_ends_the_run_with_one_error() -> None:
    with (
        worker_pool(2, _nothing, (), _nothing) as imap,
        pytest.raises(UserError, match="worker process died"),
    ):
        list(imap(_die, range(4)))


def test_bad_env_option_with_two_workers_fails_at_once_and_writes_nothing(tmp_path):
    out = tmp_path / "x_out"
    cmd = [
        sys.executable,
        "-m",
        "rt1_sim.cli",
        "collect",
        "--out",
        str(out),
        "--episodes",
        "2",
        "--workers",
        "2",
        "--env-option",
        'cube_color="pink"',
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert "cube_color" in proc.stderr and "pink" in proc.stderr
    assert not out.exists()


def test_a_failed_collect_does_not_poison_its_folder(tmp_path):
    out = tmp_path / "p_out"
    with pytest.raises(ConfigError, match="num_distractors"):
        collect(out, 1, CollectConfig(env_options={"num_distractors": 99}), progress=False)
    assert not out.exists()
    assert collect(out, 1, CollectConfig(), progress=False)["episodes"] == 1  # the corrected command runs


@pytest.mark.parametrize(
    "args, names",
    [
        (["--episodes", "0"], "--episodes"),
        (["--workers", "0"], "--workers"),
        (["--seed", "-5"], "seed"),
        (["--image-size", "0", "0"], "--image-size"),
        (["--views", "top"], "views"),
        (["--env-option", "colour=red"], "'colour'"),
        (["--env-option", "x_range=[0.7,0.4]"], "x_range"),
    ],
)
def test_each_mistake_is_one_line_naming_the_option(tmp_path, capsys, args, names):
    out = tmp_path / "out"
    argv = ["collect", "--out", str(out), "--episodes", "1", *args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rt1-sim collect: error: ") and err.count("\n") == 1 and names in err, err
    assert not out.exists()


def test_an_output_path_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in [(afile, "is a file"), (afile / "sub", "afile is a file")]:
        assert cli.main(["collect", "--out", str(out), "--episodes", "1"]) == 2
        assert message in capsys.readouterr().err
    monkeypatch.setattr(outputs.os, "access", lambda *_: False)  # as on a read-only file system
    assert cli.main(["collect", "--out", str(tmp_path / "ro"), "--episodes", "1"]) == 2
    assert "is not writable (read-only file system or permissions)" in capsys.readouterr().err
    assert not (tmp_path / "ro").exists()


def test_a_corrupt_episode_json_is_named_on_resume(tmp_path):
    out = tmp_path / "c"
    collect(out, 1, CollectConfig(), progress=False)
    meta = out / "front" / "data_000" / "episode.json"
    meta.write_text("{not json")
    with pytest.raises(DatasetError, match=f"{meta}: not valid JSON"):
        collect(out, 2, CollectConfig(), progress=False)
    with pytest.raises(DatasetError, match=f"{meta}: not valid JSON"):
        read_episode(out, CAMERA_NAMES, 0)


def test_a_dataset_folder_says_who_wrote_it_and_mixing_is_refused(tmp_path):
    recorded = tmp_path / "recorded"  # what eval --record leaves: its config file and the view folders
    (recorded / "front").mkdir(parents=True)
    (recorded / "eval_config.json").write_text("{}")
    with pytest.raises(OutputError, match="eval --record"):
        collect(recorded, 1, CollectConfig(), progress=False)
    assert sorted(p.name for p in recorded.iterdir()) == ["eval_config.json", "front"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="already holds notes.txt"):
        collect(foreign, 1, CollectConfig(), progress=False)
    with pytest.raises(OutputError, match="does not write here"):  # --overwrite never removes a user's files
        collect(foreign, 1, CollectConfig(), progress=False, overwrite=True)
    collect(recorded, 1, CollectConfig(), progress=False, overwrite=True)  # replaced, not mixed
    assert not (recorded / "eval_config.json").exists()
    assert json.loads((recorded / "collect_config.json").read_text())["seed"] == 0


def test_overwrite_replaces_a_dataset_of_other_settings(tiny_dataset, tmp_path):
    out = tmp_path / "o"
    collect(out, 2, CollectConfig(seed=0, noise=0.3), progress=False)
    with pytest.raises(OutputError, match="--overwrite"):
        collect(out, 4, CollectConfig(seed=0), progress=False)
    collect(out, 4, CollectConfig(seed=0), progress=False, overwrite=True)
    assert _same_tree(tiny_dataset, out)


def test_io_file_names_round_trip(tiny_dataset, tmp_path):
    """--io-names writes result.csv / result_raw.csv (IO's loader's names); the data read back is the same."""
    out = tmp_path / "io"
    collect(out, 2, CollectConfig(seed=0, io_file_names=True), progress=False)
    for view in CAMERA_NAMES:
        names = {p.name for p in (out / view / "data_000").iterdir()}
        assert {"result.csv", "result_raw.csv"} <= names and not names & {"results.csv", "results_raw.csv"}
        for name, plural in [("result.csv", "results.csv"), ("result_raw.csv", "results_raw.csv")]:
            assert (out / view / "data_001" / name).read_bytes() == (
                tiny_dataset / view / "data_001" / plural
            ).read_bytes()
    assert list_episodes(out, CAMERA_NAMES) == list_episodes(tiny_dataset, CAMERA_NAMES)[:2]
    for i in range(2):
        ours, io = read_episode(tiny_dataset, CAMERA_NAMES, i), read_episode(out, CAMERA_NAMES, i)
        assert np.array_equal(ours.actions, io.actions) and np.array_equal(ours.raw_states, io.raw_states)
        assert all(np.array_equal(ours.images[v], io.images[v]) for v in CAMERA_NAMES)
    with pytest.raises(OutputError, match="io_file_names"):  # a resume never mixes the spellings
        collect(out, 3, CollectConfig(seed=0), progress=False)


# ---------------------------------------------------------------- multi-task: IO's Panda_<task> folders
def test_mix_collects_one_dataset_per_family_with_its_instructions(tiny_tabletop_root, capsys):
    """task=mix: a Panda_<family> folder per family, `--episodes` in each; every frame row carries the
    instruction (task_description, as IO's multi-task loader reads it) and episode.json the variation."""
    assert sorted(p.name for p in tiny_tabletop_root.iterdir()) == sorted(f"Panda_{f}" for f in FAMILIES)
    for family in FAMILIES:
        folder = tiny_tabletop_root / f"Panda_{family}"
        saved = json.loads((folder / "collect_config.json").read_text())
        assert saved["env_options"] == {"task": family, "image_size": [32, 32]}
        assert [e["seed"] for e in map(json.loads, _metas(folder))] == [0, 1]  # the same seeds per family
        for i, n in enumerate(list_episodes(folder, CAMERA_NAMES)):
            meta = json.loads((folder / "front" / f"data_{i:03d}" / "episode.json").read_text())
            assert meta["family"] == family and meta["target"] and meta["template_id"].startswith(family[:4])
            assert {"colors_split", "paraphrases_split", "combos_split", "success", "steps"} <= set(meta)
            raw = pd.read_csv(folder / "wrist" / f"data_{i:03d}" / "results_raw.csv")
            assert len(raw) == n and set(raw["task_description"]) == {meta["instruction"].replace(" ", "_")}
            assert read_episode(folder, CAMERA_NAMES, i).instruction == meta["instruction"]
    # The command line: one summary line per family, then the total (resumed: nothing left to collect).
    argv = ["collect", "--out", str(tiny_tabletop_root), "--episodes", "2", "--image-size", "32", "32"]
    assert cli.main([*argv, "--set", "env_id=PandaTabletop-v0", "--set", "env_options.task=mix"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(s["out"]).name for s in lines[:-1]] == [f"Panda_{f}" for f in FAMILIES]
    assert lines[-1]["episodes"] == 12 and lines[-1]["attempts"] == 0


def _metas(folder: Path) -> list[str]:
    return [p.read_text() for p in sorted((folder / "front").glob("data_*/episode.json"))]


def test_one_task_collects_its_folder_only_and_bad_options_write_nothing(tmp_path):
    cfg = CollectConfig(env_id="PandaTabletop-v0", env_options={"task": "stack", "image_size": [32, 32]})
    summary = collect_datasets(tmp_path / "root", 1, cfg, progress=False)
    assert summary["out"] == str(tmp_path / "root" / "Panda_stack") and summary["episodes"] == 1
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["Panda_stack"]
    # Every family's options are checked before any folder is written.
    for options, match in [({"task": "juggle"}, "juggle"), ({"task": "mix", "colors": "neon"}, "colors")]:
        bad = dataclasses.replace(cfg, env_options=options)
        with pytest.raises(ConfigError, match=match):
            collect_datasets(tmp_path / "bad", 1, bad, progress=False)
    assert not (tmp_path / "bad").exists()
    collect(tmp_path / "pick", 1, CollectConfig(), progress=False)  # a dataset is never a multi-task root
    with pytest.raises(OutputError, match="holds a dataset itself"):
        collect_datasets(tmp_path / "pick", 1, cfg, progress=False)
    assert not list((tmp_path / "pick").glob("Panda_*"))
    # An env without a task option (PandaPick-v0) collects into --out itself, as always.
    assert dataset_plan(tmp_path / "p", CollectConfig()) == [(tmp_path / "p", CollectConfig())]


def test_clean_labels_keep_the_states_and_record_the_command_before_noise(tmp_path):
    """DART labels: the same noisy rollouts (same frames, same raw states), with each step's action the
    expert's noise-free command in that state; steps where no noise applies keep identical labels."""
    options = {"env_id": "PandaTabletop-v0", "env_options": {"task": "push", "image_size": [32, 32]}}
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    collect_datasets(noisy, 2, CollectConfig(seed=0, noise=0.3, **options), progress=False)
    collect_datasets(clean, 2, CollectConfig(seed=0, noise=0.3, clean_labels=True, **options), progress=False)
    changed = 0
    for i in range(2):
        a = read_episode(noisy / "Panda_push", CAMERA_NAMES, i)
        b = read_episode(clean / "Panda_push", CAMERA_NAMES, i)
        assert all(np.array_equal(a.images[v], b.images[v]) for v in CAMERA_NAMES)
        differ = ~np.isclose(a.actions, b.actions, atol=1e-7).all(axis=1)
        changed += int(differ.sum())
        # gripper and terminate never carry noise; translation labels stay within the bounds
        assert np.array_equal(a.actions[:, 6:], b.actions[:, 6:])
        assert np.abs(b.actions[:, :3]).max() <= 0.04 + 1e-7
    assert changed > 0
    with pytest.raises(UserError, match="clean_labels"):  # a dataset of the other kind is not extended
        collect_datasets(noisy, 3, CollectConfig(seed=0, noise=0.3, clean_labels=True, **options))


def test_episode_limit_is_the_envs_own_unless_max_steps_is_set(tmp_path):
    from rt1_sim.collect import with_episode_limit
    from rt1_sim.env_options import episode_limit

    assert episode_limit("PandaTabletop-v0", None, "x") == 200
    assert episode_limit("PandaPick-v0", None, "x") == 80
    assert episode_limit("PandaTabletop-v0", 7, "x") == 7
    tabletop = CollectConfig(env_id="PandaTabletop-v0", env_options={"task": "drawer"})
    assert with_episode_limit(tabletop).max_steps == 200
    assert with_episode_limit(dataclasses.replace(tabletop, max_steps=30)).max_steps == 30
    # The dataset records the limit used, so a later run with the limit unset resumes a dataset of 80.
    summary = collect(tmp_path / "d", 1, CollectConfig(seed=0), progress=False)
    assert summary["max_steps"] == 80
    assert json.loads((tmp_path / "d" / "collect_config.json").read_text())["max_steps"] == 80
    collect(tmp_path / "d", 2, CollectConfig(seed=0, max_steps=80), progress=False)


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


# A pool whose workers take a minute to start (as RT-1 workers importing torch and loading a checkpoint
# on a busy machine), in a process of its own.
SLOW_POOL = (
    "import time\n"
    "from rt1_sim.pool import worker_pool\n"
    "with worker_pool(2, time.sleep, (60,), lambda: None) as imap:\n"
    "    list(imap(abs, range(4)))\n"
)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("cmd", "how"),
    [
        ([sys.executable, "-c", SLOW_POOL], signal.SIGKILL),
        (
            [sys.executable, "-m", "rt1_sim.cli", "collect", "--episodes", "200", "--workers", "2"],
            signal.SIGTERM,
        ),
    ],
)
def test_workers_do_not_outlive_their_parent(tmp_path, cmd, how):
    """kill -9 of the parent takes its workers with it at once (they were left running on their own, parent
    1, until their queue ran dry); SIGTERM stops them and exits with status 143."""
    if "collect" in cmd:
        cmd = [*cmd, "--out", str(tmp_path / "o")]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 180
    while len(_children(proc.pid)) < 3 and time.time() < deadline:  # 2 workers + the resource tracker
        time.sleep(0.2)
    children = _children(proc.pid)
    assert len(children) >= 2, "the workers did not start"
    time.sleep(3.0)
    os.kill(proc.pid, how)
    proc.wait(timeout=60)
    if how == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
    deadline = time.time() + 10
    while any(_alive(p) for p in children) and time.time() < deadline:
        time.sleep(0.2)
    alive = [p for p in children if _alive(p)]
    for pid in alive:  # leave no stray process behind, whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert not alive


def test_collect_caps_workers_at_the_episodes_and_cores(tmp_path, caplog):
    with caplog.at_level("INFO", logger="rt1_sim.pool"):
        collect(tmp_path / "d", 1, CollectConfig(seed=0), workers=9999, progress=False)
    assert "1 workers instead of 9999" in caplog.text


def test_a_second_collect_into_a_folder_in_use_is_refused_naming_the_first(tmp_path, folder_holder):
    out = tmp_path / "busy"
    holder = folder_holder(out)
    with pytest.raises(OutputError, match=rf"{out}.*{holder.pid}"):
        collect(out, 1, CollectConfig(seed=0), progress=False)
    assert sorted(p.name for p in out.iterdir()) == [".rt1-sim.lock"]  # nothing of a dataset was written
    holder.kill()
    holder.wait()
    root = tmp_path / "root"
    holder = folder_holder(root)
    tabletop = CollectConfig(
        env_id="PandaTabletop-v0", env_options={"task": "drawer", "image_size": [16, 16]}
    )
    with pytest.raises(OutputError, match=str(holder.pid)):
        collect_datasets(root, 1, tabletop, progress=False)
    holder.kill()
    holder.wait()
    assert collect(out, 1, CollectConfig(seed=0), progress=False)["episodes"] == 1  # free again: it runs
