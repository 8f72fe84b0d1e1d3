"""Where things appear in the cameras, computed offline from what a dataset logs.

- `hand_poses`: the end effector's pose for logged joint angles (forward kinematics of the env's Panda).
- `wrist_camera`: the wrist camera's (eye, target, up) for a hand pose, the formula the env renders with.
- `project`: the pixel a world point lands on in a camera given by (eye, target, up) and a vertical field of
  view, with the conventions of pybullet's `computeViewMatrix` / `computeProjectionMatrixFOV` (row 0 at the
  top of the image, pixel centres at +0.5).

Training uses these to label, per frame and camera, where the instruction's target, its goal and the gripper
are in the image (`rt1_sim.data.keypoints`).
"""

from __future__ import annotations

import functools

import numpy as np

# Wrist camera mount, in the hand frame (metres): behind the grasp point along the fingers, beside the palm.
WRIST_CAMERA_BACK = 0.09
WRIST_CAMERA_SIDE = 0.07
WRIST_CAMERA_LOOK = 0.08  # the camera looks at this point past the grasp point


def wrist_camera(position: np.ndarray, rotation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eye, target, up) of the camera fixed to the hand, for the hand's position (..., 3) and rotation
    matrix (..., 3, 3): it sits beside the palm and looks past the fingertips, its up along the palm."""
    forward, side = (
        rotation[..., :, 2],
        rotation[..., :, 0],
    )  # hand z (along the fingers), x (across the palm)
    eye = position - WRIST_CAMERA_BACK * forward + WRIST_CAMERA_SIDE * side
    return eye, position + WRIST_CAMERA_LOOK * forward, side


def quaternion_matrix(quaternion: np.ndarray) -> np.ndarray:
    """xyzw unit quaternions (..., 4) -> rotation matrices (..., 3, 3)."""
    x, y, z, w = np.moveaxis(np.asarray(quaternion, np.float64), -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


@functools.cache
def _arm():  # one headless physics client per process holding the Panda, for forward kinematics
    from envs.robot import Panda
    from envs.sim import Sim

    sim = Sim()
    Panda(sim, (0, 0, 0), (1, 1, 1)).load()
    return sim


def hand_poses(joints: np.ndarray) -> np.ndarray:
    """Logged joint positions (L, 9): 7 arm joints and 2 fingers (`results_raw.csv`'s joint_0..8) -> the end
    effector's (L, 7): position (metres) and xyzw quaternion, as the env's `Panda.ee_pose` reports them."""
    from envs.robot import ARM_JOINTS, EE_LINK, FINGER_JOINTS

    sim = _arm()
    client, body = sim.client, sim.bodies["panda"]
    out = np.zeros((len(joints), 7), np.float64)
    for i, q in enumerate(np.asarray(joints, np.float64)):
        for j, value in zip(ARM_JOINTS + FINGER_JOINTS, q, strict=True):
            client.resetJointState(body, j, float(value))
        state = client.getLinkState(body, EE_LINK, computeForwardKinematics=True)
        out[i, :3], out[i, 3:] = state[4], state[5]
    return out


def project(
    points: np.ndarray,
    eye: np.ndarray,
    target: np.ndarray,
    up: np.ndarray,
    fov: float,
    image_size: tuple[int, int],
) -> np.ndarray:
    """World points (..., 3) -> (..., 2) (row, column) pixel coordinates in an (H, W) image of the camera at
    `eye` looking at `target` (each (..., 3), broadcast against the points) with vertical field of view `fov`
    degrees; NaN for a point at or behind the camera. Points outside the image get coordinates outside
    [0, H) x [0, W)."""
    h, w = image_size
    eye, target, up = (np.asarray(a, np.float64) for a in (eye, target, up))
    forward = target - eye
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    side = np.cross(forward, up)
    side = side / np.linalg.norm(side, axis=-1, keepdims=True)
    true_up = np.cross(side, forward)
    d = np.asarray(points, np.float64) - eye
    depth = (d * forward).sum(-1)
    focal = 1.0 / np.tan(np.radians(fov) / 2.0)  # in units of half the image height
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (d * side).sum(-1) * focal * h / w / depth  # normalised device coordinates, in [-1, 1] on screen
        y = (d * true_up).sum(-1) * focal / depth
    pixels = np.stack([(1.0 - y) * h / 2.0, (x + 1.0) * w / 2.0], axis=-1)
    pixels[depth <= 1e-6] = np.nan
    return pixels
