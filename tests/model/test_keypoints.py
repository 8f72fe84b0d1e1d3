"""Keypoint maps (rt1_sim.model.keypoints): labels, loss, the readout's learning, and RT-1 with them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rt1_sim.model.keypoints import (
    KeypointReadout,
    cell_centres,
    expected_pixels,
    keypoint_loss,
    keypoint_targets,
)
from rt1_sim.model.rt1 import RT1
from tests.model.conftest import TINY, make_tiny_model

SIZE, GRID = (96, 96), (6, 6)


def test_soft_labels_are_distributions_whose_expectation_is_the_point() -> None:
    """Inside the span of the cell centres a label's expected position is the labelled pixel itself; outside
    it the label sits on the border cells; every label sums to one."""
    points = torch.tensor([[8.0, 8.0], [50.3, 20.7], [87.9, 61.0], [40.0, 88.0]])  # (row, column) pixels
    labels = keypoint_targets(points, SIZE, GRID)
    assert labels.shape == (4, 36) and torch.allclose(labels.sum(-1), torch.ones(4))
    expected = (labels @ cell_centres(GRID) + 1.0) / 2.0 * torch.tensor(SIZE)
    assert torch.allclose(expected[:3], points[:3], atol=1e-4)
    assert expected[3, 1] == pytest.approx(88.0) and labels[3].argmax() % 6 == 5  # clamped to the last column
    # a label peaked on one cell maps back to (close to) that cell's centre
    peaked = torch.log(keypoint_targets(torch.tensor([[56.0, 24.0]]), SIZE, GRID) + 1e-9)
    assert torch.allclose(expected_pixels(peaked, SIZE, GRID), torch.tensor([[56.0, 24.0]]), atol=1e-3)


def test_loss_uses_only_labelled_entries_and_is_zero_without_any() -> None:
    logits = torch.randn(2, 3, 36, requires_grad=True)
    pixels = torch.rand(2, 3, 2) * 96
    mask = torch.tensor([[True, False, True], [False, False, True]])
    loss = keypoint_loss(logits, pixels, mask, SIZE, GRID)
    loss.backward()
    assert logits.grad[0, 1].abs().sum() == 0 and logits.grad[0, 0].abs().sum() > 0
    nothing = keypoint_loss(logits, pixels, torch.zeros_like(mask), SIZE, GRID)
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_readout_learns_to_find_the_cell_its_instruction_describes() -> None:
    """Cells hold random features; the instruction is the feature of one cell. Trained with the keypoint
    loss, the readout's map moves onto that cell on new scenes: its expected pixel lands within a cell."""
    torch.manual_seed(0)
    width = 16
    readout = KeypointReadout(width, width, 1, GRID)
    optimizer = torch.optim.Adam(readout.parameters(), lr=3e-3)
    centres = (cell_centres(GRID) + 1.0) / 2.0 * torch.tensor(SIZE)  # (36, 2) pixels

    def scenes(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = torch.randn(n, 36, width)
        cells = torch.randint(0, 36, (n,))
        return tokens, tokens[torch.arange(n), cells], centres[cells][:, None]

    for _ in range(300):
        tokens, context, pixels = scenes(64)
        _, logits = readout(tokens, context)
        loss = keypoint_loss(logits, pixels, torch.ones(64, 1, dtype=torch.bool), SIZE, GRID)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    tokens, context, pixels = scenes(256)
    with torch.no_grad():
        keypoint_tokens, logits = readout(tokens, context)
    error = (expected_pixels(logits, SIZE, GRID) - pixels).norm(dim=-1)
    assert keypoint_tokens.shape == (256, 2, width)  # the map's token and the geometry token
    assert error.median() < 8.0, error.median()  # half a cell (cells are 16 pixels)


def test_rt1_with_keypoint_maps_adds_a_token_per_map_and_returns_its_maps() -> None:
    config = dataclasses.replace(TINY, keypoint_maps=3)
    model = make_tiny_model(config)
    plain = make_tiny_model()
    assert model.tokens_per_frame == plain.tokens_per_frame + 2 * (3 + 1)  # two cameras, a geometry token
    h, w = config.feature_map_size
    images = torch.rand(2, 6, 2, 3, 32, 32)
    instruction = torch.randn(2, config.language_embedding_size)
    valid = torch.tensor([[False, False, True, True, True, True]] * 2)
    tokens, maps = model.encode_window(images, instruction, valid, return_maps=True)
    assert tokens.shape[:3] == (2, 6, model.tokens_per_frame) and maps.shape == (2, 6, 2, 3, h * w)
    assert maps[:, :2].abs().sum() == 0 and maps[:, 2:].abs().sum() > 0  # padding is not encoded
    assert torch.equal(tokens, model.encode_window(images, instruction, valid))
    other = model.encode_window(images, torch.randn_like(instruction), valid, return_maps=True)[1]
    assert not torch.allclose(other[:, 2:], maps[:, 2:])  # the maps depend on the instruction
    logits, _ = model(images, instruction, valid)
    assert logits.shape[:3] == (2, 6, model.action_tokens)


def test_a_network_without_keypoint_maps_is_built_as_before() -> None:
    """keypoint_maps 0 (every preset): no readout, and the same weights and the same next random number as
    the network had before keypoint maps existed (pinned from that version); asking for maps is a clear
    error."""
    torch.manual_seed(0)
    model = RT1(TINY)
    total = sum(float(p.double().sum()) for p in model.state_dict().values() if p.is_floating_point())
    assert model.keypoints is None and len(model.state_dict()) == 128
    assert total == pytest.approx(818.7917037517459, abs=1e-9)
    assert float(torch.rand(1)) == pytest.approx(0.9475657939910889, abs=0)
    with pytest.raises(ValueError, match="keypoint_maps"):
        model.encode_frames(torch.rand(1, 2, 3, 32, 32), torch.randn(1, 512), return_maps=True)
    with pytest.raises(ValueError, match="keypoint_maps"):
        dataclasses.replace(TINY, keypoint_maps=4)
