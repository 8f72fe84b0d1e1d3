"""NetworkConfig: IO's keys are valid input, unknown keys and bad values fail clearly; the presets."""

from __future__ import annotations

import json

import pytest

from rt1_sim.model.presets import PRESETS, NetworkConfig, get_preset

# The `network_configs` section of IO's train_config.json.
IO_NETWORK_CONFIGS = json.loads("""{
    "vocab_size": 256, "token_embedding_size_per_image": 512, "language_embedding_size": 512, "num_layers": 8,
    "layer_size": 128, "num_heads": 8, "feed_forward_size": 512, "dropout_rate": 0.1, "crop_size": 236,
    "use_token_learner": true}""")


def test_io_network_configs_are_valid_input():
    config = NetworkConfig.from_dict(IO_NETWORK_CONFIGS, source="train_config.json")
    assert config.crop_size == 236
    assert config.to_dict() | {"crop_size": PRESETS["paper"].crop_size} == PRESETS["paper"].to_dict()


def test_unknown_key_names_the_key_and_the_source():
    with pytest.raises(ValueError, match=r"train_config.json: unknown key 'num_layer'"):
        NetworkConfig.from_dict({"num_layer": 4}, source="train_config.json")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_layers": 0}, "num_layers"),
        ({"num_heads": 2.5}, "'num_heads' must be int"),
        ({"use_token_learner": "yes"}, "'use_token_learner' must be bool"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"crop_size": 400}, "crop_size"),
        ({"efficientnet_stages": 8}, "efficientnet_stages"),
        ({"image_height": 16, "image_width": 16, "crop_size": 16}, "too small"),
    ],
)
def test_bad_values_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_preset("paper", **overrides)


def test_from_dict_round_trips_and_accepts_integer_floats():
    for config in PRESETS.values():
        assert NetworkConfig.from_dict(config.to_dict()) == config
    assert NetworkConfig.from_dict({"dropout_rate": 0}).dropout_rate == 0.0


def test_paper_preset_is_rt1():
    paper = PRESETS["paper"]
    assert (paper.image_height, paper.image_width) == (300, 300)
    assert paper.feature_map_size == (9, 9)  # 81 tokens before the TokenLearner
    assert get_preset("paper", use_token_learner=False).tokens_per_image == 81
    assert paper.tokens_per_image == 8
    assert (paper.num_layers, paper.num_heads, paper.layer_size, paper.feed_forward_size) == (8, 8, 128, 512)


def test_cpu_presets_consume_the_env_default_images():
    for name in ("cpu", "micro"):
        assert (PRESETS[name].image_height, PRESETS[name].image_width) == (96, 96)


def test_unknown_preset_is_named():
    with pytest.raises(ValueError, match="'huge'"):
        get_preset("huge")
