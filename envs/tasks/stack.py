"""`stack`: "stack the {A} on the {B}". Success: A released and resting on top of B (touching B, not the
table)."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.objects import COLOR_SPLITS
from envs.tasks.common import TabletopTask, Template
from envs.tasks.skills import PickPlaceExpert

DROP_HEIGHT = 0.008  # the expert lets go with A's bottom this far above B's top, metres

TEMPLATES = {
    "train": (
        Template("stack the {A} on the {B}", ("stack",)),
        Template("put the {A} on top of the {B}", ("put",)),
        Template("place the {A} onto the {B}", ("place",)),
        Template("set the {A} on the {B}", ("set",)),
    ),
    "heldout": (
        Template("the {B} should support the {A}", ("support",)),
        Template("on the {B}, pile the {A}", ("pile",)),
    ),
}


class StackTask(TabletopTask):
    family = "stack"
    templates = TEMPLATES

    def layout(self, rng: np.random.Generator) -> None:
        self.template = self.draw_template(rng)
        color, shape = self.draw_target(rng)
        keep_out: list = []
        self.target_spec = self.add_object(rng, "target", color, shape, keep_out)
        taken = {(color, shape)}
        b_color, b_shape = self.draw_named(rng, taken, COLOR_SPLITS[self.options.colors])
        taken.add((b_color, b_shape))
        self.base_spec = self.add_object(rng, "base", b_color, b_shape, keep_out)
        self.add_distractors(rng, keep_out, taken)

    def instruction(self) -> str:
        return self.template.text.format(A=self.target_spec.name, B=self.base_spec.name)

    def on_top(self) -> bool:
        """A touches B and not the table, its bottom at B's top (within 1.5 cm)."""
        a, b = self.pose("target")[0], self.pose("base")[0]
        level = abs((a[2] - self.target_spec.half_height) - (b[2] + self.base_spec.half_height)) < 0.015
        return bool(
            level and self.sim.in_contact("target", "base") and not self.sim.in_contact("target", "table")
        )

    def is_success(self) -> bool:
        return self.on_top() and self.is_resting("target")

    def metrics(self) -> dict[str, float]:
        height = self.height("target")
        offset = float(np.linalg.norm(self.pose("target")[0][:2] - self.pose("base")[0][:2]))
        return {
            "is_grasped": self.is_grasped("target"),
            "target_height": height,
            "base_offset": offset,
        }

    def goal_position(self) -> np.ndarray:
        """Just above B's top face, over its centre (where the expert lets go)."""
        b = self.pose("base")[0]
        top = b[2] + self.base_spec.half_height
        return np.array([b[0], b[1], top + self.target_spec.half_height + DROP_HEIGHT])

    def privileged_state(self) -> dict[str, Any]:
        return {
            "target": self.object_state("target"),
            "base": self.object_state("base"),
            "place_pos": self.goal_position(),
            "is_success": self.is_success(),
        }

    def variation(self) -> dict[str, Any]:
        return {
            **self.base_variation(self.target_spec),
            "base": self.base_spec.name,
            "base_color": self.base_spec.color,
            "base_shape": self.base_spec.shape,
        }

    def expert(self, env, noise: float = 0.0, seed: int = 0) -> PickPlaceExpert:
        return PickPlaceExpert(env, noise=noise, seed=seed)
