"""Franka Panda (pybullet_data's franka_panda/panda.urdf): end-effector delta control, IK, fixed rate."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from envs.geometry import wrist_camera
from envs.sim import Sim

# pybullet_data's Panda with its collision meshes as visuals: same robot, 7x cheaper to render (its README).
PANDA_URDF = str(Path(__file__).resolve().parent.parent / "assets" / "franka_panda" / "panda_lowpoly.urdf")
ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
EE_LINK = 11  # panda_grasptarget: the point midway between the fingertips
FINGER_LINKS = (9, 10)
MAX_FINGER_OPENING = 0.04  # metres per finger (URDF joint limit): 8 cm between the fingers
# A home pose with the hand pointing straight down above the workspace.
HOME_JOINTS = (0.0, 0.1, 0.0, -2.1, 0.0, 2.2, 0.785)
# Hand pointing down (z-axis towards the table) at yaw 0: Rx(pi).
DOWN_QUAT = (1.0, 0.0, 0.0, 0.0)


def yaw_of(quat: Sequence[float], client) -> float:
    """Yaw of a downward-pointing hand: the angle of its x-axis in the world's xy-plane."""
    rot = np.asarray(client.getMatrixFromQuaternion(quat)).reshape(3, 3)
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


class Panda:
    """Robot half of the env: `reset`, `set_action` (one control step) and `get_obs`.

    Control: the commanded end-effector pose is the measured position plus `world_vector`, and a commanded
    orientation (kept by the robot, so roll/pitch never drift) rotated by `rotation_delta`; IK turns it into
    joint targets tracked by position control for exactly `substeps` physics steps. At 240 Hz physics and 24
    substeps the control rate is 10 Hz, independent of wall-clock time.
    """

    def __init__(
        self,
        sim: Sim,
        workspace_low: Sequence[float],
        workspace_high: Sequence[float],
        substeps: int = 24,
        action_frame: str = "base",
    ) -> None:
        if action_frame not in ("base", "ee"):
            raise ValueError(f"action_frame must be 'base' or 'ee', got {action_frame!r}")
        if substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        self.sim = sim
        self.substeps = substeps
        self.action_frame = action_frame
        self.workspace_low = np.asarray(workspace_low, dtype=np.float64)
        self.workspace_high = np.asarray(workspace_high, dtype=np.float64)
        self._target_orn = np.asarray(DOWN_QUAT, dtype=np.float64)

    @property
    def control_hz(self) -> float:
        return 1.0 / (self.sim.timestep * self.substeps)

    def load(self) -> None:
        """Add the arm to the current scene (fixed base at the origin, on the table top)."""
        sim = self.sim
        body = sim.load_urdf("panda", PANDA_URDF, (0.0, 0.0, 0.0), fixed=True)
        c = sim.client
        limits = [c.getJointInfo(body, j)[8:10] for j in ARM_JOINTS]
        self._lower = [lo for lo, _ in limits]
        self._upper = [hi for _, hi in limits]
        self._ranges = [hi - lo for lo, hi in limits]
        self._max_force = [c.getJointInfo(body, j)[10] for j in ARM_JOINTS]
        for link in FINGER_LINKS:
            c.changeDynamics(body, link, lateralFriction=1.5, spinningFriction=0.01)

    def reset(self, yaw: float = 0.0) -> None:
        """Home pose, gripper open, commanded orientation pointing down at `yaw`."""
        c, body = self.sim.client, self.sim.bodies["panda"]
        for j, q in zip(ARM_JOINTS, HOME_JOINTS):
            c.resetJointState(body, j, q)
        for j in FINGER_JOINTS:
            c.resetJointState(body, j, MAX_FINGER_OPENING)
        self._target_orn = np.asarray(c.getQuaternionFromEuler((np.pi, 0.0, yaw)), dtype=np.float64)
        self._drive(np.asarray(HOME_JOINTS), MAX_FINGER_OPENING)

    def set_action(
        self, world_vector: np.ndarray, rotation_delta: np.ndarray, gripper_closedness: float
    ) -> None:
        """One control step: move the end effector by the deltas, command the gripper, step the physics."""
        c = self.sim.client
        ee_pos, ee_orn = self.ee_pose()
        delta_rot = c.getQuaternionFromEuler(rotation_delta.tolist())
        if self.action_frame == "ee":  # IO's convention: both deltas expressed in the end-effector frame
            rot = np.asarray(c.getMatrixFromQuaternion(ee_orn)).reshape(3, 3)
            world_vector = rot @ world_vector
            _, orn = c.multiplyTransforms((0, 0, 0), self._target_orn, (0, 0, 0), delta_rot)
        else:
            _, orn = c.multiplyTransforms((0, 0, 0), delta_rot, (0, 0, 0), self._target_orn)
        self._target_orn = np.asarray(orn)
        target = np.clip(ee_pos + world_vector, self.workspace_low, self.workspace_high)
        joints = c.calculateInverseKinematics(
            self.sim.bodies["panda"],
            EE_LINK,
            target.tolist(),
            self._target_orn.tolist(),
            lowerLimits=self._lower,
            upperLimits=self._upper,
            jointRanges=self._ranges,
            restPoses=list(HOME_JOINTS),
            maxNumIterations=20,
            residualThreshold=1e-4,
        )
        opening = MAX_FINGER_OPENING * (1.0 - float(np.clip(gripper_closedness, -1.0, 1.0))) / 2.0
        self._drive(np.asarray(joints[:7]), opening)
        self.sim.step(self.substeps)

    def _drive(self, arm_targets: np.ndarray, finger_target: float) -> None:
        c, body = self.sim.client, self.sim.bodies["panda"]
        c.setJointMotorControlArray(
            body,
            list(ARM_JOINTS),
            c.POSITION_CONTROL,
            targetPositions=arm_targets.tolist(),
            forces=self._max_force,
        )
        c.setJointMotorControlArray(
            body,
            list(FINGER_JOINTS),
            c.POSITION_CONTROL,
            targetPositions=[finger_target] * 2,
            forces=[40.0, 40.0],
        )

    # ---- observation ----
    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.sim.link_pose("panda", EE_LINK)

    def joint_positions(self) -> np.ndarray:
        """7 arm joints + 2 finger joints, radians / metres."""
        c, body = self.sim.client, self.sim.bodies["panda"]
        return np.asarray([s[0] for s in c.getJointStates(body, list(ARM_JOINTS + FINGER_JOINTS))])

    def gripper_opening(self) -> float:
        """Distance between the fingers, metres."""
        return float(self.joint_positions()[7:].sum())

    def get_obs(self) -> dict[str, np.ndarray]:
        pos, orn = self.ee_pose()
        joints = self.joint_positions()
        return {
            "ee_pos": pos.astype(np.float32),
            "ee_orn": orn.astype(np.float32),
            "gripper": np.asarray([joints[7:].sum()], dtype=np.float32),
            "joint_pos": joints.astype(np.float32),
        }

    def wrist_camera_pose(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(eye, target, up) of a camera fixed to the hand: beside the palm, looking past the fingertips."""
        pos, orn = self.ee_pose()
        return wrist_camera(pos, np.asarray(self.sim.client.getMatrixFromQuaternion(orn)).reshape(3, 3))
