"""What PandaTabletop-v0's task families share: options and their validation, instruction templates, the
drawing of named objects per split, object placement, and scene-level checks (released, resting, lifted)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from envs.objects import (
    COLOR_SPLITS,
    COLORS,
    DRAWER,
    FAMILIES,
    HELDOUT_COMBOS,
    MIX,
    SHAPES,
    SPLITS,
    TRAIN_COLORS,
    ObjectSpec,
    draw_size,
    spawn_object,
)
from envs.robot import FINGER_LINKS
from envs.sim import Sim
from envs.tasks.base import Task

WORKSPACE_X = (0.38, 0.68)  # where objects spawn, metres (robot base at the origin)
WORKSPACE_Y = (-0.22, 0.22)
SPACING = 0.03  # free gap between spawned objects, metres
RESTING_SPEED = 0.05  # m/s: slower than this counts as resting


@dataclass(frozen=True)
class Template:
    """One instruction phrasing. `verbs`: the words that carry the action (a held-out template's verbs never
    occur in any training template)."""

    text: str
    verbs: tuple[str, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.text) if f)


@dataclass(frozen=True)
class TabletopOptions:
    """PandaTabletop-v0's task options. Defaults are the training splits; every bad option is one ValueError
    naming it."""

    task: str = MIX
    colors: str = "train"  # colours named in instructions: training or held-out set
    paraphrases: str = "train"  # instruction templates: training or held-out phrasings
    combos: str = "train"  # (family, colour, shape) targets: anything but HELDOUT_COMBOS, or only those
    target_color: str | None = None  # fix the target's colour (one family only)
    target_shape: str | None = None  # fix the target's shape (one family only)
    num_distractors: tuple[int, int] | None = None  # unnamed extra objects; None: the family's default

    def __post_init__(self) -> None:
        if self.task not in (*FAMILIES, MIX):
            raise ValueError(f"task must be one of {[*FAMILIES, MIX]}, got {self.task!r}")
        for name in ("colors", "paraphrases", "combos"):
            if getattr(self, name) not in SPLITS:
                raise ValueError(f"{name} must be one of {list(SPLITS)}, got {getattr(self, name)!r}")
        if self.combos == "heldout" and self.colors == "heldout":
            raise ValueError(
                "combos='heldout' needs colors='train': held-out combinations use training colours"
            )
        if self.num_distractors is not None:
            low, high = self.num_distractors
            if not 0 <= low <= high <= 3:
                raise ValueError(
                    f"num_distractors must be a (low, high) range in [0, 3], got {self.num_distractors}"
                )
        self._check_target()

    def _check_target(self) -> None:
        color, shape = self.target_color, self.target_shape
        if (color is not None or shape is not None) and self.task == MIX:
            raise ValueError("target_color / target_shape need a single task family, not task='mix'")
        if color is not None:
            if color not in COLORS:
                raise ValueError(f"target_color must be one of {sorted(COLORS)}, got {color!r}")
            if color not in COLOR_SPLITS[self.colors]:
                raise ValueError(
                    f"target_color {color!r} is not in the colors={self.colors!r} set "
                    f"{list(COLOR_SPLITS[self.colors])}"
                )
        valid_shapes = (DRAWER,) if self.task == "drawer" else SHAPES
        if shape is not None and shape not in valid_shapes:
            raise ValueError(
                f"target_shape for task {self.task!r} must be one of {list(valid_shapes)}, got {shape!r}"
            )
        if self.task != MIX and not any(
            self.target_allowed(self.task, c, s)
            for c in self.target_colors()
            for s in ([shape] if shape else valid_shapes)
        ):
            raise ValueError(
                f"impossible combination: task={self.task!r}, target_color={color!r}, "
                f"target_shape={shape!r} with combos={self.combos!r} (held-out combinations: "
                f"{[c for c in HELDOUT_COMBOS if c[0] == self.task]})"
            )

    def target_colors(self) -> tuple[str, ...]:
        """Colours a target may take under these options."""
        return (self.target_color,) if self.target_color else COLOR_SPLITS[self.colors]

    def target_allowed(self, family: str, color: str, shape: str) -> bool:
        """Whether (family, colour, shape) may be this split's target."""
        return ((family, color, shape) in HELDOUT_COMBOS) == (self.combos == "heldout")

    def split_fields(self) -> dict[str, str]:
        return {
            "colors_split": self.colors,
            "paraphrases_split": self.paraphrases,
            "combos_split": self.combos,
        }


def scene_colors(options: TabletopOptions) -> tuple[str, ...]:
    """Colours an unnamed object may take: training colours only in a training-colour episode."""
    return tuple(TRAIN_COLORS) if options.colors == "train" else tuple(COLORS)


def choose(rng: np.random.Generator, items) -> Any:
    """One item of a sequence, uniformly (index drawn from `rng`)."""
    return items[int(rng.integers(len(items)))]


