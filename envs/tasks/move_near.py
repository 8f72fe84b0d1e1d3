"""`move_near`: "move the {A} near the {B}". Success: A's centre within 0.10 m (xy) of B's, A released and
resting on the table, B moved no more than 5 cm from where it started."""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.objects import COLOR_SPLITS, box_extent
from envs.tasks.common import TabletopTask, Template
from envs.tasks.skills import RELEASE_CLEARANCE, PickPlaceExpert, wrap_period

NEAR = 0.10  # metres between centres (xy)
PLACE_DISTANCE = 0.088  # the expert sets A down at most this far from B's centre
PLACE_GAP = 0.012  # and leaves this gap between their sides (fingers included)
# A finger pad beside the held object, plus how far it moves out when the expert lets go, metres.
FINGER_THICKNESS = 0.014 + RELEASE_CLEARANCE / 2
PLACE_X, PLACE_Y = (0.30, 0.75), 0.30  # where the expert may set A down (reachable, in view), metres
FINGER_HALF_WIDTH = 0.012  # half a finger pad across the hand, metres
MAX_B_MOTION = 0.05
ON_TABLE = 0.01  # A's centre within this of its resting height: on the table, not on top of something

TEMPLATES = {
    "train": (
        Template("move the {A} near the {B}", ("move",)),
        Template("put the {A} next to the {B}", ("put",)),
        Template("place the {A} close to the {B}", ("place",)),
        Template("bring the {A} over to the {B}", ("bring",)),
    ),
    "heldout": (
        Template("next to the {B}, leave the {A}", ("leave",)),
        Template("the {A} belongs beside the {B}", ("belongs",)),
    ),
}


class MoveNearTask(TabletopTask):
    family = "move_near"
    templates = TEMPLATES

    def layout(self, rng: np.random.Generator) -> None:
        self.template = self.draw_template(rng)
        color, shape = self.draw_target(rng)
        keep_out: list = []
        self.target_spec = self.add_object(rng, "target", color, shape, keep_out)
        taken = {(color, shape)}
        b_color, b_shape = self.draw_named(rng, taken, COLOR_SPLITS[self.options.colors])
        taken.add((b_color, b_shape))
        # B starts far enough from A that the goal is never met at the start.
        far = keep_out + [(keep_out[0][0], NEAR + 0.08)]
        self.other_spec = self.add_object(rng, "other", b_color, b_shape, far)
        keep_out.append(far[-1])
        self.add_distractors(rng, keep_out, taken)

    def start(self) -> None:
        self.other_start = self.pose("other")[0].copy()
        self.place_offset = self._free_spot_near_other() - self.other_start[:2]  # from B's centre, metres

    def _free_spot_near_other(self) -> np.ndarray:
        """Where the expert sets A down: beside B with a PLACE_GAP between their sides (the fingers included),
        in the free direction that needs the least room (metres, xy)."""
        b, a = self.pose("other")[0][:2], self.pose("target")[0][:2]
        yaw_a, yaw_b = self.yaw("target"), self.yaw("other")
        base = np.arctan2(*(a - b)[::-1])
        others = [
            (self.pose(n)[0][:2], s.radius) for n, s in self.objects.items() if n not in ("target", "other")
        ]
        candidates = []
        for turn in np.radians(np.arange(-180, 180, 20)):
            u = np.array([np.cos(base + turn), np.sin(base + turn)])
            reach = self._carried_extent(u, yaw_a) + self.other_spec.extent_along(u, yaw_b) + PLACE_GAP
            spot = b + min(reach, PLACE_DISTANCE) * u
            inside = PLACE_X[0] <= spot[0] <= PLACE_X[1] and abs(spot[1]) <= PLACE_Y
            free = all(np.linalg.norm(spot - c) >= self.target_spec.radius + r + 0.01 for c, r in others)
            candidates.append(
                (not (inside and free), max(reach, PLACE_DISTANCE - 0.02), abs(turn), tuple(spot))
            )
        return np.asarray(min(candidates)[3])

    def _carried_extent(self, u: np.ndarray, yaw: float) -> float:
        """Reach along `u` of A held by the hand: the hand turns to A's yaw (modulo A's grasp symmetry; a
        cylinder is held at yaw 0) and a finger pad sits on each side along the hand's y axis."""
        spec = self.target_spec
        hand_yaw = wrap_period(yaw, spec.grasp_symmetry)  # the hand starts at yaw 0 and turns the short way
        return box_extent(
            max(spec.size[0] / 2, FINGER_HALF_WIDTH), spec.size[1] / 2 + FINGER_THICKNESS, hand_yaw, u
        )

    def instruction(self) -> str:
        return self.template.text.format(A=self.target_spec.name, B=self.other_spec.name)

    def distance(self) -> float:
        """Between the centres of A and B in the table plane, metres."""
        return float(np.linalg.norm(self.pose("target")[0][:2] - self.pose("other")[0][:2]))

    def other_motion(self) -> float:
        return float(np.linalg.norm(self.pose("other")[0] - self.other_start))

    def is_success(self) -> bool:
        return (
            self.distance() <= NEAR
            and self.other_motion() <= MAX_B_MOTION
            and abs(self.height("target")) < ON_TABLE
            and self.is_resting("target")
        )

    def metrics(self) -> dict[str, float]:
        height = self.height("target")
        return {
            "is_grasped": self.is_grasped("target"),
            "target_height": height,
            "distance": self.distance(),
            "other_motion": self.other_motion(),
        }

    def goal_position(self) -> np.ndarray:
        """Where the expert sets A down beside B (the spot moves with B, should B have been nudged)."""
        return np.array([*(self.pose("other")[0][:2] + self.place_offset), self.rest_z["target"] + 0.006])

    def privileged_state(self) -> dict[str, Any]:
        return {
            "target": self.object_state("target"),
            "other": self.object_state("other"),
            "place_pos": self.goal_position(),
            "is_success": self.is_success(),
        }

    def variation(self) -> dict[str, Any]:
        return {
            **self.base_variation(self.target_spec),
            "other": self.other_spec.name,
            "other_color": self.other_spec.color,
            "other_shape": self.other_spec.shape,
        }

    def expert(self, env, noise: float = 0.0, seed: int = 0) -> PickPlaceExpert:
        return PickPlaceExpert(env, noise=noise, seed=seed)
