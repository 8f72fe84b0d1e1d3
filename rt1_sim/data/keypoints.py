"""Keypoint labels: where the instruction's target, its goal and the gripper are in each camera frame, in the
network's pixels, for the keypoint maps (rt1_sim.model.keypoints).

The positions are the dataset's own: the target and goal positions every frame logs (`results_raw.csv`'s
tar_obj_pose_x/y/z, goal_pos_x/y/z) and the hand's pose computed from its logged joints
(`envs.geometry.hand_poses`). They are projected with the cameras the dataset was rendered with: the front
camera's fixed pose and field of view, the wrist camera's from the hand pose. Labels are geometry only: a
point hidden behind another object still gets its pixel; a point outside the image gets none.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.geometry import project, quaternion_matrix, wrist_camera
from envs.tabletop import DEFAULT_IMAGE_SIZE, FrontCameraPose, ViewOptions
from rt1_sim.data.episodes import DatasetError

log = logging.getLogger(__name__)

COLLECT_CONFIG = "collect_config.json"
HAND_SIZE = 7  # end-effector position (3) and xyzw quaternion (4)


@dataclass(frozen=True)
class CameraGeometry:
    """The cameras a dataset was rendered with (their defaults are the env's)."""

    render_size: tuple[int, int] = DEFAULT_IMAGE_SIZE  # (H, W) the env rendered at
    front_fov: float = ViewOptions.front_fov
    wrist_fov: float = ViewOptions.wrist_fov
    front: FrontCameraPose = FrontCameraPose()


def dataset_geometry(root: str | Path) -> CameraGeometry:
    """The camera geometry of the dataset at `root`, from the env options its `collect_config.json` records
    (image_size, front_fov, wrist_fov); the env's defaults where it records none or has no such file."""
    path = Path(root) / COLLECT_CONFIG
    if not path.is_file():
        log.warning(
            "%s: no %s; keypoint labels assume the env's default cameras at %dx%d",
            root,
            COLLECT_CONFIG,
            *DEFAULT_IMAGE_SIZE,
        )
        return CameraGeometry()
    try:
        options = json.loads(path.read_text()).get("env_options") or {}
    except (OSError, ValueError, AttributeError) as e:
        raise DatasetError(f"{path}: unreadable ({e})") from None
    if options.get("camera_jitter"):
        log.warning(
            "%s: the front camera was jittered (camera_jitter %s); keypoint labels assume it was not",
            path,
            options["camera_jitter"],
        )
    return CameraGeometry(
        render_size=tuple(options.get("image_size", DEFAULT_IMAGE_SIZE)),
        front_fov=float(options.get("front_fov", ViewOptions.front_fov)),
        wrist_fov=float(options.get("wrist_fov", ViewOptions.wrist_fov)),
    )


def frame_pixels(
    states: np.ndarray,
    hands: np.ndarray,
    views: tuple[str, ...],
    geometry: CameraGeometry,
    num_maps: int,
    image_size: tuple[int, int],
) -> np.ndarray:
    """Per frame (N), camera (V) and keypoint (the first `num_maps` of target, goal, gripper): its (row,
    column) pixel in the full frame at the network's `image_size`, NaN where there is none (no goal logged,
    behind the camera). `states` (N, 6) target and goal xyz, `hands` (N, 7) hand poses."""
    points = np.stack([states[:, :3], states[:, 3:6], hands[:, :3]], axis=1)[:, :num_maps]  # (N, K, 3)
    out = np.full((len(states), len(views), num_maps, 2), np.nan, np.float32)
    scale = np.asarray(image_size, np.float64) / np.asarray(geometry.render_size, np.float64)
    for i, view in enumerate(views):
        if view == "front":
            pose = geometry.front
            eye, target, up = (np.asarray(a, np.float64) for a in (pose.eye, pose.target, pose.up))
            fov = geometry.front_fov
        elif view == "wrist":
            eye, target, up = wrist_camera(hands[:, :3], quaternion_matrix(hands[:, 3:]))
            eye, target, up = eye[:, None], target[:, None], up[:, None]  # broadcast over the keypoints
            fov = geometry.wrist_fov
        else:
            raise DatasetError(f"no camera geometry for view {view!r} (keypoint maps know front and wrist)")
        out[:, i] = project(points, eye, target, up, fov, geometry.render_size) * scale
    return out


def crop_pixels(
    pixels: np.ndarray, offsets: tuple[int, int], margin: int, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Full-frame pixels (..., 2) -> their position after the crop at `offsets` (top, left) taken `margin`
    pixels smaller than the frame and resized back (`rt1_sim.preprocess.crop_and_resize`), and a mask of those
    inside the image."""
    size = np.asarray(image_size, np.float32)
    moved = (pixels - np.asarray(offsets, np.float32)) * (size / (size - margin))
    with np.errstate(invalid="ignore"):
        inside = np.isfinite(moved).all(-1) & (moved >= 0).all(-1) & (moved < size).all(-1)
    return np.where(inside[..., None], moved, 0.0).astype(np.float32), inside
