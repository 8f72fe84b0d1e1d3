"""FiLM-EfficientNet: torchvision layout and sizes, TF-style downsampling, zero-initialised FiLM, loading."""

from __future__ import annotations

import pytest
import torch

from rt1_sim.model.film_efficientnet import FiLM, FiLMEfficientNet, stage_specs
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
