"""A thin PyBullet wrapper: one physics client per instance, bodies by name, cameras at their own size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.quiet import quiet_c_output

with quiet_c_output():  # pybullet prints its build time when first imported: the simulator's module does it
    import pybullet
    import pybullet_data
    from pybullet_utils.bullet_client import BulletClient


@dataclass(frozen=True)
class CameraConfig:
    """A pinhole camera rendered directly at (height, width): never render large and resize."""

    name: str
    height: int
    width: int
    fov: float  # vertical field of view, degrees
    near: float = 0.01
    far: float = 3.0

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(
                f"camera {self.name!r}: image size must be positive, got {self.height}x{self.width}"
            )
        if not 1.0 <= self.fov <= 170.0:
            raise ValueError(f"camera {self.name!r}: fov must be in [1, 170] degrees, got {self.fov}")


class Sim:
    """Owns one headless (DIRECT) PyBullet client; several instances in one process never interfere."""

    def __init__(self, timestep: float = 1.0 / 240.0, solver_iterations: int = 50) -> None:
        with quiet_c_output():  # the C client prints `argv[0]=` when it connects
            self.client = BulletClient(connection_mode=pybullet.DIRECT)
        self.timestep = timestep
        self.solver_iterations = solver_iterations
        self.bodies: dict[str, int] = {}
        self.clear()

    def clear(self) -> None:
        """Remove every body and restore gravity, timestep and the search path (start of a new scene)."""
        c = self.client
        c.resetSimulation()
        c.setAdditionalSearchPath(pybullet_data.getDataPath())
        c.setGravity(0.0, 0.0, -9.81)
        c.setPhysicsEngineParameter(
            fixedTimeStep=self.timestep,
            numSolverIterations=self.solver_iterations,
            deterministicOverlappingPairs=1,
        )
        self.bodies.clear()

    def close(self) -> None:
        """Release the physics client (idempotent)."""
        if self.client is not None:
            self.client.disconnect()
            self.client = None

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.client.stepSimulation()

    # ---- scene building ----
    def load_urdf(
        self,
        name: str,
        path: str,
        position: Sequence[float],
        orientation: Sequence[float] = (0, 0, 0, 1),
        fixed: bool = False,
    ) -> int:
        """Load a URDF (relative paths resolve in pybullet_data) and register it under `name`."""
        body = self.client.loadURDF(
            path,
            basePosition=position,
            baseOrientation=orientation,
            useFixedBase=fixed,
            flags=pybullet.URDF_ENABLE_CACHED_GRAPHICS_SHAPES,
        )
        self.bodies[name] = body
        return body

    def create_box(
        self,
        name: str,
        half_extents: Sequence[float],
        position: Sequence[float],
        orientation: Sequence[float] = (0, 0, 0, 1),
        mass: float = 0.0,
        rgba: Sequence[float] = (0.5, 0.5, 0.5, 1.0),
        friction: float = 1.0,
    ) -> int:
        """A box body (mass 0: static) with one flat colour: untextured shapes keep TinyRenderer cheap."""
        shape = {"halfExtents": half_extents}
        return self._create(
            name, pybullet.GEOM_BOX, shape, shape, position, orientation, mass, rgba, friction
        )

    def create_slab(
        self,
        name: str,
        half_extents: Sequence[float],
        position: Sequence[float],
        rgba: Sequence[float],
        friction: float = 1.0,
    ) -> int:
        """A static box that collides as a box but is drawn as its top face only (2 triangles instead of 12).

        TinyRenderer scans every triangle it is given: a table's hidden faces span the whole image too, for
        about 10% of the render time at 256x320. The top face is wound and triangulated as PyBullet's own box
        is, so every image stays byte-identical (tests/envs/test_pick_bytes.py).
        """
        c = self.client
        hx, hy, hz = half_extents
        collision = c.createCollisionShape(pybullet.GEOM_BOX, halfExtents=half_extents)
        corners = [[-hx, -hy, hz], [hx, -hy, hz], [hx, hy, hz], [-hx, hy, hz]]
        visual = c.createVisualShape(
            pybullet.GEOM_MESH,
            vertices=corners,
            indices=[0, 1, 2, 0, 2, 3],
            normals=[[0, 0, 1]] * 4,
            uvs=[[0, 0]] * 4,
            rgbaColor=rgba,
        )
        body = c.createMultiBody(
            baseMass=0.0,
            baseCollisionShapeIndex=collision,
            baseVisualShapeIndex=visual,
            basePosition=position,
        )
        c.changeDynamics(body, -1, lateralFriction=friction)
        self.bodies[name] = body
        return body

    def create_cylinder(
        self,
        name: str,
        radius: float,
        height: float,
        position: Sequence[float],
        mass: float,
        rgba: Sequence[float],
        friction: float = 1.0,
    ) -> int:
        # PyBullet names a cylinder's height `height` for collision shapes and `length` for visual shapes.
        return self._create(
            name,
            pybullet.GEOM_CYLINDER,
            {"radius": radius, "height": height},
            {"radius": radius, "length": height},
            position,
            (0, 0, 0, 1),
            mass,
            rgba,
            friction,
        )

    def create_sphere(
        self,
        name: str,
        radius: float,
        position: Sequence[float],
        mass: float,
        rgba: Sequence[float],
        friction: float = 1.0,
    ) -> int:
        shape = {"radius": radius}
        return self._create(
            name, pybullet.GEOM_SPHERE, shape, shape, position, (0, 0, 0, 1), mass, rgba, friction
        )

    def _create(
        self,
        name: str,
        geom: int,
        collision_kwargs: dict,
        visual_kwargs: dict,
        position: Sequence[float],
        orientation: Sequence[float],
        mass: float,
        rgba: Sequence[float],
        friction: float,
    ) -> int:
        c = self.client
        collision = c.createCollisionShape(geom, **collision_kwargs)
        visual = c.createVisualShape(geom, rgbaColor=rgba, **visual_kwargs)
        body = c.createMultiBody(
            baseMass=mass,
            baseCollisionShapeIndex=collision,
            baseVisualShapeIndex=visual,
            basePosition=position,
            baseOrientation=orientation,
        )
        c.changeDynamics(body, -1, lateralFriction=friction)
        self.bodies[name] = body
        return body

    # ---- state ----
    def base_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), xyzw quaternion (4,)) of a body's base."""
        pos, orn = self.client.getBasePositionAndOrientation(self.bodies[name])
        return np.asarray(pos), np.asarray(orn)

    def link_pose(self, name: str, link: int) -> tuple[np.ndarray, np.ndarray]:
        """World (position, xyzw quaternion) of a link frame."""
        state = self.client.getLinkState(self.bodies[name], link, computeForwardKinematics=True)
        return np.asarray(state[4]), np.asarray(state[5])

    def in_contact(self, body_a: str, body_b: str, link_a: int | None = None) -> bool:
        kwargs = {} if link_a is None else {"linkIndexA": link_a}
        return len(self.client.getContactPoints(self.bodies[body_a], self.bodies[body_b], **kwargs)) > 0

    # ---- rendering ----
    def render(
        self,
        camera: CameraConfig,
        eye: Sequence[float],
        target: Sequence[float],
        up: Sequence[float],
        light_direction: Sequence[float],
    ) -> np.ndarray:
        """Render one RGB uint8 (H, W, 3) image with the CPU TinyRenderer (identical on every machine)."""
        c = self.client
        view = c.computeViewMatrix(eye, target, up)
        proj = c.computeProjectionMatrixFOV(camera.fov, camera.width / camera.height, camera.near, camera.far)
        _, _, rgba, _, _ = c.getCameraImage(
            camera.width,
            camera.height,
            view,
            proj,
            shadow=0,
            lightDirection=list(light_direction),
            renderer=pybullet.ER_TINY_RENDERER,
            flags=pybullet.ER_NO_SEGMENTATION_MASK,
        )
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(camera.height, camera.width, 4)  # (H, W, 4)
        return np.ascontiguousarray(rgba[..., :3])
