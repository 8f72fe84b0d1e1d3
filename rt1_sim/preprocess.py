"""The one place where numpy observations become torch tensors (policy and training Dataset both use it).

Images stay uint8 HWC until here; here they are checked and become float32 CHW in [0, 1] (ImageNet
normalisation happens inside the network). Proprioception is the concatenation of `envs.spaces.PROPRIO_SIZES`
in table order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from envs.spaces import PROPRIO_SIZES

PROPRIO_SIZE: int = sum(PROPRIO_SIZES.values())  # 17: ee_pos 3, ee_orn 4, gripper 1, joint_pos 9


def resize_images(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 frames (..., H, W, 3) -> (..., size[0], size[1], 3), bilinear with antialiasing (PIL): how the
    frame cache brings a dataset to the network's image size, and how a policy brings an env's frames to it,
    so the two see the same pixels. Frames already of `size` come back as they are."""
    frames = np.asarray(frames)
    if frames.shape[-3:-1] == tuple(size):
        return frames
    flat = frames.reshape(-1, *frames.shape[-3:])
    resized = [np.asarray(Image.fromarray(f).resize((size[1], size[0]), Image.BILINEAR)) for f in flat]
    return np.stack(resized).reshape(*frames.shape[:-3], size[0], size[1], 3)


def crop_margin(image_size: tuple[int, int], crop_size: int) -> int:
    """Pixels taken off each dimension by a crop of `crop_size` on the image's shorter side (the training
    crop and the centre crop of a policy trained with it)."""
    margin = min(image_size) - crop_size
    if margin < 0:
        raise ValueError(f"crop_size {crop_size} exceeds the image size {tuple(image_size)}")
    return margin


def crop_and_resize(frames: np.ndarray, top: int, left: int, margin: int) -> np.ndarray:
    """uint8 frames (..., H, W, 3): the (H - margin, W - margin) window at (top, left) of each, resized back
    to (H, W) (PIL, bilinear)."""
    frames = np.asarray(frames)
    if margin == 0:
        return frames
    h, w = frames.shape[-3:-1]
    flat = frames.reshape(-1, h, w, 3)
    crops = [Image.fromarray(f[top : top + h - margin, left : left + w - margin]) for f in flat]
    resized = np.stack([np.asarray(c.resize((w, h), Image.BILINEAR)) for c in crops])
    return resized.reshape(frames.shape)


def center_crop(frames: np.ndarray, crop_size: int) -> np.ndarray:
    """uint8 frames (..., H, W, 3) -> the same shape: the centred crop of `crop_size` on the shorter side,
    resized back. What a policy trained on random crops resized back (`RandomCrop`, IO's augmentation) sees at
    the same scale: those crops magnify every frame by H / (H - margin), and a full frame would show every
    object smaller than any frame training saw."""
    frames = np.asarray(frames)
    margin = crop_margin(frames.shape[-3:-1], crop_size)
    return crop_and_resize(frames, margin // 2, margin // 2, margin)


def images_to_tensor(
    images: np.ndarray | torch.Tensor, device: torch.device | str | None = None
) -> torch.Tensor:
    """uint8 images (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1] on `device` (converted after the move,
    so only uint8 bytes travel)."""
    if images.dtype not in (np.uint8, torch.uint8):
        raise TypeError(f"images must be uint8, got {images.dtype}")
    if images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"images must be (..., H, W, 3) RGB, got shape {tuple(images.shape)}")
    tensor = torch.as_tensor(images).to(device)
    return tensor.movedim(-1, -3).float().div_(255.0)  # (..., 3, H, W)


def proprio_to_array(obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """float32 (..., PROPRIO_SIZE): an observation's PROPRIO_SIZES entries, concatenated in table order."""
    parts = []
    for key, size in PROPRIO_SIZES.items():
        if key not in obs:
            raise KeyError(f"observation lacks {key!r} (needed for proprioception); has {sorted(obs)}")
        value = np.asarray(obs[key], np.float32)
        if value.shape[-1:] != (size,):
            raise ValueError(f"observation {key!r} has shape {value.shape}, expected (..., {size})")
        parts.append(value)
    return np.concatenate(parts, axis=-1)


def stack_observations(observations: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A list of per-env observation dicts -> one dict of arrays with a leading env axis."""
    return {key: np.stack([o[key] for o in observations]) for key in observations[0]}


def observation_to_tensors(
    obs: Mapping[str, np.ndarray],
    cam_view: Sequence[str],
    device: torch.device | str | None = None,
    using_proprioception: bool = False,
    image_size: tuple[int, int] | None = None,
    crop_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Observation dict whose arrays share leading dims (...) -> (images (..., V, 3, H, W) float32 in [0, 1]
    with the cameras in `cam_view` order, proprio (..., PROPRIO_SIZE) float32 or None). With `image_size`
    (H, W), frames of another size are resized to it first (`resize_images`); with `crop_size`, each frame is
    then centre-cropped and resized back (`center_crop`)."""
    missing = [c for c in cam_view if c not in obs]
    if missing:
        raise KeyError(f"observation lacks camera(s) {missing}; has {sorted(obs)}")
    frames = [np.asarray(obs[c]) for c in cam_view]
    if image_size is not None:
        frames = [resize_images(f, image_size) for f in frames]
    if crop_size is not None:
        frames = [center_crop(f, crop_size) for f in frames]
    images = images_to_tensor(np.stack(frames, axis=-4), device)
    proprio = None
    if using_proprioception:
        proprio = torch.as_tensor(proprio_to_array(obs)).to(device)
    return images, proprio
