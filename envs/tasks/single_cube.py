"""PandaPick-v0's task: pick up one cube (optionally among distractors) and its waypoint expert.

Scene: the cube (5 cm by default) spawns at x in [0.45, 0.65] m, y in [-0.15, 0.15] m, yaw in [-pi/4, pi/4] (a
cube is symmetric under 90-degree turns, so that range covers every orientation). Success: the cube itself is
lifted at least `lift_height` (5 cm) above its resting height while touching both fingers. Every draw happens
in the order the single-task env made it, so PandaPick-v0 gives the same bytes per seed as before the
multi-task envs existed.

The expert approaches above the cube, aligns with its yaw, descends, closes, lifts and asks to terminate. It
reads the ground truth through `env.privileged_state()` and implements the Policy protocol
(`reset(instruction)`, `act(obs) -> flat action`); each step recomputes its command from the current state
(closed loop), so optional action noise diversifies demonstrations without derailing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.objects import RGBA, TRAIN_COLORS
from envs.robot import FINGER_LINKS
from envs.tasks.base import Task
from envs.tasks.skills import Expert

# PandaPick-v0's cube colours: the tabletop's training colours but orange (the colours it always had).
COLORS: dict[str, RGBA] = {name: TRAIN_COLORS[name] for name in ("red", "green", "blue", "yellow", "purple")}
DISTRACTOR_SHAPES = ("box", "cylinder", "sphere")


@dataclass(frozen=True)
class PickCubeOptions:
    """PandaPick-v0's scene options (validated by PandaPickEnv, which keeps its keyword signature)."""

    cube_color: str = "red"
    cube_size_range: tuple[float, float] = (0.05, 0.05)
    x_range: tuple[float, float] = (0.45, 0.65)
    y_range: tuple[float, float] = (-0.15, 0.15)
    yaw_range: tuple[float, float] = (-np.pi / 4, np.pi / 4)
    num_distractors: int | tuple[int, int] = 0  # a scalar keeps the draw order of a fixed count
    lift_height: float = 0.05


class PickCubeTask(Task):
    """One cube, named by colour; distractors of other colours and shapes."""

    family = "pick"

    def build(self, rng: np.random.Generator) -> None:
        o = self.options
        color = o.cube_color if o.cube_color != "random" else str(rng.choice(sorted(COLORS)))
        size = float(rng.uniform(*o.cube_size_range))
        xy = np.array([rng.uniform(*o.x_range), rng.uniform(*o.y_range)])
        yaw = float(rng.uniform(*o.yaw_range))
        quat = self.sim.client.getQuaternionFromEuler((0.0, 0.0, yaw))
        self.sim.create_box(
            "cube", (size / 2,) * 3, (xy[0], xy[1], size / 2), quat, mass=0.1, rgba=COLORS[color]
        )
        self._spawn_distractors(rng, color, xy)
        self.cube_color_name, self.cube_size = color, size
        self.cube_rest_z = size / 2

    def _spawn_distractors(self, rng: np.random.Generator, cube_color: str, cube_xy: np.ndarray) -> None:
        """Objects of other colours and shapes, at least 10 cm from the cube and from each other."""
        others = [c for c in sorted(COLORS) if c != cube_color]
        placed = [cube_xy]
        count = self.options.num_distractors
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

    def instruction(self) -> str:
        return f"pick up the {self.cube_color_name} cube"

    def is_grasped(self) -> bool:
        """Both fingers touch the cube."""
        return all(self.sim.in_contact("panda", "cube", link_a=link) for link in FINGER_LINKS)

    def cube_height(self) -> float:
        """How far the cube's centre is above its resting height, metres."""
        return float(self.sim.base_pose("cube")[0][2] - self.cube_rest_z)

    def is_success(self) -> bool:
        return self.cube_height() >= self.options.lift_height and self.is_grasped()

    def metrics(self) -> dict[str, float]:
        return {"is_grasped": self.is_grasped(), "cube_height": self.cube_height()}

    def privileged_state(self) -> dict[str, Any]:
        cube_pos, cube_quat = self.sim.base_pose("cube")
        return {
            "cube_pos": cube_pos,
            "cube_quat": cube_quat,
            "cube_yaw": float(self.sim.client.getEulerFromQuaternion(cube_quat)[2]),
            "cube_size": self.cube_size,
            "cube_rest_z": self.cube_rest_z,
            "is_grasped": self.is_grasped(),
            "is_success": self.is_success(),
            "lift_height": self.options.lift_height,
        }

    def variation_ranges(self) -> dict[str, tuple[float, float]]:
        o = self.options
        return {"cube_size": o.cube_size_range, "cube_x": o.x_range, "cube_y": o.y_range}

    def variation(self) -> dict[str, Any]:
        """What rt1_sim's evaluator logged per episode, plus the family fields every task reports."""
        pos, _ = self.sim.base_pose("cube")
        return {
            "cube_color": self.cube_color_name,
            "num_distractors": self.distractor_count,
            "cube_size": float(self.cube_size),
            "cube_x": float(pos[0]),
            "cube_y": float(pos[1]),
            "family": self.family,
            "target": f"{self.cube_color_name} cube",
            "instruction": self.instruction(),
        }

    def raw_object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.sim.base_pose("cube")

    def expert(self, env, noise: float = 0.0, seed: int = 0) -> PickCubeExpert:
        return PickCubeExpert(env, noise=noise, seed=seed)


