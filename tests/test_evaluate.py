"""rt1-sim eval: ceiling and floor policies, worker- and process-count independence, clear errors, outputs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pandas as pd
import pytest

import rt1_sim.eval as ev
from envs.spaces import CAMERA_NAMES
from rt1_sim.cli import main
from rt1_sim.config import EVAL_SEED_START, EvalConfig, EvalPolicyConfig
from rt1_sim.config_loader import load_config
from rt1_sim.data.episodes import list_episodes, read_episode
from rt1_sim.errors import ConfigError, UserError
from rt1_sim.eval import cli as eval_cli
from rt1_sim.eval import harness, video
from rt1_sim.eval.stats import wilson_interval
from rt1_sim.eval.video import MACRO_BLOCK
from rt1_sim.resources import bundled_checkpoint

SUITES = Path(__file__).resolve().parent.parent / "eval_configs"


def _suite(policy: str, episodes: int, max_steps: int | None = None, **env_options) -> EvalConfig:
    return EvalConfig(
        name="test",
        episodes=episodes,
        max_steps=max_steps,
        env_options=env_options,
        policy=EvalPolicyConfig(name=policy),
    )


def _without_timing(out: Path) -> dict:
    results = json.loads((out / ev.RESULTS_FILE).read_text())
    results.pop("timing")
    return results


def test_wilson_interval_matches_known_values():
    assert wilson_interval(0, 100) == (0.0, pytest.approx(0.0370, abs=1e-4))
    assert wilson_interval(100, 100) == (pytest.approx(0.9630, abs=1e-4), 1.0)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    with pytest.raises(ValueError, match="trials"):
        wilson_interval(0, 0)


def test_expert_is_the_ceiling_and_random_the_floor(tmp_path):
    expert = ev.evaluate(_suite("scripted", 3), tmp_path / "expert", progress=False)
    assert expert.results["successes"] == 3 and expert.results["ci95_high"] == 1.0
    assert all(r["end_reason"] == "terminate_action" for r in expert.per_episode)
    random = ev.evaluate(_suite("random", 2, max_steps=20), tmp_path / "random", progress=False)
    assert random.results["successes"] == 0 and random.results["ci95_low"] == 0.0
    assert [r["steps"] for r in random.per_episode] == [20, 20]
    # Same seeds, same scenes: both policies met the same cubes.
    assert [r["cube_x"] for r in random.per_episode] == [r["cube_x"] for r in expert.per_episode[:2]]


def test_results_do_not_depend_on_workers_and_outputs_are_readable(tmp_path):
    """Random actions (re-seeded per episode) make the recorded actions a sensitive check of independence."""
    suite = _suite("random", 3, max_steps=12, cube_color="random", num_distractors=1)
    runs = {}
    for workers in (1, 2):
        out, record = tmp_path / f"w{workers}", tmp_path / f"record{workers}"
        ev.evaluate(suite, out, workers=workers, video="all", record=record, progress=False)
        runs[workers] = (out, record)
    (out1, rec1), (out2, rec2) = runs[1], runs[2]
    assert _without_timing(out1) == _without_timing(out2)
    assert (out1 / ev.EPISODES_FILE).read_bytes() == (out2 / ev.EPISODES_FILE).read_bytes()
    results = _without_timing(out1)
    assert [r["seed"] for r in results["per_episode"]] == list(suite.seeds)
    assert set(results["per_variation"]) == {
        *("cube_color", "num_distractors", "cube_size", "cube_x", "cube_y", "family", "target")
    }

    lengths = list_episodes(rec1, CAMERA_NAMES)
    assert lengths == list_episodes(rec2, CAMERA_NAMES) == [12, 12, 12]
    for i in range(3):
        a, b = read_episode(rec1, CAMERA_NAMES, i), read_episode(rec2, CAMERA_NAMES, i)
        assert a.meta["seed"] == suite.seed_start + i and np.array_equal(a.actions, b.actions)
    with pytest.raises(UserError, match="record1: already holds"):
        ev.evaluate(suite, tmp_path / "again", record=rec1, progress=False)

    csv = pd.read_csv(out1 / ev.EPISODES_FILE)
    # the env's variation() (its "instruction" is the row's own column)
    variation = ["cube_color", "num_distractors", "cube_size", "cube_x", "cube_y", "family", "target"]
    assert list(csv.columns) == ev.episode_columns(results["per_episode"])
    head, tail = ev.results.ROW_COLUMNS[:4], ev.results.ROW_COLUMNS[4:]
    # the task's own final numbers (info["task_metrics"]) after "steps"
    assert list(csv.columns) == [*head, "final_is_grasped", "final_cube_height", *tail, *variation, "video"]
    assert (csv["final_cube_height"] > 0.05).sum() == csv["success"].sum()  # the expert lifts every cube
    for row in results["per_episode"]:
        frames = imageio.mimread(out1 / row["video"], format="FFMPEG")
        assert len(frames) == row["steps"] + 1  # every observation, the final one included
        assert frames[0].shape[0] % MACRO_BLOCK == 0 and frames[0].shape[1] % MACRO_BLOCK == 0
        assert frames[0].shape[:2] == (304, 576)  # 96x96 cameras upscaled 3x (auto) under the caption
    assert not [p for p in out1.rglob(".*")]  # no temp files left behind


def test_torchrun_shards_give_the_same_results(tmp_path):
    common = ["eval", "--policy", "scripted", "--episodes", "3", "--video", "none", "--workers", "1"]
    assert main(common + ["--out", str(tmp_path / "single")]) == 0
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "rt1_sim.cli",
        *common,
        "--out",
        str(tmp_path / "sharded"),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    sharded = json.loads((tmp_path / "sharded" / ev.RESULTS_FILE).read_text())
    assert sharded["timing"]["world_size"] == 2
    assert _without_timing(tmp_path / "sharded") == _without_timing(tmp_path / "single")


def test_rt1_checkpoint_is_evaluated_at_its_image_size(tmp_path):
    from rt1_sim.checkpoint import save_checkpoint
    from rt1_sim.model import checkpoint_state
    from rt1_sim.model.presets import get_preset
    from rt1_sim.model.rt1 import RT1

    path = tmp_path / "tiny.pt"
    save_checkpoint(
        path, checkpoint_state(RT1(get_preset("micro", image_height=32, image_width=32, crop_size=32)))
    )
    suite = _suite(str(path), 2, max_steps=4)
    for workers in (1, 2):
        report = ev.evaluate(
            suite, tmp_path / f"w{workers}", workers=workers, video="all", video_scale=1, progress=False
        )
        assert (
            report.results["policy"]["kind"] == "rt1"
            and len(report.results["policy"]["checkpoint_sha256"]) == 64
        )
    assert _without_timing(tmp_path / "w1") == _without_timing(tmp_path / "w2")
    frame = imageio.mimread(tmp_path / "w1" / report.per_episode[0]["video"], format="FFMPEG")[0]
    assert frame.shape == (48, 64, 3)  # two 32x32 cameras under the caption, padded to macro blocks
    with pytest.raises(ConfigError, match="image_size"):
        ev.evaluate(replace(suite, env_options={"image_size": [96, 96]}), tmp_path / "bad", progress=False)


def test_bad_checkpoint_and_config_keys_are_clear_errors(tmp_path, capsys):
    from rt1_sim.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="missing.pt: no such file"):
        ev.evaluate(_suite(str(tmp_path / "missing.pt"), 1), tmp_path / "out", progress=False)
    bad = tmp_path / "suite.json"
    bad.write_text(json.dumps({"episodes": 2, "policy": {"nmae": "random"}}))
    with pytest.raises(ConfigError, match=r"suite\.json: unknown key 'policy\.nmae'"):
        load_config(EvalConfig, bad)
    bad.write_text(json.dumps({"env_options": {"cube_colour": "red"}}))
    assert main(["eval", "--config", str(bad), "--policy", "random", "--out", str(tmp_path / "cli")]) == 2
    assert "suite.json: unknown key 'env_options.cube_colour'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="'episodes' must be int"):
        load_config(EvalConfig, None, ["episodes=many"])


def test_shipped_suites(tmp_path):
    default, hard = (
        load_config(EvalConfig, SUITES / "default.json"),
        load_config(EvalConfig, SUITES / "hard.json"),
    )
    assert default.episodes >= 100 and hard.episodes >= 100  # fewer trials swing run to run
    assert min(default.seed_start, hard.seed_start) >= EVAL_SEED_START  # disjoint from collection's seeds
    assert set(default.seeds).isdisjoint(hard.seeds)
    assert hard.env_options["cube_color"] == "random" and hard.env_options["num_distractors"] >= 2
    report = ev.evaluate(
        replace(hard, episodes=2, policy=EvalPolicyConfig(name="scripted")), tmp_path, progress=False
    )
    assert report.results["successes"] == 2


def test_auto_policy_falls_back_to_the_expert_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(
        "rt1_sim.eval.policy_choice.bundled_checkpoint", lambda env_id: tmp_path / "absent.pt"
    )
    with caplog.at_level(logging.WARNING):
        assert ev.resolve_policy("auto", "PandaPick-v0") == ev.PolicyChoice("scripted")
    assert "absent.pt" in caplog.text
    (tmp_path / "present.pt").touch()
    monkeypatch.setattr(
        "rt1_sim.eval.policy_choice.bundled_checkpoint", lambda env_id: tmp_path / "present.pt"
    )
    assert ev.resolve_policy("auto", "PandaPick-v0") == ev.PolicyChoice("rt1", tmp_path / "present.pt")


def test_auto_is_the_bundled_policy_of_the_suites_env() -> None:
    assert bundled_checkpoint("PandaPick-v0").name == "rt1_cpu.pt"
    assert bundled_checkpoint("PandaTabletop-v0").name == "rt1_multitask_cpu.pt"
    assert bundled_checkpoint("SomeoneElsesEnv-v0") is None
    assert ev.resolve_policy("auto", "SomeoneElsesEnv-v0") == ev.PolicyChoice("scripted")
    multitask = bundled_checkpoint("PandaTabletop-v0")
    assert ev.resolve_policy("auto", "PandaTabletop-v0") == ev.PolicyChoice("rt1", multitask)


def test_torch_is_not_imported_for_scripted_or_random(tmp_path):
    code = (
        "import sys; from rt1_sim.eval import evaluate; from rt1_sim.config import EvalConfig, "
        "EvalPolicyConfig; "
        "evaluate(EvalConfig(episodes=1, max_steps=3, policy=EvalPolicyConfig(name='random')), "
        f"{str(tmp_path)!r}, progress=False); assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


@pytest.mark.slow
def test_default_suite_ceiling_and_floor(tmp_path):
    expert = ev.evaluate(
        load_config(EvalConfig, SUITES / "default.json", ["policy.name=scripted"]),
        tmp_path / "expert",
        workers=2,
        progress=False,
    )
    assert expert.results["ci95_low"] >= 0.9
    random = ev.evaluate(
        load_config(EvalConfig, SUITES / "default.json", ["policy.name=random"]),
        tmp_path / "random",
        workers=2,
        progress=False,
    )
    assert random.results["ci95_high"] <= 0.1


def test_only_user_errors_are_one_line_and_bugs_keep_their_traceback(tmp_path, monkeypatch, capsys):
    out = ["--out", str(tmp_path / "out"), "--video", "none"]
    assert main(["eval", "--policy", str(tmp_path / "missing.pt"), *out]) == 2  # a CheckpointError
    assert "missing.pt: no such file" in capsys.readouterr().err

    def bug(*args, **kwargs):
        raise ValueError("a bug deep inside")

    monkeypatch.setattr("rt1_sim.eval.harness.resolve_env_options", bug)
    with pytest.raises(ValueError, match="a bug deep inside"):  # not swallowed as a one-line "user error"
        main(["eval", "--policy", "random", "--episodes", "1", *out])


# ---------------------------------------------------------------- output folders, --set blame, file modes
def test_an_existing_run_folder_is_refused_and_left_untouched_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "eval"
    common = ["eval", "--policy", "random", "--episodes", "1", "--workers", "1", "--set", "max_steps=3"]
    assert main([*common, "--video", "all", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert set(before) == {"results.json", "episodes.csv", "eval.log"} and (out / "videos").is_dir()
    capsys.readouterr()
    assert main([*common, "--video", "none", "--out", str(out)]) == 2
    assert "already holds" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # eval.log too
    assert main([*common, "--set", "env_options.cube_color=pink", "--out", str(out), "--overwrite"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # failed before writing
    assert main([*common, "--video", "none", "--seed-start", "5", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "videos").exists()  # nothing of the earlier run is left beside the new one
    assert json.loads((out / "results.json").read_text())["per_episode"][0]["seed"] == 5
    (out / "mine.txt").write_text("a user's file")
    assert main([*common, "--out", str(out), "--overwrite"]) == 2
    assert "does not write here" in capsys.readouterr().err


def test_output_paths_that_cannot_be_folders_are_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    common = ["eval", "--policy", "random", "--episodes", "1", "--workers", "1"]
    for extra, message in [
        (["--out", str(afile)], "--out"),
        (["--out", str(tmp_path / "o"), "--record", str(afile)], "--record"),
    ]:
        assert main([*common, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{message} {afile}: is a file" in err
    assert not (tmp_path / "o").exists()


def test_set_errors_name_the_override_not_the_suite_file(tmp_path, capsys):
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"episodes": 1}))
    for override, message in [
        ("env_options.cube_colour=red", "--set env_options.cube_colour=red (over"),
        ("env_options.cube_color=pink", "--set env_options.cube_color=pink (over"),
    ]:
        assert (
            main(
                [
                    "eval",
                    "--config",
                    str(suite),
                    "--policy",
                    "random",
                    "--set",
                    override,
                    "--out",
                    str(tmp_path / "o"),
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert message in err and not err.startswith(f"rt1-sim eval: error: {suite}"), err
    assert harness.blame("s.json", ["episodes=2"], "env_options.x") == "s.json"


def test_results_get_the_users_umask_and_exact_interval_ends(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        report = ev.evaluate(_suite("random", 2, max_steps=3), tmp_path / "m", progress=False)
    finally:
        os.umask(old)
    for name in (ev.RESULTS_FILE, ev.EPISODES_FILE):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == 0o644
    assert (
        report.results["ci95_low"] == 0.0
        and '"ci95_low": 0.0,' in (tmp_path / "m" / "results.json").read_text()
    )
    assert wilson_interval(0, 100)[0] == 0.0 and wilson_interval(100, 100)[1] == 1.0


def test_default_run_folder_is_new_per_run_and_names_the_checkpoints_run():
    config = EvalConfig(name="default", policy=EvalPolicyConfig(name="runs/rt1_cpu/checkpoint_last.pt"))
    out = eval_cli.default_out(config)
    assert out.parent == Path("runs/eval") and out.name.startswith("default_rt1_cpu-checkpoint_last_")
    assert eval_cli.default_out(replace(config, policy=EvalPolicyConfig(name="scripted"))).name.startswith(
        "default_scripted_"
    )
    bundled = eval_cli.default_out(
        replace(config, policy=EvalPolicyConfig(name="auto"))
    )  # the bundled checkpoint
    assert bundled.name.startswith(
        "default_rt1_cpu_" if bundled_checkpoint("PandaPick-v0").is_file() else "default_scripted_"
    )


def test_video_upscale_is_nearest_neighbour():
    obs = {name: np.arange(96 * 96 * 3, dtype=np.uint8).reshape(96, 96, 3) for name in CAMERA_NAMES}
    native, auto = video.video_frame(obs, 0, False, scale=1), video.video_frame(obs, 0, False)
    assert native.shape == (112, 192, 3) and auto.shape == (304, 576, 3)
    assert np.array_equal(auto[-288:, :288][::3, ::3], obs["front"])


def test_a_suite_without_max_steps_takes_the_envs_limit(tmp_path, caplog):
    """The default suite sets no limit, so `--set env_id=PandaTabletop-v0` runs to that env's 200 steps (not
    PandaPick-v0's 80); a suite's own max_steps wins; results.json and eval.log say which was used."""
    default = load_config(EvalConfig, SUITES / "default.json")
    assert default.max_steps is None
    tabletop = replace(
        default,
        episodes=1,
        env_id="PandaTabletop-v0",
        env_options={"task": "drawer", "image_size": [32, 32]},
        policy=EvalPolicyConfig(name="scripted"),
    )
    with caplog.at_level(logging.INFO, logger="rt1_sim.eval.harness"):
        report = ev.evaluate(tabletop, tmp_path / "unset", progress=False)
    assert report.results["max_steps"] == 200
    assert "episode limit: 200 steps (the env's registered limit)" in caplog.text
    capped = ev.evaluate(replace(tabletop, max_steps=3), tmp_path / "set", progress=False)
    assert capped.results["max_steps"] == 3 and capped.per_episode[0]["steps"] == 3


@pytest.mark.parametrize(
    ("policy", "env_id", "env_options", "max_steps"),
    [
        # the bundled RT-1 on PandaPick-v0's hard variations: successes, failures and episodes that end at
        # different steps, so envs are refilled while the others run and the batch shrinks at the end
        ("auto", "PandaPick-v0", {"cube_color": "random", "num_distractors": 2, "image_size": [96, 96]}, 30),
        # one scripted expert per env, all six families
        ("scripted", "PandaTabletop-v0", {"task": "mix", "image_size": [32, 32]}, None),
    ],
)
def test_envs_per_worker_changes_no_row_and_no_action(tmp_path, policy, env_id, env_options, max_steps):
    """K envs per worker (one batched RT-1 forward for all of them) give the same episodes.csv and, step for
    step, the same actions as one env per worker, over more than one chunk of seeds per worker."""
    suite = EvalConfig(
        name="batching",
        episodes=11,  # at K=2: chunks of 8 and 3 seeds, so a worker's batch also starts over
        seed_start=EVAL_SEED_START + 40,
        max_steps=max_steps,
        env_id=env_id,
        env_options=env_options,
        policy=EvalPolicyConfig(name=policy),
    )
    rows, actions = {}, {}
    for k in (1, 2):
        out, record = tmp_path / f"k{k}", tmp_path / f"record{k}"
        ev.evaluate(suite, out, envs_per_worker=k, record=record, progress=False)
        rows[k] = pd.read_csv(out / "episodes.csv")
        lengths = list_episodes(record, CAMERA_NAMES)
        actions[k] = [read_episode(record, CAMERA_NAMES, i, n).actions for i, n in enumerate(lengths)]
    pd.testing.assert_frame_equal(rows[1], rows[2])
    assert len(set(rows[1]["steps"])) > 1  # episodes of different lengths: envs were refilled
    for a, b in zip(actions[1], actions[2], strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(("family", "metrics"), [("drawer", {"drawer_opening"}), ("pick", {"target_height"})])
def test_an_episode_reports_its_tasks_own_metrics(family: str, metrics: set[str]) -> None:
    """rt1_sim reads the env's is_success and its task's numbers under info["task_metrics"]: a drawer episode
    has no lifted height to report, and none is made up for it."""
    from envs import make_expert
    from rt1_sim.rollout import rollout

    env = gym.make("PandaTabletop-v0", task=family, image_size=(32, 32))
    result = rollout(env, make_expert(env, seed=0), seed=3)
    env.close()
    assert result.success and metrics <= set(result.task_metrics)
    assert all(isinstance(v, (bool, float)) for v in result.task_metrics.values())
    assert not any("cube" in k for k in result.task_metrics)


def test_rt1_sim_names_no_object_of_any_task() -> None:
    """The library is task-agnostic: what a task is made of lives in envs/ (the families' files)."""
    package = Path(ev.__file__).resolve().parent.parent
    offenders = [
        f"{path.relative_to(package.parent)}:{n}"
        for path in sorted(package.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "cube" in line.lower()
    ]
    assert offenders == []
