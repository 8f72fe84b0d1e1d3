"""`pick`: "pick up the {color} {shape}" among 1-3 other objects, at least one sharing the target's colour
or its shape, so the instruction is needed to choose. Success: the named object lifted >= 5 cm, held by both
fingers."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.objects import SHAPES
from envs.tasks.common import TabletopTask, Template, choose, scene_colors
from envs.tasks.skills import PickPlaceExpert

LIFT_HEIGHT = 0.05  # metres above the resting height
LIFT_MARGIN = 0.04  # the expert lifts this much beyond the success height

TEMPLATES = {
    "train": (
        Template("pick up the {A}", ("pick",)),
        Template("grab the {A}", ("grab",)),
        Template("lift the {A}", ("lift",)),
        Template("pick the {A} up", ("pick",)),
    ),
    "heldout": (
        Template("the {A} should be raised off the table", ("raised",)),
        Template("off the table, hoist the {A}", ("hoist",)),
    ),
}


class PickTask(TabletopTask):
    family = "pick"
    templates = TEMPLATES
    default_distractors = (1, 3)  # other objects besides the target; at least one always shares a feature

    def layout(self, rng: np.random.Generator) -> None:
        self.template = self.draw_template(rng)
        color, shape = self.draw_target(rng)
        keep_out: list = []
        self.target_spec = self.add_object(rng, "target", color, shape, keep_out)
        taken = {(color, shape)}
        # The first other object shares the colour or the shape (not both): the instruction must be read.
        if rng.random() < 0.5:
            confuser = (color, choose(rng, [s for s in SHAPES if s != shape]))
        else:
            confuser = (choose(rng, [c for c in scene_colors(self.options) if c != color]), shape)
        taken.add(confuser)
        self.add_object(rng, "distractor_0", *confuser, keep_out)
        for i in range(1, max(1, self.draw_count(rng))):
            pair = self.draw_named(rng, taken, scene_colors(self.options))
            taken.add(pair)
            self.add_object(rng, f"distractor_{i}", *pair, keep_out)

    def instruction(self) -> str:
        return self.template.text.format(A=self.target_spec.name)

    def is_success(self) -> bool:
        return self.height("target") >= LIFT_HEIGHT and self.is_grasped("target")

    def metrics(self) -> dict[str, float]:
        height = self.height("target")
        return {"is_grasped": self.is_grasped("target"), "target_height": height}

    def privileged_state(self) -> dict[str, Any]:
        return {
            "target": self.object_state("target"),
            "is_success": self.is_success(),
            "lift_z": self.rest_z["target"] + LIFT_HEIGHT + LIFT_MARGIN,
        }

    def start(self) -> None:
        self.start_xy = self.pose("target")[0][:2].copy()

    def goal_position(self) -> np.ndarray:
        """LIFT_HEIGHT above where the target rested at the start."""
        return np.array([*self.start_xy, self.rest_z["target"] + LIFT_HEIGHT])

    def variation(self) -> dict[str, Any]:
        return self.base_variation(self.target_spec)

    def expert(self, env, noise: float = 0.0, seed: int = 0) -> PickExpert:
        return PickExpert(env, noise=noise, seed=seed)


class PickExpert(PickPlaceExpert):
    """Approach, align with the target's narrow side, descend, close, lift, ask to terminate once lifted."""

    lift_only = True
    on_stall = {"approach": "descend", "descend": "close"}  # a stalled lift: nothing better than lifting
