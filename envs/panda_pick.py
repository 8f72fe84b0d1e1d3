"""PandaPickEnv (PandaPick-v0): pick up a cube with a Franka Panda; the single-task env of the bundled policy.

It is the composed `TabletopEnv` with the single-cube `PickCubeTask` (envs/tasks/single_cube.py): the same
seed gives the same bytes as the env had before the multi-task families existed (tests/envs/test_pick_bytes.py
pins them). Success: the cube itself is lifted at least `lift_height` (5 cm) above its resting height while
touching both fingers; the episode terminates once that has held for `success_hold_steps` control steps, or
(if `terminate_on_action`) when the action's terminate flag exceeds 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.tabletop import (
    DEFAULT_IMAGE_SIZE,
    IO_IMAGE_SIZE,
    TABLE_RGBA,
    FrontCameraPose,
    TabletopEnv,
    ViewOptions,
)
from envs.tasks.base import Task
from envs.tasks.single_cube import COLORS, DISTRACTOR_SHAPES, PickCubeOptions, PickCubeTask

__all__ = [
    "COLORS",
    "DEFAULT_IMAGE_SIZE",
    "DISTRACTOR_SHAPES",
    "IO_IMAGE_SIZE",
    "TABLE_RGBA",
    "FrontCameraPose",
    "PandaPickEnv",
]


def _pick_options(
    cube_color, cube_size, x_range, y_range, yaw_range, num_distractors, lift_height
) -> PickCubeOptions:
    """Validate PandaPick-v0's scene options (each bad one is a ValueError naming it)."""
    if cube_color != "random" and cube_color not in COLORS:
        raise ValueError(f"cube_color must be 'random' or one of {sorted(COLORS)}, got {cube_color!r}")
    for name, rng in (("x_range", x_range), ("y_range", y_range), ("yaw_range", yaw_range)):
        if len(rng) != 2 or not np.isfinite(rng).all() or rng[0] > rng[1]:
            raise ValueError(f"{name} must be (low, high), finite, with low <= high, got {rng}")
    if not (np.isfinite(lift_height) and 0.01 <= lift_height <= 0.2):
        raise ValueError(f"lift_height must be in [0.01, 0.2] m, got {lift_height}")
    sizes = (cube_size, cube_size) if np.isscalar(cube_size) else tuple(cube_size)
    if len(sizes) != 2 or not 0.02 <= sizes[0] <= sizes[1] <= 0.07:  # NaN fails the comparison too
        raise ValueError(f"cube_size must be in [0.02, 0.07] m (the gripper opens 8 cm), got {cube_size}")
    counts = (num_distractors, num_distractors) if np.isscalar(num_distractors) else tuple(num_distractors)
    if len(counts) != 2 or not 0 <= counts[0] <= counts[1] <= 4 or any(int(c) != c for c in counts):
        raise ValueError(
            f"num_distractors must be an integer or a (low, high) range in [0, 4], got {num_distractors}"
        )
    # A scalar keeps the draw order of a fixed count; a (low, high) range draws the count per episode.
    count = num_distractors if np.isscalar(num_distractors) else tuple(int(c) for c in counts)
    return PickCubeOptions(
        cube_color=cube_color,
        cube_size_range=sizes,
        x_range=tuple(x_range),
        y_range=tuple(y_range),
        yaw_range=tuple(yaw_range),
        num_distractors=count,
        lift_height=lift_height,
    )


class PandaPickEnv(TabletopEnv):
    """Gymnasium env: Dict observation (`front`, `wrist` uint8 images + proprioception), flat Box RT-1 action.

    Every scene variation is a constructor option; `reset(seed=s)` fully determines the episode (same seed ->
    byte-identical images and states). One PyBullet client per instance; `close()` releases it.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
        front_fov: float = 45.0,
        wrist_fov: float = 75.0,
        cube_color: str = "red",
        cube_size: float | Sequence[float] = 0.05,
        x_range: Sequence[float] = (0.45, 0.65),
        y_range: Sequence[float] = (-0.15, 0.15),
        yaw_range: Sequence[float] = (-np.pi / 4, np.pi / 4),
        num_distractors: int | Sequence[int] = 0,
        light_direction: Sequence[float] = (0.6, 0.4, 1.0),
        light_jitter: float = 0.0,
        camera_jitter: float = 0.0,
        lift_height: float = 0.05,
        success_hold_steps: int = 3,
        terminate_on_success: bool = True,
        terminate_on_action: bool = True,
        action_frame: str = "base",
        control_substeps: int = 24,
    ) -> None:
        view = ViewOptions(
            render_mode=render_mode,
            image_size=tuple(image_size),
            front_fov=front_fov,
            wrist_fov=wrist_fov,
            light_direction=tuple(light_direction),
            light_jitter=light_jitter,
            camera_jitter=camera_jitter,
            success_hold_steps=success_hold_steps,
            terminate_on_success=terminate_on_success,
            terminate_on_action=terminate_on_action,
            action_frame=action_frame,
            control_substeps=control_substeps,
        )
        options = _pick_options(
            cube_color, cube_size, x_range, y_range, yaw_range, num_distractors, lift_height
        )
        super().__init__(view)
        self.pick_task = PickCubeTask(self.sim, self.robot, options)
        # The option attributes the single-task env has always exposed.
        self.cube_color, self.cube_size_range = options.cube_color, options.cube_size_range
        self.x_range, self.y_range, self.yaw_range = options.x_range, options.y_range, options.yaw_range
        self.num_distractors, self.lift_height = options.num_distractors, options.lift_height
        self.light_jitter, self.camera_jitter = view.light_jitter, view.camera_jitter
        self.success_hold_steps = view.success_hold_steps
        self.terminate_on_success, self.terminate_on_action = (
            view.terminate_on_success,
            view.terminate_on_action,
        )

    def _select_task(self, rng: np.random.Generator) -> Task:
        return self.pick_task

    # ---- the single-task env's own names ----
    @property
    def cube_color_name(self) -> str:
        return self.pick_task.cube_color_name

    @property
    def cube_size(self) -> float:
        return self.pick_task.cube_size

    @property
    def cube_rest_z(self) -> float:
        return self.pick_task.cube_rest_z

    @property
    def distractor_count(self) -> int:
        return self.pick_task.distractor_count

    def is_grasped(self) -> bool:
        """Both fingers touch the cube."""
        return self.pick_task.is_grasped()

    def cube_height(self) -> float:
        """How far the cube's centre is above its resting height, metres."""
        return self.pick_task.cube_height()