HOVER = 0.10  # approach height above the cube's centre, metres
LIFT_MARGIN = 0.04  # lift this much beyond the success height


def wrap_quarter_turn(angle: float) -> float:
    """Wrap to [-pi/4, pi/4): a cube looks the same after every 90-degree turn."""
    return (angle + np.pi / 4) % (np.pi / 2) - np.pi / 4


class PickCubeExpert(Expert):
    """Scripted pick policy reading privileged state from `env` (a PandaPickEnv or a wrapper of one).

    `noise` is the standard deviation of Gaussian noise added to the translation and yaw commands while
    approaching and descending, as a fraction of their bounds (the shared `Expert` base: seeded by (`seed`,
    the episode's seed), so demonstrations depend only on seeds, never on which worker ran them or in what
    order).
    """

    phases = ("approach", "descend", "close", "lift")
    noisy_phases = ("approach", "descend")
    on_stall = {"approach": "descend", "descend": "close"}  # as the tabletop pick expert

    def plan(self, s: dict[str, Any]) -> tuple[np.ndarray, float, float, float]:
        cube, ee = s["cube_pos"], s["ee_pos"]
        yaw_error = wrap_quarter_turn(s["cube_yaw"] - s["ee_yaw"])
        grasp_z = cube[2]  # the grasp point between the fingertips goes to the cube's centre
        gripper, terminate = -1.0, 0.0

        if self.phase == "approach":
            target = cube + np.array([0.0, 0.0, HOVER])
            xy_error = np.linalg.norm(target[:2] - ee[:2])
            if xy_error < 0.008 and abs(target[2] - ee[2]) < 0.02 and abs(yaw_error) < 0.05:
                self.goto("descend")
        if self.phase == "descend":
            target = np.array([cube[0], cube[1], grasp_z])
            if np.linalg.norm(target[:2] - ee[:2]) > 0.02:  # pushed the cube or drifted: hover again
                self.goto("approach")
                target = cube + np.array([0.0, 0.0, HOVER])
            elif abs(ee[2] - grasp_z) < 0.006:
                self.goto("close")
        if self.phase == "close":
            target, gripper = ee.copy(), 1.0
            self.counter += 1
            if self.counter >= 4:
                self.goto("lift")
        if self.phase == "lift":
            target = np.array([ee[0], ee[1], s["cube_rest_z"] + s["lift_height"] + LIFT_MARGIN])
            gripper = 1.0
            if not s["is_grasped"]:  # slipped out: open and start over
                self.goto("approach")
                gripper = -1.0
                target = cube + np.array([0.0, 0.0, HOVER])
            elif s["is_success"]:
                terminate = 1.0
        turn = yaw_error if self.phase in ("approach", "descend") else 0.0
        return target, turn, gripper, terminate
