"""`push`: "push the {A} to the {direction}", direction one of left / right / front / back. Success: A moved
at least 0.10 m that way and was never lifted more than 2 cm.

Directions as seen by the front camera (which looks back at the robot): left = -y, right = +y, front = +x
(away from the robot, towards the camera), back = -x (towards the robot).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.objects import box_extent
from envs.tasks.common import WORKSPACE_X, WORKSPACE_Y, TabletopTask, Template, choose
from envs.tasks.skills import CLOSED, HOVER, Expert

DIRECTIONS: dict[str, tuple[float, float]] = {
    "left": (0.0, -1.0),
    "right": (0.0, 1.0),
    "front": (1.0, 0.0),
    "back": (-1.0, 0.0),
}
PUSH_DISTANCE = 0.10  # metres along the direction
MAX_LIFT = 0.02  # metres
EXPERT_DISTANCE = 0.13  # the expert pushes this far
PUSH_STEP = 0.02  # metres per control step while pushing
MAX_SIDE_STEP = 0.006  # metres per control step sideways while pushing
FINGER_HALF = 0.01  # half the closed fingers' thickness, metres
PUSH_Z = 0.015  # grasp-point height while pushing, metres: low enough that a tall cylinder slides, not tips

TEMPLATES = {
    "train": (
        Template("push the {A} to the {dir}", ("push",)),
        Template("slide the {A} to the {dir}", ("slide",)),
        Template("nudge the {A} towards the {dir}", ("nudge",)),
        Template("push the {A} {dir}", ("push",)),
    ),
    "heldout": (
        Template("to the {dir}, shove the {A}", ("shove",)),
        Template("the {A} needs shifting {dir}", ("shifting",)),
    ),
}


class PushTask(TabletopTask):
    family = "push"
    templates = TEMPLATES

    def layout(self, rng: np.random.Generator) -> None:
        self.template = self.draw_template(rng)
        color, shape = self.draw_target(rng)
        self.direction_name = choose(rng, tuple(DIRECTIONS))
        d = np.asarray(DIRECTIONS[self.direction_name])
        # Start far enough from the workspace edge that the goal stays on the table, in reach and in view.
        margin = EXPERT_DISTANCE + 0.02
        x_range = (WORKSPACE_X[0] + margin * max(-d[0], 0), WORKSPACE_X[1] - margin * max(d[0], 0))
        y_range = (WORKSPACE_Y[0] + margin * max(-d[1], 0), WORKSPACE_Y[1] - margin * max(d[1], 0))
        keep_out: list = []
        self.target_spec = self.add_object(
            rng, "target", color, shape, keep_out, x_range=x_range, y_range=y_range
        )
        xy, radius = keep_out[0]
        # Keep the pusher's approach and the path clear: discs behind, along and beyond the goal.
        for step in np.arange(-0.06, EXPERT_DISTANCE + 0.03, 0.03):
            keep_out.append((xy + step * d, radius))
        self.add_distractors(rng, keep_out, {(color, shape)})

    def start(self) -> None:
        self.start_pos = self.pose("target")[0].copy()
        self.max_lift = 0.0

    def after_step(self) -> None:
        self.max_lift = max(self.max_lift, self.height("target"))

    def instruction(self) -> str:
        return self.template.text.format(A=self.target_spec.name, dir=self.direction_name)

    def progress(self) -> float:
        """How far A has moved along the direction, metres."""
        return float(
            (self.pose("target")[0][:2] - self.start_pos[:2]) @ np.asarray(DIRECTIONS[self.direction_name])
        )

    def is_success(self) -> bool:
        return self.progress() >= PUSH_DISTANCE and self.max_lift <= MAX_LIFT

    def metrics(self) -> dict[str, float]:
        height = self.height("target")
        return {
            "target_height": height,
            "push_progress": self.progress(),
            "max_lift": self.max_lift,
        }

    def goal_position(self) -> np.ndarray:
        """A's start position moved PUSH_DISTANCE along the direction."""
        return self.start_pos + PUSH_DISTANCE * np.array([*DIRECTIONS[self.direction_name], 0.0])

    def privileged_state(self) -> dict[str, Any]:
        return {
            "target": self.object_state("target"),
            "direction": np.asarray(DIRECTIONS[self.direction_name]),
            "start_pos": self.start_pos,
            "progress": self.progress(),
            "is_success": self.is_success(),
        }

    def variation(self) -> dict[str, Any]:
        return {**self.base_variation(self.target_spec), "direction": self.direction_name}

    def expert(self, env, noise: float = 0.0, seed: int = 0) -> PushExpert:
        return PushExpert(env, noise=noise, seed=seed)


class PushExpert(Expert):
    """Closed gripper: hover behind A (opposite the direction), descend to just above the table, push along
    the
    direction while steering back behind A's centre, stop once A has gone EXPERT_DISTANCE, lift away."""

    phases = ("approach", "descend", "push", "retreat")
    noisy_phases = ("approach",)
    on_stall = {"approach": "descend", "descend": "push"}  # short of the start point: start from there

    def plan(self, s: dict[str, Any]):
        obj, ee, d = s["target"], s["ee_pos"], s["direction"]
        behind = obj["pos"][:2] - d * (self._reach(obj, d) + 0.03)  # pusher start, xy
        if self.phase == "approach":
            target = np.array([*behind, PUSH_Z + HOVER])
            if np.linalg.norm(target - ee) < 0.01:
                self.goto("descend")
            return target, -s["ee_yaw"], CLOSED, 0.0
        if self.phase == "descend":
            target = np.array([*behind, PUSH_Z])
            if abs(ee[2] - PUSH_Z) < 0.006:
                self.goto("push")
            return target, 0.0, CLOSED, 0.0
        if self.phase == "push":
            self.counter += 1
            if s["progress"] >= EXPERT_DISTANCE or self.counter > 30:  # done, or stuck: back off and retry
                self.goto("retreat")
            # Aim PUSH_STEP into the object's face, straight behind its centre; slide sideways slowly so a
            # lateral correction turns the object rather than sweeping it off the line.
            contact = obj["pos"][:2] - d * (self._extent(obj, d) + FINGER_HALF)
            move = contact + d * PUSH_STEP - ee[:2]
            perp = np.array([-d[1], d[0]])
            side = np.clip(perp @ move, -MAX_SIDE_STEP, MAX_SIDE_STEP)
            xy = ee[:2] + d * np.clip(d @ move, 0.0, PUSH_STEP) + perp * side
            return np.array([*xy, PUSH_Z]), 0.0, CLOSED, 0.0
        self.counter += 1  # retreat; success ends the episode, so still being here means push again
        if self.counter > 6:
            self.goto("approach")
        return np.array([ee[0], ee[1], PUSH_Z + HOVER]), 0.0, CLOSED, 0.0

    @staticmethod
    def _reach(obj: dict[str, Any], d: np.ndarray) -> float:
        """Half the object's footprint diagonal: a safe distance from its centre whatever its yaw."""
        return float(np.hypot(obj["size"][0], obj["size"][1]) / 2)

    @staticmethod
    def _extent(obj: dict[str, Any], d: np.ndarray) -> float:
        """How far the object's face is from its centre along `d`, metres."""
        if obj["grasp_symmetry"] == 0:  # a cylinder
            return float(obj["size"][0] / 2)
        return box_extent(obj["size"][0] / 2, obj["size"][1] / 2, obj["yaw"], d)
