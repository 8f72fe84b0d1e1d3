"""The env: one `Sim` + one `Panda` + a `Task`, seen by a fixed `front` and a hand-mounted `wrist` camera.

Frame: the robot base is at the origin on the table top (z = 0), x points away from the robot into the
workspace, +y is to the right as seen by the front camera (which looks back at the robot from x = 1 m).
Control runs at 10 Hz (24 physics substeps of 1/240 s each, see envs/robot.py). `TabletopEnv` holds everything
the task families share (cameras, observation, action handling, the success hold, termination); subclasses
choose the task per episode: `PandaPickEnv` (envs/panda_pick.py) always the single-cube pick,
`PandaTabletopEnv` (below) a family from envs/tasks/ or a seeded uniform mix of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.robot import Panda, yaw_of
from envs.sim import CameraConfig, Sim
from envs.spaces import (
    ACTION_HIGH,
    ACTION_LOW,
    ACTION_SIZE,
    CAMERA_NAMES,
    MAX_IMAGE_SIDE,
    PROPRIO_SIZES,
    action_to_dict,
)
from envs.tasks import TASKS, TabletopOptions
from envs.tasks.base import Task

TABLE_RGBA = (0.62, 0.6, 0.56, 1.0)
DEFAULT_IMAGE_SIZE = (96, 96)  # (H, W): what the bundled CPU policy consumes
IO_IMAGE_SIZE = (256, 320)  # what the IO reproduction feeds its network
SETTLE_STEPS = 10  # physics steps after building the scene, so objects rest on the table


@dataclass(frozen=True)
class FrontCameraPose:
    eye: tuple[float, float, float] = (1.00, 0.0, 0.62)
    target: tuple[float, float, float] = (0.48, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)


@dataclass(frozen=True)
class ViewOptions:
    """What every env shares: cameras, light, control and termination settings (validated on construction)."""

    render_mode: str | None = None
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE  # (H, W)
    front_fov: float = 45.0  # degrees, vertical
    wrist_fov: float = 75.0
    light_direction: tuple[float, float, float] = (0.6, 0.4, 1.0)
    light_jitter: float = 0.0  # std of a normal perturbation of the light direction
    camera_jitter: float = 0.0  # std of the front camera's eye position, metres
    table_color_jitter: float = 0.0  # half-width of a uniform RGB offset of the table colour
    success_hold_steps: int = 3
    terminate_on_success: bool = True
    terminate_on_action: bool = True
    action_frame: str = "base"
    control_substeps: int = 24

    def __post_init__(self) -> None:
        if self.render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {self.render_mode!r}")
        light = np.asarray(self.light_direction, dtype=float)
        if light.shape != (3,) or not np.isfinite(light).all() or not light.any():
            raise ValueError(
                f"light_direction must be 3 finite numbers, not all 0, got {self.light_direction}"
            )
        for name, high in (("light_jitter", 1.0), ("camera_jitter", 0.2)):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= high):  # NaN and infinities fail here too
                raise ValueError(f"{name} must be a finite number in [0, {high}], got {value}")
        if self.success_hold_steps < 1:
            raise ValueError(f"success_hold_steps must be >= 1, got {self.success_hold_steps}")
        if not 0.0 <= self.table_color_jitter <= 0.3:
            raise ValueError(f"table_color_jitter must be in [0, 0.3], got {self.table_color_jitter}")
        size = self.image_size
        if len(size) != 2 or not all(
            isinstance(n, (int, np.integer)) and 1 <= n <= MAX_IMAGE_SIDE for n in size
        ):
            raise ValueError(f"image_size must be (H, W), two integers in 1..{MAX_IMAGE_SIDE}, got {size}")


class TabletopEnv(gym.Env):
    """Gymnasium env: Dict observation (`front`, `wrist` uint8 images + proprioception), flat Box RT-1 action.

    `reset(seed=s)` fully determines the episode (same seed -> byte-identical images and states). One PyBullet
    client per instance; `close()` releases it. Subclasses implement `_select_task(rng)`.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, view: ViewOptions) -> None:
        self.view = view
        height, width = view.image_size
        self.render_mode = view.render_mode
        self.cameras = {
            "front": CameraConfig("front", height, width, view.front_fov),
            "wrist": CameraConfig("wrist", height, width, view.wrist_fov),
        }
        self.light_direction = np.asarray(view.light_direction, dtype=np.float64)
        self.sim = Sim()
        self.robot = Panda(
            self.sim,
            workspace_low=(0.2, -0.45, 0.005),
            workspace_high=(0.85, 0.45, 0.45),
            substeps=view.control_substeps,
            action_frame=view.action_frame,
        )
        self.action_space = spaces.Box(ACTION_LOW, ACTION_HIGH, (ACTION_SIZE,), dtype=np.float32)
        image_space = spaces.Box(0, 255, (height, width, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(
            {
                **{name: image_space for name in CAMERA_NAMES},
                "ee_pos": spaces.Box(-2.0, 2.0, (PROPRIO_SIZES["ee_pos"],), dtype=np.float32),
                "ee_orn": spaces.Box(-1.0, 1.0, (PROPRIO_SIZES["ee_orn"],), dtype=np.float32),
                "gripper": spaces.Box(0.0, 0.1, (PROPRIO_SIZES["gripper"],), dtype=np.float32),
                "joint_pos": spaces.Box(-4.0, 4.0, (PROPRIO_SIZES["joint_pos"],), dtype=np.float32),
            }
        )
        self.task: Task | None = None
        self.instruction = ""
        self.episode_seed: int | None = None
        self._last_obs: dict[str, np.ndarray] | None = None

    def _select_task(self, rng: np.random.Generator) -> Task:
        """The task of the episode about to be built (may draw from `rng`)."""
        raise NotImplementedError

    # ---- gymnasium API ----
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episode_seed = seed
        rng = self.np_random
        self.sim.clear()
        # A flat, untextured table large enough to fill every view (a textured plane costs render time), drawn
        # as its top face only.
        self.sim.create_slab("table", (1.0, 1.0, 0.02), (0.45, 0.0, -0.02), rgba=TABLE_RGBA)
        self.robot.load()
        self.robot.reset()
        self.task = self._select_task(rng)
        self.task.build(rng)
        self.instruction = self.task.instruction()
        self._draw_view(rng)
        self.sim.step(SETTLE_STEPS)
        self.task.start()
        self._steps = 0
        self._success_streak = 0
        self._success_once = False
        obs = self._get_obs()
        return obs, self._info()

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (ACTION_SIZE,):
            raise ValueError(f"action must have shape ({ACTION_SIZE},), got {action.shape}")
        if not np.isfinite(action).all():  # NaN would reach IK and leave every joint NaN, with no error
            bad = [name for name, part in action_to_dict(action).items() if not np.isfinite(part).all()]
            raise ValueError(f"action has non-finite values in {bad}: {action.tolist()}")
        a = action_to_dict(np.clip(action, ACTION_LOW, ACTION_HIGH))
        self.robot.set_action(
            a["world_vector"].astype(np.float64),
            a["rotation_delta"].astype(np.float64),
            float(a["gripper_closedness"][0]),
        )
        self.task.after_step()
        self._steps += 1
        success = self.task.is_success()
        self._success_streak = self._success_streak + 1 if success else 0
        self._success_once |= success
        end_reason = None
        if self.view.terminate_on_success and self._success_streak >= self.view.success_hold_steps:
            end_reason = "success"
        elif self.view.terminate_on_action and a["terminate_episode"][0] > 0.5:
            end_reason = "terminate_action"
        obs = self._get_obs()
        info = self._info()
        info["end_reason"] = end_reason
        return obs, float(success), end_reason is not None, False, info

    def render(self) -> np.ndarray | None:
        """rgb_array: the latest front and wrist images side by side, (H, 2W, 3) uint8."""
        if self.render_mode != "rgb_array" or self._last_obs is None:
            return None
        return np.concatenate([self._last_obs[name] for name in CAMERA_NAMES], axis=1)

    def close(self) -> None:
        self.sim.close()

    # ---- what experts, loggers and evaluators read ----
    def is_success(self) -> bool:
        return self.task.is_success()

    def privileged_state(self) -> dict[str, Any]:
        """Ground truth for the scripted expert: robot state and the task's own (never in the observation)."""
        ee_pos, ee_quat = self.robot.ee_pose()
        return {
            "episode_seed": self.episode_seed,
            "ee_pos": ee_pos,
            "ee_yaw": yaw_of(ee_quat, self.sim.client),
            "gripper_opening": self.robot.gripper_opening(),
            **self.task.privileged_state(),
        }

    def variation(self) -> dict[str, Any]:
        """JSON-able facts of the current episode (family, target, splits, ...); read right after reset."""
        return self.task.variation()

    def variation_ranges(self) -> dict[str, tuple[float, float]]:
        """The range each continuous variation() value of this task is drawn from ({} when none)."""
        return self.task.variation_ranges()

    def raw_state(self) -> np.ndarray:
        """The state logged per frame in results_raw.csv: 9 joint positions, target xyz, xyzw quaternion."""
        pos, quat = self.task.raw_object_pose()
        return np.concatenate([self.robot.joint_positions(), pos, quat])

    @property
    def control_hz(self) -> float:
        return self.robot.control_hz

    # ---- observation ----
    def _draw_view(self, rng: np.random.Generator) -> None:
        """Light direction and front camera pose for the episode (then the table colour, when jittered)."""
        view = self.view
        self._light = self.light_direction + rng.normal(0.0, view.light_jitter, 3) * (view.light_jitter > 0)
        jitter = rng.normal(0.0, view.camera_jitter, 3) if view.camera_jitter > 0 else np.zeros(3)
        front = FrontCameraPose()
        self._front_pose = (np.asarray(front.eye) + jitter, np.asarray(front.target), np.asarray(front.up))
        if view.table_color_jitter > 0:
            rgb = np.clip(np.asarray(TABLE_RGBA[:3]) + rng.uniform(-1, 1, 3) * view.table_color_jitter, 0, 1)
            self.sim.client.changeVisualShape(self.sim.bodies["table"], -1, rgbaColor=[*rgb, 1.0])

    def _get_obs(self) -> dict[str, np.ndarray]:
        eye, target, up = self._front_pose
        obs = {
            "front": self.sim.render(self.cameras["front"], eye, target, up, self._light),
            "wrist": self.sim.render(self.cameras["wrist"], *self.robot.wrist_camera_pose(), self._light),
            **self.robot.get_obs(),
        }
        self._last_obs = obs
        return obs

    def _info(self) -> dict[str, Any]:
        metrics = self.task.metrics()
        info = {
            "is_success": self.task.is_success(),
            **metrics,  # at the top level too: PandaPick-v0's infos keep the keys they always had
            "task_metrics": dict(metrics),
            "instruction": self.instruction,
            "success_once": self._success_once,
            "raw_state": self.raw_state(),
        }
        goal = self.task.goal_position()
        if goal is not None:  # PandaPick-v0's task logs none: its infos stay as they were
            info["goal_pos"] = goal
        return info


class PandaTabletopEnv(TabletopEnv):
    """PandaTabletop-v0: one task family (`task=`), or `task="mix"`: a seeded uniform choice per episode.

    Same cameras, action table, control rate and observation as PandaPick-v0; `info["instruction"]` names the
    episode's goal. Split options (`colors`, `paraphrases`, `combos`, each "train" or "heldout") choose
    training or held-out colours, phrasings and (family, colour, shape) targets; see envs/objects.py and
    envs/tasks/.
    """

    def __init__(
        self,
        task: str = "mix",
        colors: str = "train",
        paraphrases: str = "train",
        combos: str = "train",
        target_color: str | None = None,
        target_shape: str | None = None,
        num_distractors: int | Sequence[int] | None = None,
        render_mode: str | None = None,
        image_size: Sequence[int] = DEFAULT_IMAGE_SIZE,
        front_fov: float = 45.0,
        wrist_fov: float = 75.0,
        light_direction: Sequence[float] = (0.6, 0.4, 1.0),
        light_jitter: float = 0.0,
        camera_jitter: float = 0.0,
        table_color_jitter: float = 0.0,
        success_hold_steps: int = 3,
        terminate_on_success: bool = True,
        terminate_on_action: bool = True,
        action_frame: str = "base",
        control_substeps: int = 24,
    ) -> None:
        if num_distractors is not None:
            num_distractors = (
                (int(num_distractors),) * 2
                if np.isscalar(num_distractors)
                else tuple(int(n) for n in num_distractors)
            )
        self.options = TabletopOptions(
            task=task,
            colors=colors,
            paraphrases=paraphrases,
            combos=combos,
            target_color=target_color,
            target_shape=target_shape,
            num_distractors=num_distractors,
        )
        view = ViewOptions(
            render_mode=render_mode,
            image_size=tuple(image_size),
            front_fov=front_fov,
            wrist_fov=wrist_fov,
            light_direction=tuple(light_direction),
            light_jitter=light_jitter,
            camera_jitter=camera_jitter,
            table_color_jitter=table_color_jitter,
            success_hold_steps=success_hold_steps,
            terminate_on_success=terminate_on_success,
            terminate_on_action=terminate_on_action,
            action_frame=action_frame,
            control_substeps=control_substeps,
        )
        super().__init__(view)
        families = tuple(TASKS) if task == "mix" else (task,)
        self.tasks = {f: TASKS[f](self.sim, self.robot, self.options) for f in families}

    def _select_task(self, rng: np.random.Generator) -> Task:
        if len(self.tasks) == 1:
            return next(iter(self.tasks.values()))
        return list(self.tasks.values())[int(rng.integers(len(self.tasks)))]

    @property
    def family(self) -> str:
        """The current episode's family."""
        return self.task.family
