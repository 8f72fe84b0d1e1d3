"""Tiny RT-1 models for the model tests: the `micro` preset at 32x32, with BatchNorm statistics from random
frames and small random FiLM weights, so that images and instructions really change the logits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from envs.spaces import CAMERA_NAMES
from rt1_sim.model.film_efficientnet import FiLM
from rt1_sim.model.presets import NetworkConfig, get_preset
from rt1_sim.model.rt1 import RT1

TINY = get_preset("micro", image_height=32, image_width=32, crop_size=32)


def make_tiny_model(
    config: NetworkConfig = TINY,
    cam_view: tuple[str, ...] = CAMERA_NAMES,
    time_sequence_length: int = 6,
    using_proprioception: bool = False,
    seed: int = 0,
) -> RT1:
    """An eval-mode RT1 whose untrained weights give non-degenerate outputs."""
    torch.manual_seed(seed)
    model = RT1(config, cam_view, time_sequence_length, using_proprioception)
    with torch.no_grad():
        for film in model.modules():
            if isinstance(film, FiLM):
                for p in film.parameters():
                    p.normal_(0.0, 0.5)
        images = torch.rand(8 * len(cam_view), 3, config.image_height, config.image_width)
        model.image_encoder.calibrate_batchnorm(
            images, torch.randn(images.shape[0], config.language_embedding_size)
        )
    return model.eval()


@pytest.fixture
def tiny_config() -> NetworkConfig:
    """The `micro` preset at 32x32 images."""
    return TINY


@pytest.fixture
def tiny_model() -> Callable[..., RT1]:
    """Factory of tiny models (see `make_tiny_model`)."""
    return make_tiny_model
