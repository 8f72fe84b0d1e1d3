"""The contracts every part of rt1-sim shares: the action table, camera names and dataset column names.

Env, scripted expert, dataset writer/reader and the action tokenizer all import these; no bound, camera or
column name is written as a literal anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActionDim:
    """One named block of the RT-1 action: `size` values in [low, high] (`discrete`: a 0/1 flag)."""

    name: str
    size: int
    low: float
    high: float
    discrete: bool = False


# Per control step (10 Hz by default, see envs/robot.py). world_vector is an end-effector displacement in
# metres, rotation_delta a (roll, pitch, yaw) increment in radians, gripper_closedness an absolute command
# (-1 fully open, +1 fully closed) and terminate_episode a flag (> 0.5 asks the env to end the episode).
# Bounds are narrower than the paper's normalised [-1, 1] / [-pi/2, pi/2] so that 256 bins give sub-millimetre
# (0.31 mm) and 2 mrad resolution for this arm and task.
ACTION_TABLE: tuple[ActionDim, ...] = (
    ActionDim("world_vector", 3, -0.04, 0.04),
    ActionDim("rotation_delta", 3, -0.25, 0.25),
    ActionDim("gripper_closedness", 1, -1.0, 1.0),
    ActionDim("terminate_episode", 1, 0.0, 1.0, discrete=True),
)
ACTION_KEYS: tuple[str, ...] = tuple(d.name for d in ACTION_TABLE)
ACTION_SIZE: int = sum(d.size for d in ACTION_TABLE)  # 8: the flat Box the env takes
ACTION_LOW = np.concatenate([np.full(d.size, d.low, np.float32) for d in ACTION_TABLE])
ACTION_HIGH = np.concatenate([np.full(d.size, d.high, np.float32) for d in ACTION_TABLE])
# Where each named block sits in the flat action vector.
ACTION_SLICES: dict[str, slice] = {}
_start = 0
for _d in ACTION_TABLE:
    ACTION_SLICES[_d.name] = slice(_start, _start + _d.size)
    _start += _d.size
del _start, _d


def action_to_dict(action: np.ndarray) -> dict[str, np.ndarray]:
    """Flat (..., ACTION_SIZE) array -> {name: (..., size)} views, in table order."""
    action = np.asarray(action)
    if action.shape[-1] != ACTION_SIZE:
        raise ValueError(f"action has {action.shape[-1]} values in its last axis, expected {ACTION_SIZE}")
    return {name: action[..., s] for name, s in ACTION_SLICES.items()}


def dict_to_action(action: dict[str, np.ndarray]) -> np.ndarray:
    """{name: (..., size)} -> flat float32 (..., ACTION_SIZE) array; every table key must be present."""
    missing = [k for k in ACTION_KEYS if k not in action]
    if missing:
        raise KeyError(f"action dict lacks {missing}; expected keys {list(ACTION_KEYS)}")
    # A scalar is accepted for a block of size 1; otherwise the last axis must be the block's size.
    parts = [np.atleast_1d(np.asarray(action[d.name], np.float32)) for d in ACTION_TABLE]
    for d, part in zip(ACTION_TABLE, parts):
        if part.shape[-1] != d.size:
            raise ValueError(
                f"action[{d.name!r}] has {part.shape[-1]} values in its last axis, expected {d.size}"
            )
    return np.concatenate(parts, axis=-1)


# Cameras, in the order every consumer stacks them.
CAMERA_NAMES: tuple[str, ...] = ("front", "wrist")
# The largest camera side (pixels) an env renders and a network takes: the paper's 300x300 and IO's 256x320
# fit with room to spare; a mistyped size (100000) would allocate tens of GiB before failing.
MAX_IMAGE_SIDE = 1024

# Proprioception as the env reports it (observation keys and sizes besides the camera images).
PROPRIO_SIZES: dict[str, int] = {"ee_pos": 3, "ee_orn": 4, "gripper": 1, "joint_pos": 9}

# ---- dataset columns (IO reproduction; the file and folder names are rt1_sim.data.episodes') ----
# results.csv: one row per frame, the action commanded after that frame was observed.
ACTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "world_vector": ("ee_command_position_x", "ee_command_position_y", "ee_command_position_z"),
    "rotation_delta": ("ee_command_rotation_x", "ee_command_rotation_y", "ee_command_rotation_z"),
    "gripper_closedness": ("gripper_closedness_commanded",),
    "terminate_episode": ("terminate_episode",),
}
RESULTS_COLUMNS: tuple[str, ...] = tuple(c for d in ACTION_TABLE for c in ACTION_COLUMNS[d.name])
# results_raw.csv: the state at each frame (7 arm joints + 2 fingers, cube position + xyzw quaternion) and the
# instruction with underscores for spaces, as IO's multi-task loader reads it.
JOINT_COLUMNS: tuple[str, ...] = tuple(f"joint_{i}" for i in range(9))
OBJECT_POSE_COLUMNS: tuple[str, ...] = tuple(
    f"tar_obj_pose_{k}" for k in ("x", "y", "z", "rx", "ry", "rz", "rw")
)
# Optional (the multi-task env's tasks log them, PandaPick-v0 does not): where the task wants its target to
# end up, metres (`info["goal_pos"]`), for training-time auxiliary losses.
GOAL_COLUMNS: tuple[str, ...] = ("goal_pos_x", "goal_pos_y", "goal_pos_z")
TASK_COLUMN = "task_description"
RAW_COLUMNS: tuple[str, ...] = (
    JOINT_COLUMNS + OBJECT_POSE_COLUMNS + (TASK_COLUMN,)
)  # GOAL_COLUMNS go before the task

assert all(d.size == len(ACTION_COLUMNS[d.name]) for d in ACTION_TABLE)
