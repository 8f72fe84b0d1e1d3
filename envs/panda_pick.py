"""PandaPickEnv: pick up a cube with a Franka Panda, seen by a fixed `front` and a hand-mounted `wrist` camera.

Frame: the robot base is at the origin on the table top (z = 0), x points away from the robot into the workspace.
The cube (5 cm by default) spawns at x in [0.45, 0.65] m, y in [-0.15, 0.15] m, yaw in [-pi/4, pi/4] (a cube is
symmetric under 90-degree turns, so that range covers every orientation). Success: the cube itself is lifted at least
`lift_height` (5 cm) above its resting height while touching both fingers; the episode terminates once that has held
for `success_hold_steps` control steps, or (if `terminate_on_action`) when the action's terminate flag exceeds 0.5.
Control runs at 10 Hz (24 physics substeps of 1/240 s each); see envs/robot.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.robot import FINGER_LINKS, Panda, yaw_of
from envs.sim import CameraConfig, Sim
from envs.spaces import ACTION_HIGH, ACTION_LOW, ACTION_SIZE, CAMERA_NAMES, PROPRIO_SIZES, action_to_dict

COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.1, 0.1, 1.0),
    "green": (0.1, 0.7, 0.2, 1.0),
    "blue": (0.1, 0.25, 0.85, 1.0),
    "yellow": (0.9, 0.8, 0.1, 1.0),
    "purple": (0.55, 0.2, 0.7, 1.0),
}
TABLE_RGBA = (0.62, 0.6, 0.56, 1.0)
DISTRACTOR_SHAPES = ("box", "cylinder", "sphere")
DEFAULT_IMAGE_SIZE = (96, 96)  # (H, W): what the bundled CPU policy consumes
IO_IMAGE_SIZE = (256, 320)  # what the IO reproduction feeds its network


@dataclass(frozen=True)
class FrontCameraPose:
    eye: tuple[float, float, float] = (1.00, 0.0, 0.62)
    target: tuple[float, float, float] = (0.48, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 0.0, 1.0)


class PandaPickEnv(gym.Env):
    """Gymnasium env: Dict observation (`front`, `wrist` uint8 images + proprioception), flat Box RT-1 action.

    Every scene variation is a constructor option; `reset(seed=s)` fully determines the episode (same seed ->
    byte-identical images and states). One PyBullet client per instance; `close()` releases it.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

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
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if cube_color != "random" and cube_color not in COLORS:
            raise ValueError(f"cube_color must be 'random' or one of {sorted(COLORS)}, got {cube_color!r}")
        for name, rng in (("x_range", x_range), ("y_range", y_range), ("yaw_range", yaw_range)):
            if len(rng) != 2 or rng[0] > rng[1]:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {rng}")
        sizes = (cube_size, cube_size) if np.isscalar(cube_size) else tuple(cube_size)
        if len(sizes) != 2 or not 0.02 <= sizes[0] <= sizes[1] <= 0.07:
            raise ValueError(f"cube_size must be in [0.02, 0.07] m (the gripper opens 8 cm), got {cube_size}")
        counts = (
            (num_distractors, num_distractors) if np.isscalar(num_distractors) else tuple(num_distractors)
        )
        if len(counts) != 2 or not 0 <= counts[0] <= counts[1] <= 4 or any(int(c) != c for c in counts):
            raise ValueError(
                f"num_distractors must be an integer or a (low, high) range in [0, 4], got {num_distractors}"
            )
        if success_hold_steps < 1:
            raise ValueError(f"success_hold_steps must be >= 1, got {success_hold_steps}")
        height, width = image_size
        self.render_mode = render_mode
        self.cameras = {
            "front": CameraConfig("front", height, width, front_fov),
            "wrist": CameraConfig("wrist", height, width, wrist_fov),
        }
        self.cube_color = cube_color
        self.cube_size_range = sizes
        self.x_range, self.y_range, self.yaw_range = tuple(x_range), tuple(y_range), tuple(yaw_range)
        # A scalar keeps the draw order of a fixed count; a (low, high) range draws the count per episode.
        self.num_distractors = (
            num_distractors if np.isscalar(num_distractors) else tuple(int(c) for c in counts)
        )
        self.light_direction = np.asarray(light_direction, dtype=np.float64)
        self.light_jitter = light_jitter
        self.camera_jitter = camera_jitter
        self.lift_height = lift_height
        self.success_hold_steps = success_hold_steps
        self.terminate_on_success = terminate_on_success
        self.terminate_on_action = terminate_on_action

        self.sim = Sim()
        self.robot = Panda(
            self.sim,
            workspace_low=(0.2, -0.45, 0.005),
            workspace_high=(0.85, 0.45, 0.45),
            substeps=control_substeps,
            action_frame=action_frame,
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
        self.instruction = ""
        self.episode_seed: int | None = None
        self._last_obs: dict[str, np.ndarray] | None = None

    # ---- gymnasium API ----
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.episode_seed = seed
        rng = self.np_random
        self.sim.clear()
        # A flat, untextured table large enough to fill every view (a textured plane costs render time).
        self.sim.create_box("table", (1.0, 1.0, 0.02), (0.45, 0.0, -0.02), rgba=TABLE_RGBA)
        self.robot.load()
        self.robot.reset()

        color = self.cube_color if self.cube_color != "random" else str(rng.choice(sorted(COLORS)))
        size = float(rng.uniform(*self.cube_size_range))
        xy = np.array([rng.uniform(*self.x_range), rng.uniform(*self.y_range)])
        yaw = float(rng.uniform(*self.yaw_range))
        quat = self.sim.client.getQuaternionFromEuler((0.0, 0.0, yaw))
        self.sim.create_box(
            "cube", (size / 2,) * 3, (xy[0], xy[1], size / 2), quat, mass=0.1, rgba=COLORS[color]
        )
        self._spawn_distractors(rng, color, xy)
        self.cube_color_name, self.cube_size = color, size
        self.cube_rest_z = size / 2
        self.instruction = f"pick up the {color} cube"

        direction = self.light_direction + rng.normal(0.0, self.light_jitter, 3) * (self.light_jitter > 0)
        self._light = direction
        jitter = rng.normal(0.0, self.camera_jitter, 3) if self.camera_jitter > 0 else np.zeros(3)
        front = FrontCameraPose()
        self._front_pose = (np.asarray(front.eye) + jitter, np.asarray(front.target), np.asarray(front.up))

        self.sim.step(10)  # let the cube settle on the table
        self._steps = 0
        self._success_streak = 0
        self._success_once = False
        obs = self._get_obs()
        return obs, self._info()

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (ACTION_SIZE,):
            raise ValueError(f"action must have shape ({ACTION_SIZE},), got {action.shape}")
        a = action_to_dict(np.clip(action, ACTION_LOW, ACTION_HIGH))
        self.robot.set_action(
            a["world_vector"].astype(np.float64),
            a["rotation_delta"].astype(np.float64),
            float(a["gripper_closedness"][0]),
        )
        self._steps += 1
        success = self.is_success()
        self._success_streak = self._success_streak + 1 if success else 0
        self._success_once |= success
        end_reason = None
        if self.terminate_on_success and self._success_streak >= self.success_hold_steps:
            end_reason = "success"
        elif self.terminate_on_action and a["terminate_episode"][0] > 0.5:
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

    # ---- task ----
    def _spawn_distractors(self, rng: np.random.Generator, cube_color: str, cube_xy: np.ndarray) -> None:
        """Objects of other colours and shapes, at least 10 cm from the cube and from each other."""
        others = [c for c in sorted(COLORS) if c != cube_color]
        placed = [cube_xy]
        count = self.num_distractors
        if not np.isscalar(count):
            count = int(rng.integers(count[0], count[1] + 1))
        self.distractor_count = count
        for i in range(count):
            for _ in range(100):
                xy = np.array([rng.uniform(0.35, 0.75), rng.uniform(-0.3, 0.3)])
                if all(np.linalg.norm(xy - p) > 0.10 for p in placed):
                    break
            placed.append(xy)
            rgba = COLORS[str(rng.choice(others))]
            shape = str(rng.choice(DISTRACTOR_SHAPES))
            name = f"distractor_{i}"
            if shape == "box":
                self.sim.create_box(name, (0.02, 0.03, 0.025), (xy[0], xy[1], 0.025), mass=0.1, rgba=rgba)
            elif shape == "cylinder":
                self.sim.create_cylinder(name, 0.025, 0.06, (xy[0], xy[1], 0.03), mass=0.1, rgba=rgba)
            else:
                self.sim.create_sphere(name, 0.025, (xy[0], xy[1], 0.025), mass=0.1, rgba=rgba)

    def is_grasped(self) -> bool:
        """Both fingers touch the cube."""
        return all(self.sim.in_contact("panda", "cube", link_a=link) for link in FINGER_LINKS)

    def cube_height(self) -> float:
        """How far the cube's centre is above its resting height, metres."""
        return float(self.sim.base_pose("cube")[0][2] - self.cube_rest_z)

    def is_success(self) -> bool:
        return self.cube_height() >= self.lift_height and self.is_grasped()

    def privileged_state(self) -> dict[str, Any]:
        """Ground-truth state for the scripted expert (never part of the observation)."""
        cube_pos, cube_quat = self.sim.base_pose("cube")
        ee_pos, ee_quat = self.robot.ee_pose()
        c = self.sim.client
        return {
            "episode_seed": self.episode_seed,
            "cube_pos": cube_pos,
            "cube_quat": cube_quat,
            "cube_yaw": float(c.getEulerFromQuaternion(cube_quat)[2]),
            "cube_size": self.cube_size,
            "cube_rest_z": self.cube_rest_z,
            "ee_pos": ee_pos,
            "ee_yaw": yaw_of(ee_quat, c),
            "gripper_opening": self.robot.gripper_opening(),
            "is_grasped": self.is_grasped(),
            "is_success": self.is_success(),
            "lift_height": self.lift_height,
        }

    def variation(self) -> dict[str, Any]:
        """The scene variation drawn for the current episode (call right after reset): cube colour, distractor
        count, cube size and position; evaluation breaks success down by these."""
        state = self.privileged_state()
        return {
            "cube_color": self.cube_color_name,
            "num_distractors": self.distractor_count,
            "cube_size": float(state["cube_size"]),
            "cube_x": float(state["cube_pos"][0]),
            "cube_y": float(state["cube_pos"][1]),
        }

    def raw_state(self) -> np.ndarray:
        """The state logged per frame in results_raw.csv: 9 joint positions, cube position and xyzw quaternion."""
        cube_pos, cube_quat = self.sim.base_pose("cube")
        return np.concatenate([self.robot.joint_positions(), cube_pos, cube_quat])

    @property
    def control_hz(self) -> float:
        return self.robot.control_hz

    # ---- observation ----
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
        return {
            "is_success": self.is_success(),
            "is_grasped": self.is_grasped(),
            "cube_height": self.cube_height(),
            "instruction": self.instruction,
            "success_once": self._success_once,
            "raw_state": self.raw_state(),
        }
