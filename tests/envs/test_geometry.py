"""envs.geometry: forward kinematics and projection agree with what the env measures and renders."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pybullet
import pytest

import envs  # noqa: F401  (registers the envs)
from envs.geometry import hand_poses, project, quaternion_matrix, wrist_camera
from envs.tabletop import FrontCameraPose

MARKER_RGB = (255, 0, 255)


def _marker_pixel(image: np.ndarray) -> np.ndarray | None:
    """(row, column) centroid of the magenta marker's pixels (pixel centres at +0.5), None when unseen."""
    hit = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] > 200)
    rows, cols = np.nonzero(hit)
    return np.array([rows.mean() + 0.5, cols.mean() + 0.5]) if len(rows) else None


@pytest.fixture()
def scene():
    env = gym.make("PandaTabletop-v0", task="pick")
    env.reset(seed=5)
    move = np.array([0.03, -0.02, -0.04, 0.0, 0.0, 0.2, 0.0, 0.0], np.float32)  # never terminates
    for _ in range(4):  # the hand off its home pose, turned
        env.step(move)
    yield env.unwrapped
    env.close()


def test_hand_poses_match_the_env_and_projection_matches_the_renderer(scene) -> None:
    """Forward kinematics from the logged joints gives the pose the env reports; a marker sphere rendered
    by the front and wrist cameras lands within 1.5 pixels of where `project` puts its centre."""
    env = scene
    hand = hand_poses(env.robot.joint_positions()[None])[0]
    position, orientation = env.robot.ee_pose()
    assert np.allclose(hand[:3], position, atol=1e-6)
    assert np.allclose(quaternion_matrix(hand[3:]), quaternion_matrix(orientation), atol=1e-6)
    front = FrontCameraPose()
    wrist = wrist_camera(hand[:3], quaternion_matrix(hand[3:]))
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(wrist, env.robot.wrist_camera_pose()))
    client = env.sim.client
    seen = {"front": 0, "wrist": 0}
    for point in [(0.5, 0.1, 0.02), (0.45, -0.12, 0.05), (0.6, 0.05, 0.1), tuple(position + (0, 0, -0.12))]:
        shape = client.createVisualShape(pybullet.GEOM_SPHERE, radius=0.008, rgbaColor=[1, 0, 1, 1])
        body = client.createMultiBody(baseMass=0, baseVisualShapeIndex=shape, basePosition=point)
        views = {
            "front": ((front.eye, front.target, front.up), env.cameras["front"]),
            "wrist": (env.robot.wrist_camera_pose(), env.cameras["wrist"]),
        }
        for name, (pose, camera) in views.items():
            rendered = _marker_pixel(env.sim.render(camera, *pose, env._light))
            if rendered is None:  # hidden behind the arm or out of view
                continue
            projected = project(np.asarray(point), *pose, camera.fov, (camera.height, camera.width))
            # (a marker partly hidden by the fingers shifts its centroid by up to about a pixel)
            assert np.abs(projected - rendered).max() < 1.5, (name, point, projected, rendered)
            seen[name] += 1
        client.removeBody(body)
    assert seen["front"] >= 3 and seen["wrist"] >= 1


def test_project_conventions() -> None:
    """The point looked at is the image centre; up in the world is up in the image (smaller row); a point
    behind the camera has no pixel."""
    eye, target, up = np.array([1.0, 0, 0.5]), np.array([0.0, 0, 0.5]), np.array([0.0, 0, 1])
    assert np.allclose(project(target, eye, target, up, 45.0, (96, 128)), [48, 64])
    above = project(target + [0, 0, 0.1], eye, target, up, 45.0, (96, 128))
    assert above[0] < 48 and np.isclose(above[1], 64)
    assert np.isnan(project(eye + [1.0, 0, 0], eye, target, up, 45.0, (96, 96))).all()
