"""Action tokenizer: round trips, the centre bin, bounds from the action table, numpy and torch alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.spaces import ACTION_HIGH, ACTION_KEYS, ACTION_LOW, ACTION_SIZE, ACTION_SLICES, ACTION_TABLE
from rt1_sim.model.action_tokenizer import ActionTokenizer, action_table_rows, continuous_levels

TOKENIZER = ActionTokenizer(vocab_size=256, table=ACTION_TABLE)
tokenize, detokenize = TOKENIZER.tokenize, TOKENIZER.detokenize
tokenize_dict, detokenize_dict = TOKENIZER.tokenize_dict, TOKENIZER.detokenize_dict
logits_to_tokens = TOKENIZER.logits_to_tokens


def token_counts() -> np.ndarray:
    return TOKENIZER.token_counts


CONTINUOUS = np.concatenate([np.full(d.size, not d.discrete) for d in ACTION_TABLE])
TERMINATE = ACTION_SLICES["terminate_episode"]


def random_actions(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    actions = rng.uniform(ACTION_LOW, ACTION_HIGH, (n, ACTION_SIZE)).astype(np.float32)
    actions[:, TERMINATE] = rng.integers(0, 2, (n, 1))
    return actions


def test_round_trip_error_is_at_most_half_a_bin():
    actions = random_actions(1000)
    tokens = tokenize(actions)
    assert tokens.dtype == np.int64 and tokens.shape == actions.shape
    assert (tokens >= 0).all() and (tokens < token_counts()).all()
    decoded = detokenize(tokens)
    assert decoded.dtype == np.float32
    half_bin = (ACTION_HIGH - ACTION_LOW) / (continuous_levels(256) - 1) / 2
    err = np.abs(decoded - actions)
    assert (err[:, CONTINUOUS] <= half_bin[CONTINUOUS] + 1e-6).all()
    assert (decoded[:, TERMINATE] == actions[:, TERMINATE]).all()


def test_every_token_survives_detokenize_then_tokenize():
    counts = token_counts()
    tokens = np.stack([np.arange(256) % c for c in counts], axis=-1)  # (256, ACTION_SIZE), all valid tokens
    assert (tokenize(detokenize(tokens)) == tokens).all()


def test_zero_maps_to_the_centre_bin_and_decodes_to_exactly_zero():
    tokens = tokenize(np.zeros(ACTION_SIZE, np.float32))
    assert (tokens[CONTINUOUS] == 127).all()
    assert tokens[TERMINATE][0] == 0
    assert (detokenize(tokens) == 0.0).all()


def test_bounds_come_from_the_action_table_and_outside_values_are_clipped():
    assert (tokenize(ACTION_LOW)[CONTINUOUS] == 0).all()
    assert (tokenize(ACTION_HIGH)[CONTINUOUS] == 254).all()
    far = np.where(CONTINUOUS, ACTION_HIGH * 10, 1.0).astype(np.float32)
    np.testing.assert_array_equal(detokenize(tokenize(far))[CONTINUOUS], ACTION_HIGH[CONTINUOUS])
    assert (detokenize(np.full(ACTION_SIZE, 999)) == ACTION_HIGH).all()  # out-of-range tokens clip too
    assert action_table_rows()[0] == {
        "name": ACTION_TABLE[0].name,
        "size": ACTION_TABLE[0].size,
        "low": ACTION_TABLE[0].low,
        "high": ACTION_TABLE[0].high,
        "discrete": False,
    }


def test_terminate_is_a_discrete_token():
    actions = np.zeros((3, ACTION_SIZE), np.float32)
    actions[:, TERMINATE] = [[0.0], [0.7], [1.0]]
    assert tokenize(actions)[:, TERMINATE].ravel().tolist() == [0, 1, 1]
    assert token_counts()[TERMINATE].tolist() == [2]


def test_numpy_and_torch_agree():
    actions = random_actions(200, seed=1)
    tokens = tokenize(actions)
    torch_tokens = tokenize(torch.from_numpy(actions))
    assert torch_tokens.dtype == torch.int64
    np.testing.assert_array_equal(torch_tokens.numpy(), tokens)
    np.testing.assert_array_equal(detokenize(torch_tokens).numpy(), detokenize(tokens))


def test_dict_round_trip_uses_the_table_names():
    action = random_actions(1)[0]
    decoded = detokenize_dict(tokenize_dict({k: action[ACTION_SLICES[k]] for k in ACTION_KEYS}))
    assert list(decoded) == list(ACTION_KEYS)
    np.testing.assert_allclose(np.concatenate(list(decoded.values())), action, atol=0.005)


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        tokenize(np.full(ACTION_SIZE, np.nan, np.float32))
    with pytest.raises(ValueError, match="expected 8"):
        tokenize(np.zeros(3, np.float32))


def test_greedy_decoding_never_picks_an_invalid_token():
    logits = torch.zeros(2, ACTION_SIZE, 256)
    logits[..., 255] = 100.0  # never valid (continuous dims use 255 levels, terminate 2)
    logits[:, -1, 5] = 50.0  # not a terminate token
    logits[1, 0, 3] = 10.0
    tokens = logits_to_tokens(logits)
    assert (tokens < torch.as_tensor(token_counts())).all()
    assert tokens[1, 0] == 3


@pytest.mark.parametrize("vocab_size", [3, 128, 129, 256])
def test_zero_decodes_to_zero_at_every_vocabulary_size(vocab_size):
    tokenizer = ActionTokenizer(vocab_size)
    tokens = tokenizer.tokenize(np.zeros(ACTION_SIZE, np.float32))
    assert (tokens[CONTINUOUS] == (continuous_levels(vocab_size) - 1) // 2).all()
    assert (tokenizer.detokenize(tokens) == 0.0).all()
    assert (tokenizer.detokenize(torch.from_numpy(tokens)) == 0.0).all()


def test_tokenizer_state_round_trips_and_rejects_a_bad_vocabulary():
    assert ActionTokenizer.from_dict(TOKENIZER.to_dict()) == TOKENIZER
    assert TOKENIZER.to_dict()["table"] == action_table_rows()
    with pytest.raises(ValueError, match="vocab_size"):
        ActionTokenizer(2)
    with pytest.raises(ValueError, match="expected"):
        ActionTokenizer(128).logits_to_tokens(torch.zeros(ACTION_SIZE, 256))
