"""What PandaTabletop-v0's scenes are made of: shapes, colours (training / held-out), receptacles, the drawer.

The names here are the one source for families, colour sets and held-out target combinations: tests, configs
and rt1_sim import them rather than repeat literals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.sim import Sim, pybullet  # pybullet as the simulator's module imported it (quietly)

FAMILIES: tuple[str, ...] = ("pick", "move_near", "place_in", "stack", "push", "drawer")
MIX = "mix"  # a seeded uniform choice of family per episode
SPLITS: tuple[str, ...] = ("train", "heldout")

RGBA = tuple[float, float, float, float]
# Training and held-out colours are disjoint: no held-out colour ever appears in a training-split episode.
TRAIN_COLORS: dict[str, RGBA] = {
    "red": (0.85, 0.1, 0.1, 1.0),
    "green": (0.1, 0.7, 0.2, 1.0),
    "blue": (0.1, 0.25, 0.85, 1.0),
    "yellow": (0.9, 0.8, 0.1, 1.0),
    "purple": (0.55, 0.2, 0.7, 1.0),
    "orange": (0.95, 0.5, 0.05, 1.0),
}
HELDOUT_COLORS: dict[str, RGBA] = {
    "pink": (0.95, 0.5, 0.7, 1.0),
    "brown": (0.45, 0.27, 0.1, 1.0),
    "white": (0.96, 0.96, 0.96, 1.0),
}
COLORS: dict[str, RGBA] = {**TRAIN_COLORS, **HELDOUT_COLORS}
COLOR_SPLITS: dict[str, tuple[str, ...]] = {"train": tuple(TRAIN_COLORS), "heldout": tuple(HELDOUT_COLORS)}

SHAPES: tuple[str, ...] = ("cube", "cylinder", "brick")  # all flat-topped and stable: nothing rolls away
DRAWER = "drawer"  # the drawer family's target "shape"

# (family, colour, shape) targets that no training-split episode uses (they may appear as distractors). All
# use training colours and shapes: the held-out split tests new pairings of known words, not new words.
HELDOUT_COMBOS: tuple[tuple[str, str, str], ...] = (
    ("pick", "red", "cylinder"),
    ("pick", "blue", "brick"),
    ("pick", "yellow", "cube"),
    ("move_near", "green", "cube"),
    ("move_near", "orange", "cylinder"),
    ("move_near", "purple", "brick"),
    ("place_in", "blue", "cylinder"),
    ("place_in", "red", "brick"),
    ("place_in", "green", "cube"),
    ("stack", "yellow", "brick"),
    ("stack", "purple", "cube"),
    ("stack", "red", "cylinder"),
    ("push", "orange", "cube"),
    ("push", "green", "brick"),
    ("push", "blue", "cylinder"),
    ("drawer", "purple", DRAWER),
    ("drawer", "orange", DRAWER),
)

OBJECT_MASS = 0.1  # kg
ROLLING_FRICTION = 0.003
OBJECT_FRICTION = 0.6
DRAWER_URDF = str(Path(__file__).resolve().parent.parent / "assets" / "drawer" / "cabinet.urdf")


@dataclass(frozen=True)
class ObjectSpec:
    """One graspable object: shape, colour and size (metres). `size` is the full extent along (x, y, z) of its
    own frame; a cylinder's x and y are its diameter; a brick's long side is x."""

    shape: str
    color: str
    size: tuple[float, float, float]

    @property
    def name(self) -> str:
        """How instructions refer to it, e.g. "red cube"."""
        return f"{self.color} {self.shape}"

    @property
    def half_height(self) -> float:
        return self.size[2] / 2

    @property
    def radius(self) -> float:
        """Radius of the smallest vertical cylinder around it (for spacing objects)."""
        return float(np.hypot(self.size[0], self.size[1]) / 2)

    def extent_along(self, direction: np.ndarray, yaw: float) -> float:
        """How far it reaches from its centre along a unit xy `direction` when turned by `yaw`, metres."""
        if self.shape == "cylinder":
            return self.size[0] / 2
        return box_extent(self.size[0] / 2, self.size[1] / 2, yaw, direction)

    @property
    def grasp_symmetry(self) -> float:
        """Yaw period of a grasp across its narrow side (0: any yaw, a cylinder)."""
        return {"cube": np.pi / 2, "brick": np.pi, "cylinder": 0.0}[self.shape]


def box_extent(half_x: float, half_y: float, yaw: float, direction: np.ndarray) -> float:
    """Support distance of a box (half sizes in its own frame, turned by `yaw`) along a unit xy direction."""
    along_x = np.cos(yaw) * direction[0] + np.sin(yaw) * direction[1]
    along_y = -np.sin(yaw) * direction[0] + np.cos(yaw) * direction[1]
    return float(abs(along_x) * half_x + abs(along_y) * half_y)


def draw_size(rng: np.random.Generator, shape: str) -> tuple[float, float, float]:
    """A size the gripper can hold (it opens 8 cm): cubes 4-5.5 cm, cylinders 4-5.2 cm wide, bricks 7x4 cm."""
    if shape == "cube":
        edge = float(rng.uniform(0.04, 0.055))
        return (edge, edge, edge)
    if shape == "cylinder":
        diameter, height = float(rng.uniform(0.04, 0.052)), float(rng.uniform(0.045, 0.06))
        return (diameter, diameter, height)
    if shape == "brick":
        scale = float(rng.uniform(0.9, 1.1))
        return (0.07 * scale, 0.038 * scale, 0.04 * scale)
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def spawn_object(sim: Sim, name: str, spec: ObjectSpec, xy: np.ndarray, yaw: float) -> int:
    """Put `spec` on the table at `xy` (metres) turned by `yaw` (radians)."""
    position = (float(xy[0]), float(xy[1]), spec.half_height)
    rgba = COLORS[spec.color]
    if spec.shape == "cylinder":
        body = sim.create_cylinder(
            name, spec.size[0] / 2, spec.size[2], position, mass=OBJECT_MASS, rgba=rgba
        )
    else:
        quat = sim.client.getQuaternionFromEuler((0.0, 0.0, yaw))
        body = sim.create_box(
            name, tuple(s / 2 for s in spec.size), position, quat, mass=OBJECT_MASS, rgba=rgba
        )
    # Rolling friction: a cylinder knocked onto its side stops instead of rolling off the table. Sliding
    # friction 0.6 (times the table's 1.0): pushed low, an object slides rather than tips over.
    sim.client.changeDynamics(body, -1, lateralFriction=OBJECT_FRICTION, rollingFriction=ROLLING_FRICTION)
    return body


@dataclass(frozen=True)
class BowlSpec:
    """A static round bowl: a floor disc and a ring of wall segments (metres)."""

    color: str
    inner_radius: float = 0.07
    wall_height: float = 0.035
    wall_thickness: float = 0.008
    floor_thickness: float = 0.006
    segments: int = 12

    @property
    def name(self) -> str:
        return f"{self.color} bowl"

    @property
    def outer_radius(self) -> float:
        return self.inner_radius + self.wall_thickness


def spawn_bowl(sim: Sim, name: str, spec: BowlSpec, xy: np.ndarray) -> int:
    """One static compound body (mass 0): floor + `segments` wall boxes, all in the bowl's colour."""
    c = sim.client
    n, r = spec.segments, spec.inner_radius + spec.wall_thickness / 2
    half_len = (spec.inner_radius + spec.wall_thickness) * np.tan(np.pi / n) + 0.002
    types = [pybullet.GEOM_CYLINDER] + [pybullet.GEOM_BOX] * n
    half_extents = [[0, 0, 0]] + [[spec.wall_thickness / 2, half_len, spec.wall_height / 2]] * n
    angles = 2 * np.pi * np.arange(n) / n
    positions = [[0, 0, spec.floor_thickness / 2]] + [
        [r * np.cos(a), r * np.sin(a), spec.wall_height / 2] for a in angles
    ]
    orientations = [[0, 0, 0, 1]] + [list(c.getQuaternionFromEuler((0, 0, a))) for a in angles]
    radii = [spec.outer_radius] + [0.0] * n
    lengths = [spec.floor_thickness] + [0.0] * n
    collision = c.createCollisionShapeArray(
        types,
        radii=radii,
        halfExtents=half_extents,
        lengths=lengths,
        collisionFramePositions=positions,
        collisionFrameOrientations=orientations,
    )
    visual = c.createVisualShapeArray(
        types,
        radii=radii,
        halfExtents=half_extents,
        lengths=lengths,
        visualFramePositions=positions,
        visualFrameOrientations=orientations,
    )
    body = c.createMultiBody(
        baseMass=0.0,
        baseCollisionShapeIndex=collision,
        baseVisualShapeIndex=visual,
        basePosition=(float(xy[0]), float(xy[1]), 0.0),
    )
    c.changeVisualShape(body, -1, rgbaColor=COLORS[spec.color])
    sim.bodies[name] = body
    return body


