"""The PandaPick env: API conformance, determinism, isolation, variations, termination."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401
from envs.panda_pick import COLORS, PandaPickEnv
from envs.spaces import ACTION_SIZE, ACTION_SLICES, CAMERA_NAMES


def _action(world=(0.0, 0.0, 0.0), gripper=-1.0, terminate=0.0) -> np.ndarray:
    a = np.zeros(ACTION_SIZE, np.float32)
    a[ACTION_SLICES["world_vector"]] = world
    a[ACTION_SLICES["gripper_closedness"]] = gripper
    a[ACTION_SLICES["terminate_episode"]] = terminate
    return a


def _run(env: gym.Env, seed: int, n: int) -> list[dict[str, np.ndarray]]:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for i in range(n):
        obs, *_ = env.step(_action(world=(0.02, 0.01 * (-1) ** i, -0.01)))
        out.append(obs)
    return out


def test_env_never_imports_torch():
    code = (
        "import sys, gymnasium as gym, envs, envs.tasks.single_cube\n"
        "env = gym.make('PandaPick-v0'); env.reset(seed=0); env.step(env.action_space.sample())\n"
        "assert 'torch' not in sys.modules, 'envs imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_passes_gymnasium_env_checker():
    env = gym.make("PandaPick-v0", render_mode="rgb_array").unwrapped  # made through the registry: has a spec
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails the test
        check_env(env)
    frame = env.render()
    assert frame.shape == (96, 192, 3) and frame.dtype == np.uint8
    env.close()


def test_observation_layout_and_image_size():
    env = PandaPickEnv(image_size=(64, 80))
    obs, info = env.reset(seed=3)
    for cam in CAMERA_NAMES:
        assert obs[cam].shape == (64, 80, 3) and obs[cam].dtype == np.uint8
    assert obs["joint_pos"].shape == (9,) and obs["ee_orn"].shape == (4,)
    assert env.observation_space.contains(obs)
    assert info["instruction"] == "pick up the red cube"
    env.close()


def test_same_seed_gives_identical_episode_and_different_seeds_differ():
    env = gym.make("PandaPick-v0")
    a, b, c = _run(env, 7, 5), _run(env, 7, 5), _run(env, 8, 5)
    for oa, ob in zip(a, b):
        for k in oa:
            assert np.array_equal(oa[k], ob[k]), k
    assert not np.array_equal(a[0]["front"], c[0]["front"])


def test_two_envs_in_one_process_do_not_interfere():
    alone = _run(PandaPickEnv(), 11, 4)
    e1, e2 = PandaPickEnv(), PandaPickEnv()
    e1.reset(seed=11)
    e2.reset(seed=99)
    interleaved = []
    for i in range(4):
        e2.step(_action(world=(-0.03, 0.03, 0.02)))
        obs, *_ = e1.step(_action(world=(0.02, 0.01 * (-1) ** i, -0.01)))
        interleaved.append(obs)
    e2.close()
    assert np.array_equal(interleaved[-1]["front"], alone[-1]["front"])
    assert np.array_equal(interleaved[-1]["joint_pos"], alone[-1]["joint_pos"])
    e1.close()


def test_close_releases_the_client():
    env = PandaPickEnv()
    env.reset(seed=0)
    env.close()
    env.close()  # idempotent
    with pytest.raises(Exception):
        env.step(_action())


def test_moves_in_base_and_end_effector_frames():
    env = PandaPickEnv()
    obs, _ = env.reset(seed=0)
    start = obs["ee_pos"].copy()
    for _ in range(3):
        obs, *_ = env.step(_action(world=(0.03, 0.0, 0.0)))
    assert obs["ee_pos"][0] - start[0] > 0.05  # base frame: +x moves away from the robot
    ee = PandaPickEnv(action_frame="ee")
    obs, _ = ee.reset(seed=0)
    start = obs["ee_pos"].copy()
    for _ in range(3):
        obs, *_ = ee.step(_action(world=(0.0, 0.0, 0.03)))
    assert start[2] - obs["ee_pos"][2] > 0.05  # end-effector frame: +z points along the fingers, down
    env.close(), ee.close()


def test_terminate_action_and_time_limit():
    env = gym.make("PandaPick-v0", max_episode_steps=5)
    env.reset(seed=0)
    *_, terminated, truncated, info = env.step(_action(terminate=1.0))
    assert (
        terminated and not truncated and info["end_reason"] == "terminate_action" and not info["is_success"]
    )
    env.reset(seed=0)
    for _ in range(5):
        *_, terminated, truncated, info = env.step(_action())
    assert truncated and not terminated
    quiet = gym.make("PandaPick-v0", terminate_on_action=False)
    quiet.reset(seed=0)
    assert not quiet.step(_action(terminate=1.0))[2]


def test_variations_colour_size_distractors_and_bad_options():
    env = PandaPickEnv(
        cube_color="random",
        cube_size=(0.04, 0.06),
        num_distractors=3,
        x_range=(0.4, 0.7),
        light_jitter=0.2,
        camera_jitter=0.01,
    )
    colours = set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        colours.add(env.cube_color_name)
        assert info["instruction"] == f"pick up the {env.cube_color_name} cube"
        assert 0.04 <= env.cube_size <= 0.06 and 0.4 <= env.privileged_state()["cube_pos"][0] <= 0.7
        assert sum(name.startswith("distractor") for name in env.sim.bodies) == 3
    assert len(colours) >= 3 and colours <= set(COLORS)
    env.close()
    ranged = PandaPickEnv(num_distractors=(0, 4))
    counts = set()
    for seed in range(12):
        ranged.reset(seed=seed)
        n = sum(name.startswith("distractor") for name in ranged.sim.bodies)
        assert ranged.distractor_count == n
        counts.add(n)
    assert len(counts) >= 3 and counts <= set(range(5))
    ranged.close()
    for bad in (
        {"cube_color": "pink"},
        {"x_range": (0.7, 0.4)},
        {"num_distractors": 9},
        {"num_distractors": (3, 1)},
        {"cube_size": 0.2},
        {"action_frame": "tool"},
        {"render_mode": "human"},
        {"lift_height": -0.05},
        {"lift_height": float("nan")},
        {"cube_size": float("nan")},
        {"x_range": (0.4, float("inf"))},
        {"light_jitter": float("inf")},
        {"camera_jitter": -1.0},
    ):
        with pytest.raises(ValueError):
            PandaPickEnv(**bad)


def test_success_needs_the_cube_lifted_between_the_fingers():
    env = PandaPickEnv()
    env.reset(seed=0)
    # Lifting the empty gripper high is not success: the cube itself must rise.
    for _ in range(4):
        *_, info = env.step(_action(world=(0.0, 0.0, 0.04), gripper=1.0))
    assert not info["is_success"] and not info["is_grasped"] and abs(info["cube_height"]) < 1e-3
    env.close()


def test_variation_is_what_the_evaluator_logged():
    env = PandaPickEnv(cube_color="random", cube_size=(0.04, 0.06), num_distractors=(0, 4))
    for seed in range(3):
        env.reset(seed=seed)
        state = env.privileged_state()
        expected = {
            "cube_color": env.cube_color_name,
            "num_distractors": env.distractor_count,
            "cube_size": float(state["cube_size"]),
            "cube_x": float(state["cube_pos"][0]),
            "cube_y": float(state["cube_pos"][1]),
        }
        variation = env.variation()
        assert {k: variation[k] for k in expected} == expected
        assert variation["family"] == "pick" and variation["target"] == f"{env.cube_color_name} cube"
    env.close()


def test_option_attributes_stay_readable():
    env = PandaPickEnv(cube_size=(0.04, 0.06), x_range=(0.4, 0.7), num_distractors=(0, 4), light_jitter=0.2)
    assert env.cube_size_range == (0.04, 0.06) and env.x_range == (0.4, 0.7) and env.y_range == (-0.15, 0.15)
    assert env.num_distractors == (0, 4) and env.light_jitter == 0.2 and env.cube_color == "red"
    assert env.success_hold_steps == 3 and env.terminate_on_action
    env.close()
