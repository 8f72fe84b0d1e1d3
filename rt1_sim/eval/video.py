"""Episode videos: front | wrist side by side under a caption (step, success), encoded as H.264 mp4."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from PIL import Image, ImageDraw

from envs.spaces import CAMERA_NAMES
from rt1_sim.errors import ConfigError
from rt1_sim.files import atomic_path, atomic_write, complete_mp4

VIDEO_MODES = ("all", "failures", "none")  # which episodes get a video
CAPTION_HEIGHT = 14  # pixels above the images for the overlaid text (PIL's default font is ~11 px tall)
MACRO_BLOCK = 16  # H.264 block size: frames are padded to multiples of it so imageio never rescales them
VIDEO_MIN_HEIGHT = 240  # pixels: camera images are upscaled (nearest neighbour) to at least this in videos
# Free bytes under which an incomplete video is put down to a full disk (ffmpeg only prints why it failed).
LOW_DISK_BYTES = 1 << 20
VIDEO_MAX_SIDE = 4096  # pixels: the widest or tallest video frame (H.264's level limits; a scale of 100000
# would allocate terabytes per frame)


def wants_video(mode: str, success: bool) -> bool:
    """Whether an episode gets a video under `mode` ("all", "failures", "none")."""
    return mode == "all" or (mode == "failures" and not success)


def video_scale_for(height: int, scale: int = 0) -> int:
    """The integer upscale of camera images in videos: `scale`, or (0, auto) the smallest that makes them at
    least VIDEO_MIN_HEIGHT pixels tall (3x for the default 96x96 cameras, 1x for IO's 256x320)."""
    return scale if scale > 0 else max(1, -(-VIDEO_MIN_HEIGHT // height))


def check_video_scale(scale: int, image_size: Sequence[int]) -> None:
    """Refuse a `--video-scale` whose frames (the cameras side by side, upscaled) would exceed VIDEO_MAX_SIDE;
    `image_size` is the cameras' (H, W)."""
    height, width = image_size
    k = video_scale_for(height, scale)
    frame = (k * height, k * len(CAMERA_NAMES) * width)
    if max(frame) > VIDEO_MAX_SIDE:
        largest = VIDEO_MAX_SIDE // max(height, len(CAMERA_NAMES) * width)
        raise ConfigError(
            f"--video-scale {scale}: {height}x{width} cameras would make {frame[0]}x{frame[1]} video frames; "
            f"at most {VIDEO_MAX_SIDE} pixels a side (--video-scale {largest} or less, 0: auto)"
        )


def video_frame(obs: dict[str, np.ndarray], step: int, success: bool, scale: int = 0) -> np.ndarray:
    """Front and wrist images side by side, upscaled `scale` times by nearest neighbour (0: auto, see
    `video_scale_for`), under a caption with the step number and success, padded to whole H.264 macro blocks:
    (H', W', 3) uint8."""
    images = np.concatenate([obs[name] for name in CAMERA_NAMES], axis=1)  # (H, V * W, 3)
    k = video_scale_for(images.shape[0], scale)
    images = images.repeat(k, axis=0).repeat(k, axis=1)  # (k * H, k * V * W, 3)
    h, w = images.shape[:2]
    height = -(-(h + CAPTION_HEIGHT) // MACRO_BLOCK) * MACRO_BLOCK
    width = -(-w // MACRO_BLOCK) * MACRO_BLOCK
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[height - h :, :w] = images
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    draw.text((2, 1), f"step {step}", fill=(255, 255, 255))
    if success:
        draw.text((w // 2, 1), "success", fill=(64, 255, 64))
    return np.asarray(picture)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """Encode frames as an H.264 mp4 (imageio's ffmpeg plugin), atomically: a video ffmpeg could not finish
    (a full disk) is removed, never renamed onto `path`."""
    # The temporary name keeps .mp4: ffmpeg picks the container by the suffix.
    with atomic_path(path) as tmp:
        with imageio.get_writer(tmp, format="FFMPEG", fps=fps, macro_block_size=MACRO_BLOCK) as writer:
            for frame in frames:
                writer.append_data(frame)
        if not complete_mp4(tmp):  # imageio does not check how ffmpeg ended
            if shutil.disk_usage(tmp.parent).free < LOW_DISK_BYTES:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))  # one line: atomic_path
            raise RuntimeError(f"{path}: ffmpeg left an incomplete mp4 (see its messages above)")


def write_poster(video: Path) -> Path:
    """The video's first frame as a PNG next to it (`seed_N.png`), for a page's `poster=`: the frame shows
    before the video is played. An existing poster is kept. Returns its path."""
    poster = video.with_suffix(".png")
    if not poster.is_file():
        with imageio.get_reader(video, format="FFMPEG") as reader:
            frame = reader.get_data(0)
        atomic_write(poster, lambda f: Image.fromarray(frame).save(f, format="PNG"))
    return poster