# ---- the drawer cabinet (assets/drawer/cabinet.urdf) ----
DRAWER_JOINT = 0
DRAWER_TRAVEL = 0.14  # metres, the joint's upper limit
CABINET_DEPTH = 0.16  # along the drawer's axis
CABINET_WIDTH = 0.24
HANDLE_OFFSET = np.array(
    [0.125, 0.0, 0.09]
)  # handle bar centre in the drawer link frame at opening 0, metres
DRAWER_FRICTION = 3.0  # N: a velocity motor holding the drawer where it is left


def spawn_cabinet(sim: Sim, name: str, color: str, position: np.ndarray, yaw: float, opening: float) -> int:
    """Load the cabinet (fixed) with its carcass in `color`, the drawer pulled out `opening` metres."""
    body = sim.load_urdf(
        name,
        DRAWER_URDF,
        (float(position[0]), float(position[1]), 0.0),
        sim.client.getQuaternionFromEuler((0.0, 0.0, yaw)),
        fixed=True,
    )
    c = sim.client
    c.changeVisualShape(body, -1, rgbaColor=COLORS[color])
    c.resetJointState(body, DRAWER_JOINT, opening)
    c.setJointMotorControl2(
        body, DRAWER_JOINT, pybullet.VELOCITY_CONTROL, targetVelocity=0.0, force=DRAWER_FRICTION
    )
    return body
