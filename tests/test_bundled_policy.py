"""The bundled RT-1 checkpoint (assets/checkpoints/rt1_cpu.pt): present, small, the cpu preset on both cameras,
picked by `rt1-sim eval`'s default, and acting as it did when it was shipped. CI never retrains it."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from envs.spaces import ACTION_HIGH, ACTION_LOW, ACTION_SLICES, CAMERA_NAMES
from rt1_sim.checkpoint import load_checkpoint
from rt1_sim.config import DEFAULT_ENV_ID, EvalConfig
from rt1_sim.config_loader import load_config
from rt1_sim.eval import resolve_policy
from rt1_sim.model.action_tokenizer import action_table_rows
from rt1_sim.model.presets import PRESETS, NetworkConfig
from rt1_sim.policy import RT1Policy
from rt1_sim.resources import bundled_checkpoint, default_eval_suite

BUNDLED_CHECKPOINT = bundled_checkpoint(DEFAULT_ENV_ID)
DEFAULT_SUITE = default_eval_suite()

# The first actions on the default suite's first scene (seed 1000000), recorded when the checkpoint was shipped
# (`python -P tests/test_bundled_policy.py` prints them; -P keeps tests/envs from hiding the envs package). Detokenised bin centres: equal up to one bin.
SEED = 1_000_000
EXPECTED_ACTIONS = [
    [-0.04, -0.000315, -0.04, 0.0, 0.0, 0.25, -1.0, 0.0],
    [-0.04, 0.0, -0.04, 0.0, 0.0, 0.25, -1.0, 0.0],
    [-0.022362, 0.0, -0.04, 0.0, 0.0, 0.25, -1.0, 0.0],
    [-0.002835, 0.0, -0.04, 0.0, 0.0, 0.01378, -1.0, 0.0],
]


def first_actions(steps: int = 4) -> tuple[list[np.ndarray], dict]:
    """RT1Policy from the bundled file driving the default suite's first scene for `steps` steps."""
    policy = RT1Policy.from_checkpoint(BUNDLED_CHECKPOINT)
    env = envs.PandaPickEnv()
    try:
        obs, info = env.reset(seed=SEED)
        start = env.privileged_state()
        policy.reset(info["instruction"])
        actions = []
        for _ in range(steps):
            action = policy.act(obs)
            actions.append(action)
            obs, *_ = env.step(action)
    finally:
        env.close()
    return actions, start


def test_bundled_checkpoint_is_the_cpu_preset_on_both_cameras() -> None:
    assert BUNDLED_CHECKPOINT.stat().st_size < 50 * 2**20
    state = load_checkpoint(BUNDLED_CHECKPOINT)  # weights_only=True
    config = state["model_config"]
    # as a policy reads it: a field added since (efficientnet_family) takes its default
    assert NetworkConfig.from_dict(config["network"], base=NetworkConfig()) == PRESETS["cpu"]
    assert tuple(config["cam_view"]) == CAMERA_NAMES and config["time_sequence_length"] == 6
    assert state["action_table"] == action_table_rows()
    assert {"optimizer", "scheduler", "rng", "step"} <= set(state)  # the run's checkpoint_last: resumable
    trained = state["config"]  # the resolved training config
    # Trained on the hard suite's variations and on default scenes (README: the bundled policy's recipe).
    assert trained["preset"] == "cpu" and trained["data_path"] == [
        "data/panda_pick_varied",
        "data/panda_pick_default",
    ]


def test_rt1_sim_eval_defaults_to_the_bundled_policy_on_unseen_seeds() -> None:
    suite = load_config(EvalConfig, DEFAULT_SUITE)
    choice = resolve_policy(suite.policy.name, suite.env_id)
    assert choice.kind == "rt1" and choice.checkpoint == BUNDLED_CHECKPOINT
    assert suite.episodes >= 100 and min(suite.seeds) >= 1_000_000  # collection used seeds 0..999


def test_bundled_policy_acts_as_when_it_was_shipped() -> None:
    actions, start = first_actions()
    bin_width = (ACTION_HIGH - ACTION_LOW) / 255
    bins_off = np.abs(np.stack(actions) - np.asarray(EXPECTED_ACTIONS)) / bin_width  # (steps, ACTION_SIZE)
    assert bins_off.max() <= 1.01, np.stack(actions)
    # And sensibly: it heads for the cube with the gripper open, and does not ask to stop.
    move = np.sum([a[ACTION_SLICES["world_vector"]][:2] for a in actions], axis=0)
    to_cube = np.asarray(start["cube_pos"])[:2] - np.asarray(start["ee_pos"])[:2]
    assert float(move @ to_cube) > 0
    assert all(a[ACTION_SLICES["gripper_closedness"]][0] < 0 for a in actions)
    assert all(a[ACTION_SLICES["terminate_episode"]][0] < 0.5 for a in actions)


if __name__ == "__main__":
    np.set_printoptions(precision=6, suppress=True)
    for action in first_actions()[0]:
        print("    " + repr([round(float(x), 6) for x in action]) + ",")
    pytest.main([__file__, "-q"])
