"""PandaPick-v0 is pinned: the same seeds give the same bytes as before the multi-task refactor.

The bundled policy, its datasets and its figures were made with PandaPick-v0; the hashes below were computed on the
single-task code (commit 782e11f) and must never change. They cover both cameras, the proprioception, the raw state
logged in results_raw.csv and the info dict over a reset and a few steps, for a few seeds, with default options and
with the hard suite's options (random colour and size, three distractors, light and camera jitter).
"""

from __future__ import annotations

import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from envs.spaces import ACTION_SIZE, ACTION_SLICES

HARD_OPTIONS = {
    "x_range": [0.4, 0.7],
    "y_range": [-0.25, 0.25],
    "cube_color": "random",
    "cube_size": [0.04, 0.06],
    "num_distractors": 3,
    "light_jitter": 0.2,
    "camera_jitter": 0.01,
}
RANGED_OPTIONS = {**HARD_OPTIONS, "num_distractors": [0, 4]}
SEEDS = (0, 1, 2000000)
# (options name, sha256 over the seeds above): computed on the single-task PandaPickEnv.
PINNED = {
    "default": "cacbfcea80b62106cde32bf5dca6bee5231a3abf4f18390bdfa482a565b46767",
    "hard": "9ac3796d8de12f1ac56e4f17652a80ffda8e6b5d86d31e70624e7fb4b4903770",
    "ranged": "7e3584e80676b0918947344bb5e87737545f9251df34375fddd5e56dd329b5da",
}
OPTIONS = {"default": {}, "hard": HARD_OPTIONS, "ranged": RANGED_OPTIONS}


def _actions() -> list[np.ndarray]:
    """A fixed action sequence: move, turn, close the gripper, open it."""
    out = []
    for i in range(4):
        a = np.zeros(ACTION_SIZE, np.float32)
        a[ACTION_SLICES["world_vector"]] = (0.02, 0.015 * (-1) ** i, -0.03)
        a[ACTION_SLICES["rotation_delta"]] = (0.0, 0.0, 0.1)
        a[ACTION_SLICES["gripper_closedness"]] = 1.0 if i == 2 else -1.0
        out.append(a)
    return out


def _info_bytes(info: dict) -> bytes:
    plain = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in sorted(info.items())}
    return json.dumps({k: plain[k] for k in sorted(plain)}, default=float).encode()


def episode_digest(options: dict) -> str:
    """sha256 over every frame, raw state and info of `SEEDS` (reset + 4 steps each)."""
    h = hashlib.sha256()
    env = gym.make("PandaPick-v0", **options)
    for seed in SEEDS:
        obs, info = env.reset(seed=seed)
        steps = [(obs, info)] + [env.step(a)[::4] for a in _actions()]
        for obs, info in steps:
            for key in sorted(obs):
                h.update(key.encode())
                h.update(np.ascontiguousarray(obs[key]).tobytes())
            h.update(np.asarray(env.unwrapped.raw_state(), np.float64).tobytes())
            h.update(_info_bytes({k: v for k, v in info.items() if k in PINNED_INFO_KEYS}))
    env.close()
    return h.hexdigest()


# The info keys PandaPick-v0 had before the refactor (new keys may be added; these must keep their values).
PINNED_INFO_KEYS = (
    "is_success",
    "is_grasped",
    "cube_height",
    "instruction",
    "success_once",
    "raw_state",
    "end_reason",
)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pick_bytes_are_unchanged(name):
    assert episode_digest(OPTIONS[name]) == PINNED[name]
