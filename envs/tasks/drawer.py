"""`drawer`: "open the drawer" / "close the drawer" on a cabinet with one drawer on a prismatic joint and a
bar handle (assets/drawer/cabinet.urdf). The cabinet stands at the left or right edge of the workspace with
its drawer facing the middle. Success: drawer open >= 0.10 m / closed <= 0.01 m. The cabinet's colour is the
episode's target colour (training or held-out set); the instruction does not name it."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from envs.objects import (
    DRAWER,
    DRAWER_JOINT,
    HANDLE_OFFSET,
    spawn_cabinet,
)
from envs.tasks.common import TabletopTask, Template, choose
from envs.tasks.skills import CLOSED, HOVER, Expert

OPEN_ENOUGH = 0.10  # metres
CLOSED_ENOUGH = 0.01
CABINET_X = (0.50, 0.60)  # cabinet centre, metres
CABINET_Y = (
    0.22  # |y| of the cabinet centre (in full view of the front camera); the drawer opens towards y = 0
)
START_OPEN = (0.12, 0.14)  # how far a "close" episode's drawer starts out

TEMPLATES = {
    "open": {
        "train": (
            Template("open the drawer", ("open",)),
            Template("pull the drawer open", ("pull", "open")),
            Template("pull out the drawer", ("pull",)),
            Template("open up the drawer", ("open",)),
        ),
        "heldout": (
            Template("the drawer should be yanked out", ("yanked",)),
            Template("extend the drawer fully", ("extend",)),
        ),
    },
    "close": {
        "train": (
            Template("close the drawer", ("close",)),
            Template("push the drawer closed", ("push", "closed")),
            Template("push in the drawer", ("push",)),
            Template("shut the drawer", ("shut",)),
        ),
        "heldout": (
            Template("the drawer should be slammed in", ("slammed",)),
            Template("retract the drawer fully", ("retract",)),
        ),
    },
}


class DrawerTask(TabletopTask):
    family = "drawer"
    target_shapes = (DRAWER,)
    templates: ClassVar = {
        split: TEMPLATES["open"][split] + TEMPLATES["close"][split] for split in ("train", "heldout")
    }

    def layout(self, rng: np.random.Generator) -> None:
        self.action = choose(rng, ("open", "close"))
        self.template = self.draw_template(rng, TEMPLATES[self.action], prefix=f"_{self.action}")
        self.color, _ = self.draw_target(rng)
        self.side = choose(rng, (-1.0, 1.0))  # -1: cabinet on the left (-y), drawer opens towards +y
        centre = np.array([rng.uniform(*CABINET_X), self.side * CABINET_Y])
        opening = float(rng.uniform(*START_OPEN)) if self.action == "close" else 0.0
        yaw = -self.side * np.pi / 2  # the drawer's +x axis points towards y = 0
        spawn_cabinet(self.sim, "cabinet", self.color, centre, yaw, opening)
        # Distractors stay on the far side of the table: off the cabinet, the drawer's path and the hand's.
        far = (-0.22, -0.10) if self.side > 0 else (0.10, 0.22)
        self.add_distractors(rng, [], set(), y_range=far)
        self.centre = centre

    def instruction(self) -> str:
        return self.template.text

    def opening(self) -> float:
        """How far the drawer is pulled out, metres."""
        return float(self.sim.client.getJointState(self.sim.bodies["cabinet"], DRAWER_JOINT)[0])

    def handle_pos(self) -> np.ndarray:
        """World position of the handle bar's centre, metres."""
        pos, quat = self.sim.link_pose("cabinet", DRAWER_JOINT)
        rot = np.asarray(self.sim.client.getMatrixFromQuaternion(quat)).reshape(3, 3)
        return pos + rot @ HANDLE_OFFSET

    def is_success(self) -> bool:
        return self.opening() >= OPEN_ENOUGH if self.action == "open" else self.opening() <= CLOSED_ENOUGH

    def metrics(self) -> dict[str, float]:
        return {"drawer_opening": self.opening()}

    def goal_position(self) -> np.ndarray:
        """Where the handle is once the drawer is open OPEN_ENOUGH / closed, from where it is now."""
        goal = OPEN_ENOUGH if self.action == "open" else 0.0
        return self.handle_pos() + (goal - self.opening()) * np.array([0.0, -self.side, 0.0])

    def privileged_state(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "handle_pos": self.handle_pos(),
            "opening": self.opening(),
            "out_direction": np.array([0.0, -self.side]),
            "is_success": self.is_success(),
        }

    def variation(self) -> dict[str, Any]:
        return {
            **self.base_variation(None),
            "target_color": self.color,
            "target_shape": DRAWER,
            "drawer_action": self.action,
            "cabinet_side": "left" if self.side < 0 else "right",
        }

    def raw_object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.handle_pos(), self.sim.link_pose("cabinet", DRAWER_JOINT)[1]

    def expert(self, env, noise: float = 0.0, seed: int = 0) -> DrawerExpert:
        return DrawerExpert(env, noise=noise, seed=seed)


class DrawerExpert(Expert):
    """Open: hover above the handle bar, descend around it half-open, close, pull outwards. Close: closed
    fingers descend just outside the bar and push it in. Both steer by the live handle position."""

    phases = ("approach", "descend", "grip", "move", "retreat")
    noisy_phases = ("approach",)
    on_stall = {"approach": "descend", "descend": "grip"}  # short of the point: go on from there

    def stall_phase(self) -> str:
        if self.phase == "descend" and self.env.privileged_state()["action"] != "open":
            return "move"  # closing pushes with closed fingers: nothing to grip
        return super().stall_phase()

    def plan(self, s: dict[str, Any]):
        handle, ee, out = s["handle_pos"], s["ee_pos"], s["out_direction"]
        opening_task = s["action"] == "open"
        # Open: the grasp point goes to the bar. Close: the closed fingers go just outside the bar.
        grip_xy = handle[:2] if opening_task else handle[:2] + out * 0.03
        gripper = HALF_OPEN if opening_task else CLOSED
        if self.phase == "approach":
            target = np.array([*grip_xy, handle[2] + HOVER])
            if np.linalg.norm(target - ee) < 0.01:
                self.goto("descend")
            return target, -s["ee_yaw"], gripper, 0.0
        if self.phase == "descend":
            target = np.array([*grip_xy, handle[2]])
            if abs(ee[2] - handle[2]) < 0.006:
                self.goto("grip" if opening_task else "move")
            return target, 0.0, gripper, 0.0
        if self.phase == "grip":  # one step to close on the bar (the fingers close within it), then pull
            self.goto("move")
            return np.array([*grip_xy, handle[2]]), 0.0, CLOSED, 0.0
        if self.phase == "move":
            self.counter += 1
            step = out * 0.03 if opening_task else -out * 0.03
            if self.counter > 30:  # stuck: lift off and start again
                self.goto("retreat")
            return np.array([*(grip_xy + step), handle[2]]), 0.0, CLOSED, 0.0
        self.counter += 1
        if self.counter > 6:
            self.goto("approach")
        return np.array([ee[0], ee[1], handle[2] + HOVER]), 0.0, -1.0, 0.0


HALF_OPEN = (
    0.0  # gripper command: fingers 4 cm apart, narrow enough to fit between the bar and the drawer face
)
