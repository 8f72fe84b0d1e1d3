"""The paper's attention mask, the logit read positions, and query pruning in the last block."""

from __future__ import annotations

import torch

from rt1_sim.model.transformer import Transformer, action_read_positions, rt1_attention_mask

T, C, A = 3, 4, 2  # timesteps, context tokens and action tokens per step
STEP = C + A


def is_action(i: int) -> bool:
    return i % STEP >= C


def test_mask_is_causal_and_keeps_action_tokens_apart():
    mask = rt1_attention_mask(T, C, A)
    assert mask.shape == (T * STEP, T * STEP) and mask.dtype == torch.bool
    for i in range(T * STEP):
        for j in range(T * STEP):
            expected = j <= i and not (is_action(i) and is_action(j))
            assert bool(mask[i, j]) == expected, (i, j)
    # Context tokens see earlier action tokens; every row attends to something.
    assert mask[STEP, C] and mask.any(dim=1).all()


def test_read_positions_are_just_before_each_action_token():
    positions = action_read_positions(T, C, A)
    expected = [t * STEP + C - 1 + k for t in range(T) for k in range(A)]
    assert positions.tolist() == expected


def test_pruned_last_block_equals_the_full_computation():
    torch.manual_seed(0)
    net = Transformer(
        8, 16, num_layers=2, num_heads=2, head_size=4, vocab_size=11, max_length=T * STEP, dropout=0.0
    ).eval()
    tokens = torch.randn(2, T * STEP, 8)
    mask = rt1_attention_mask(T, C, A)[None]
    everything = torch.arange(T * STEP)
    positions = action_read_positions(T, C, A)
    with torch.no_grad():
        full = net(tokens, mask, everything)
        pruned = net(tokens, mask, positions)
    torch.testing.assert_close(pruned, full[:, positions])