class TabletopTask(Task):
    """Shared machinery for PandaTabletop-v0's families: templates, splits, named objects, distractors."""

    templates: ClassVar[dict[str, tuple[Template, ...]]] = {}  # split -> templates
    default_distractors: tuple[int, int] = (0, 2)
    target_shapes: tuple[str, ...] = SHAPES  # what this family's target may be

    def __init__(self, sim: Sim, robot, options: TabletopOptions) -> None:
        super().__init__(sim, robot, options)
        self.objects: dict[str, ObjectSpec] = {}  # body name -> spec
        self.rest_z: dict[str, float] = {}

    def build(self, rng: np.random.Generator) -> None:
        self.objects.clear()
        self.rest_z.clear()
        self.layout(rng)

    def layout(self, rng: np.random.Generator) -> None:
        """The family's scene: template, named objects, distractors (all drawn from `rng`)."""
        raise NotImplementedError

    # ---- drawing ----
    def draw_template(
        self,
        rng: np.random.Generator,
        templates: dict[str, tuple[Template, ...]] | None = None,
        prefix: str = "",
    ) -> Template:
        split = self.options.paraphrases
        pool = (templates or self.templates)[split]
        index = int(rng.integers(len(pool)))
        self.template_id = f"{self.family}{prefix}/{split}/{index}"
        return pool[index]

    def draw_target(self, rng: np.random.Generator) -> tuple[str, str]:
        """(colour, shape) of the target under the colour and combination splits (rejection sampling)."""
        o = self.options
        shapes = (o.target_shape,) if o.target_shape else self.target_shapes
        while True:
            color, shape = choose(rng, o.target_colors()), choose(rng, shapes)
            if o.target_allowed(self.family, color, shape):
                return color, shape

    def draw_named(
        self,
        rng: np.random.Generator,
        taken: set[tuple[str, str]],
        colors: tuple[str, ...],
        shapes: tuple[str, ...] = SHAPES,
    ) -> tuple[str, str]:
        """A (colour, shape) not yet in the scene, so that every object has a unique name."""
        while True:
            pair = (choose(rng, colors), choose(rng, shapes))
            if pair not in taken:
                return pair

    def draw_count(self, rng: np.random.Generator) -> int:
        low, high = self.options.num_distractors or self.default_distractors
        return int(rng.integers(low, high + 1))

    def free_xy(
        self,
        rng: np.random.Generator,
        radius: float,
        keep_out: list[tuple[np.ndarray, float]],
        x_range=WORKSPACE_X,
        y_range=WORKSPACE_Y,
    ) -> np.ndarray:
        """A table spot whose disc of `radius` stays SPACING clear of each (centre, radius) of keep_out."""
        for _ in range(1000):
            xy = np.array([rng.uniform(*x_range), rng.uniform(*y_range)])
            if all(np.linalg.norm(xy - c) >= radius + r + SPACING for c, r in keep_out):
                return xy
        raise RuntimeError("no free table position found: too many objects for the workspace")

    def add_object(
        self,
        rng: np.random.Generator,
        name: str,
        color: str,
        shape: str,
        keep_out: list[tuple[np.ndarray, float]],
        xy: np.ndarray | None = None,
        **region,
    ) -> ObjectSpec:
        """Draw a size, a free position (unless given) and a yaw; spawn it; reserve its footprint."""
        spec = ObjectSpec(shape, color, draw_size(rng, shape))
        if xy is None:
            xy = self.free_xy(rng, spec.radius, keep_out, **region)
        yaw = float(rng.uniform(-np.pi, np.pi))
        spawn_object(self.sim, name, spec, xy, yaw)
        self.objects[name] = spec
        self.rest_z[name] = spec.half_height
        keep_out.append((xy, spec.radius))
        return spec

    def add_distractors(
        self,
        rng: np.random.Generator,
        keep_out: list[tuple[np.ndarray, float]],
        taken: set[tuple[str, str]],
        **region,
    ) -> None:
        """Unnamed objects with names unique in the scene (they may use held-out combinations)."""
        for i in range(self.draw_count(rng)):
            color, shape = self.draw_named(rng, taken, scene_colors(self.options))
            taken.add((color, shape))
            self.add_object(rng, f"distractor_{i}", color, shape, keep_out, **region)

    # ---- state ----
    def pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.sim.base_pose(name)

    def yaw(self, name: str) -> float:
        return float(self.sim.client.getEulerFromQuaternion(self.pose(name)[1])[2])

    def speed(self, name: str) -> float:
        """Linear speed of a body, m/s."""
        return float(np.linalg.norm(self.sim.client.getBaseVelocity(self.sim.bodies[name])[0]))

    def is_grasped(self, name: str) -> bool:
        """Both fingers touch the object."""
        return all(self.sim.in_contact("panda", name, link_a=link) for link in FINGER_LINKS)

    def is_released(self, name: str) -> bool:
        """No part of the robot touches the object."""
        return not self.sim.in_contact("panda", name)

    def is_resting(self, name: str) -> bool:
        return self.is_released(name) and self.speed(name) < RESTING_SPEED

    def height(self, name: str) -> float:
        """How far an object's centre is above its resting height on the table, metres."""
        return float(self.pose(name)[0][2] - self.rest_z[name])

    def object_state(self, name: str) -> dict[str, Any]:
        """What an expert needs of one object: pose, yaw, size, grasp symmetry."""
        spec = self.objects[name]
        pos, quat = self.pose(name)
        return {
            "pos": pos,
            "quat": quat,
            "yaw": self.yaw(name),
            "size": np.asarray(spec.size),
            "half_height": spec.half_height,
            "grasp_symmetry": spec.grasp_symmetry,
            "is_grasped": self.is_grasped(name),
        }

    def raw_object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.pose("target")

    def base_variation(self, target: ObjectSpec | None) -> dict[str, Any]:
        """The fields every family reports; families add their own."""
        return {
            "family": self.family,
            "target": target.name if target else DRAWER,
            "target_color": target.color if target else None,
            "target_shape": target.shape if target else None,
            **self.options.split_fields(),
            "template_id": self.template_id,
            "instruction": self.instruction(),
            "num_distractors": sum(name.startswith("distractor") for name in self.objects),
            "object_names": sorted(spec.name for spec in self.objects.values()),
        }
