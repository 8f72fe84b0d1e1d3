"""`place_in`: "put the {A} in the {color} bowl", two bowls of different colours on the table. Success: A
released and resting inside the named bowl (its centre within the bowl's inner radius, below the rim)."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.objects import COLOR_SPLITS, BowlSpec, spawn_bowl
from envs.tasks.common import TabletopTask, Template, choose, scene_colors
from envs.tasks.skills import PickPlaceExpert

BOWL_X, BOWL_Y = (0.42, 0.64), (-0.2, 0.2)  # bowl centres, metres
DROP_HEIGHT = 0.015  # the expert lets go with A's bottom this far above the bowl floor, metres

TEMPLATES = {
    "train": (
        Template("put the {A} in the {bowl}", ("put",)),
        Template("place the {A} into the {bowl}", ("place",)),
        Template("drop the {A} in the {bowl}", ("drop",)),
        Template("move the {A} to the {bowl}", ("move",)),
    ),
    "heldout": (
        Template("the {bowl} should hold the {A}", ("hold",)),
        Template("into the {bowl}, deposit the {A}", ("deposit",)),
    ),
}


class PlaceInTask(TabletopTask):
    family = "place_in"
    templates = TEMPLATES

    def layout(self, rng: np.random.Generator) -> None:
        self.template = self.draw_template(rng)
        color, shape = self.draw_target(rng)
        bowl_color = choose(rng, COLOR_SPLITS[self.options.colors])
        other_bowl = choose(rng, [c for c in scene_colors(self.options) if c != bowl_color])
        keep_out: list = []
        self.bowls: dict[str, BowlSpec] = {}
        for name, c in (("bowl", bowl_color), ("other_bowl", other_bowl)):
            spec = BowlSpec(c)
            xy = self.free_xy(rng, spec.outer_radius, keep_out, BOWL_X, BOWL_Y)
            spawn_bowl(self.sim, name, spec, xy)
            keep_out.append((xy, spec.outer_radius))
            self.bowls[name] = spec
        self.target_spec = self.add_object(rng, "target", color, shape, keep_out)
        self.add_distractors(rng, keep_out, {(color, shape)})

    def instruction(self) -> str:
        return self.template.text.format(A=self.target_spec.name, bowl=self.bowls["bowl"].name)

    def in_bowl(self, bowl: str = "bowl") -> bool:
        """A's centre inside the bowl's inner radius and below its rim."""
        spec, centre = self.bowls[bowl], self.pose(bowl)[0]
        pos = self.pose("target")[0]
        inside = np.linalg.norm(pos[:2] - centre[:2]) < spec.inner_radius - 0.01
        low = pos[2] - self.target_spec.half_height < spec.floor_thickness + 0.015
        return bool(inside and low)

    def is_success(self) -> bool:
        return self.in_bowl() and self.is_resting("target")

    def metrics(self) -> dict[str, float]:
        height = self.height("target")
        distance = float(np.linalg.norm(self.pose("target")[0][:2] - self.pose("bowl")[0][:2]))
        return {
            "is_grasped": self.is_grasped("target"),
            "target_height": height,
            "bowl_distance": distance,
        }

    def goal_position(self) -> np.ndarray:
        """Just above the named bowl's floor, at its centre (where the expert lets go)."""
        bowl = self.pose("bowl")[0]
        floor = self.bowls["bowl"].floor_thickness
        return np.array([bowl[0], bowl[1], floor + self.target_spec.half_height + DROP_HEIGHT])

    def privileged_state(self) -> dict[str, Any]:
        place = self.goal_position()
        return {"target": self.object_state("target"), "place_pos": place, "is_success": self.is_success()}

    def variation(self) -> dict[str, Any]:
        return {
            **self.base_variation(self.target_spec),
            "bowl_color": self.bowls["bowl"].color,
            "other_bowl_color": self.bowls["other_bowl"].color,
        }

    def expert(self, env, noise: float = 0.0, seed: int = 0) -> PickPlaceExpert:
        return PickPlaceExpert(env, noise=noise, seed=seed)
