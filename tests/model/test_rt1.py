"""RT1: the paper's size, shapes and loss, padding, causality, camera tokens, proprioception, rebuild."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from envs.spaces import ACTION_SIZE, PROPRIO_SIZES
from rt1_sim.model import RT1, build_model, model_config
from rt1_sim.model.presets import PRESETS
from rt1_sim.preprocess import PROPRIO_SIZE

B, T = 2, 6


def inputs(seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """images (B, T, 2, 3, H, W), instruction (B, 512), target tokens (B, T, ACTION_SIZE)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(B, T, 2, 3, size, size, generator=g)
    return images, torch.randn(B, 512, generator=g), torch.randint(0, 2, (B, T, ACTION_SIZE), generator=g)


def test_paper_model_with_one_camera_has_rt1s_parameter_count():
    model = RT1(PRESETS["paper"], cam_view=("front",), time_sequence_length=6)
    params = sum(p.numel() for p in model.parameters())
    assert abs(params / 35.19e6 - 1) < 0.01, params


def test_forward_shapes_and_loss(tiny_model):
    model = tiny_model()
    images, instruction, targets = inputs()
    with torch.no_grad():
        logits, loss = model(images, instruction, target_tokens=targets)
        no_targets = model(images, instruction)
    assert logits.shape == (B, T, ACTION_SIZE, 256)
    assert no_targets[1] is None
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1)))


def test_padded_steps_are_masked_out_and_left_out_of_the_loss(tiny_model):
    model = tiny_model(using_proprioception=True)
    images, instruction, targets = inputs()
    proprio = torch.randn(B, T, PROPRIO_SIZE)
    valid = torch.ones(B, T, dtype=torch.bool)
    valid[0, :4] = False  # sample 0: an episode's third step, right-aligned
    with torch.no_grad():
        logits, loss = model(images, instruction, valid, proprio, targets)
        other_images, other_proprio, other_targets = images.clone(), proprio.clone(), targets.clone()
        other_images[0, :4], other_proprio[0, :4], other_targets[0, :4] = 0.5, 9.0, 3
        logits2, loss2 = model(other_images, instruction, valid, other_proprio, other_targets)
    assert not logits.isnan().any()
    assert torch.equal(logits[valid], logits2[valid])  # padding content never reaches a valid token
    assert loss == loss2
    torch.testing.assert_close(
        loss, F.cross_entropy(logits[valid].reshape(-1, 256), targets[valid].reshape(-1))
    )


def test_a_future_frame_never_changes_earlier_logits(tiny_model):
    model = tiny_model()
    images, instruction, _ = inputs()
    changed = images.clone()
    changed[:, 3] = torch.rand_like(changed[:, 3])
    with torch.no_grad():
        before, _ = model(images, instruction)
        after, _ = model(changed, instruction)
    torch.testing.assert_close(after[:, :3], before[:, :3], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, 3:], before[:, 3:], atol=1e-3)


def test_each_camera_keeps_its_own_tokens(tiny_model):
    model = tiny_model()
    assert model.tokens_per_frame == 2 * model.config.tokens_per_image
    images, instruction, _ = inputs()
    with torch.no_grad():
        logits, _ = model(images, instruction)
        swapped, _ = model(images.flip(2), instruction)  # front <-> wrist: a sum of views could not tell
    assert not torch.allclose(logits, swapped, atol=1e-3)


def test_proprioception_enters_as_extra_tokens(tiny_model):
    model = tiny_model(using_proprioception=True)
    assert model.context_tokens == model.tokens_per_frame + len(PROPRIO_SIZES)
    images, instruction, _ = inputs()
    proprio = torch.randn(B, T, PROPRIO_SIZE)
    with torch.no_grad():
        a, _ = model(images, instruction, proprio=proprio)
        b, _ = model(images, instruction, proprio=proprio + 1.0)
    assert not torch.allclose(a, b, atol=1e-3)
    with pytest.raises(ValueError, match="proprio"):
        model(images, instruction)


def test_the_instruction_conditions_the_actions(tiny_model):
    model = tiny_model()
    images, instruction, _ = inputs()
    with torch.no_grad():
        assert not torch.allclose(model(images, instruction)[0], model(images, -instruction)[0], atol=1e-3)


def test_without_token_learner_every_feature_cell_is_a_token(tiny_model, tiny_config):
    config = dataclasses.replace(tiny_config, use_token_learner=False)
    model = tiny_model(config)
    h, w = config.feature_map_size
    assert model.tokens_per_frame == 2 * h * w
    images, instruction, _ = inputs()
    with torch.no_grad():
        assert model(images, instruction)[0].shape == (B, T, ACTION_SIZE, 256)


def test_one_training_step_reaches_every_part(tiny_model):
    model = tiny_model(using_proprioception=True).train()
    images, instruction, targets = inputs()
    _, loss = model(images, instruction, proprio=torch.randn(B, T, PROPRIO_SIZE), target_tokens=targets)
    loss.backward()
    for name in (
        "image_encoder.films.0.gamma.weight",
        "image_encoder.features.0.0.weight",
        "token_learner.mlp.0.weight",
        "proprio_tokenizer.embed.0.weight",
        "transformer.position.weight",
        "transformer.blocks.0.attention.query.weight",
        "transformer.head.weight",
    ):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_model_config_is_plain_data_that_rebuilds_the_model(tiny_model):
    model = tiny_model(cam_view=("wrist",), time_sequence_length=3)
    config = model_config(model, default_instruction="pick up the red cube")
    rebuilt = build_model(json.loads(json.dumps(config)))
    rebuilt.load_state_dict(model.state_dict())
    rebuilt.eval()
    images = torch.rand(1, 3, 1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            rebuilt(images, torch.zeros(1, 512))[0], model(images, torch.zeros(1, 512))[0]
        )
    assert (rebuilt.cam_view, rebuilt.time_sequence_length) == (("wrist",), 3)


def test_wrong_image_size_or_window_is_explained(tiny_model):
    model = tiny_model()
    with pytest.raises(ValueError, match="image size"):
        model.encode_frames(torch.rand(1, 2, 3, 64, 64), torch.zeros(1, 512))
    with pytest.raises(ValueError, match="timesteps"):
        model.forward_tokens(torch.zeros(1, 4, model.tokens_per_frame, 32))
