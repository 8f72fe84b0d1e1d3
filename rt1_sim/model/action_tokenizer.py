"""Actions <-> tokens: one token per action value, pure functions on numpy arrays and torch tensors alike.

Bounds come from the one action table (`envs.spaces.ACTION_TABLE`). A continuous value is clipped to its
bounds and rounded to the nearest of `levels` evenly spaced bin centres, `levels` being the vocabulary size
made odd (255 of the 256 tokens; token 255 is never produced): an odd count puts a bin centre exactly on the
midpoint, so 0 of a symmetric range maps to token 127 and decodes to exactly 0.0. (TF's RT-1 truncates into
256 bins instead, so 0 decodes to -0.0002 there.) A discrete dimension (`terminate_episode`) is token 0 or 1.
"""

from __future__ import annotations

import dataclasses
from typing import TypeVar

import numpy as np
import torch

from envs.spaces import ACTION_SIZE, ACTION_TABLE, ActionDim, action_to_dict, dict_to_action

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def continuous_levels(vocab_size: int) -> int:
    """Number of bins used by a continuous dimension: the largest odd count that fits the vocabulary."""
    return vocab_size if vocab_size % 2 == 1 else vocab_size - 1


def _per_value(
    table: tuple[ActionDim, ...], vocab_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat per-value (low, high, number of tokens, is_discrete), float64 / int64 / bool arrays."""
    low = np.concatenate([np.full(d.size, d.low) for d in table])
    high = np.concatenate([np.full(d.size, d.high) for d in table])
    counts = np.concatenate(
        [np.full(d.size, 2 if d.discrete else continuous_levels(vocab_size)) for d in table]
    )
    discrete = np.concatenate([np.full(d.size, d.discrete) for d in table])
    return low, high, counts.astype(np.int64), discrete


def token_counts(vocab_size: int = 256, table: tuple[ActionDim, ...] = ACTION_TABLE) -> np.ndarray:
    """Number of valid tokens of each flat action dimension, (ACTION_SIZE,) int64 (255 or 2 by default)."""
    return _per_value(table, vocab_size)[2]


def _backend(ref: Array):
    """(as_float64, constant, clip, where) for `ref`'s library, so one body serves numpy and torch."""
    if isinstance(ref, torch.Tensor):
        return (
            lambda a: a.double(),
            lambda v: torch.as_tensor(v, device=ref.device),
            lambda a, lo, hi: torch.minimum(torch.maximum(a, lo), hi),
            torch.where,
        )
    return (lambda a: np.asarray(a, np.float64), lambda v: v, np.clip, np.where)


def tokenize(action: Array, vocab_size: int = 256, table: tuple[ActionDim, ...] = ACTION_TABLE) -> Array:
    """Flat actions (..., ACTION_SIZE) -> int64 tokens (..., ACTION_SIZE), each in [0, token_counts)."""
    low, high, counts, discrete = _per_value(table, vocab_size)
    if action.shape[-1] != len(low):
        raise ValueError(f"action has {action.shape[-1]} values in its last axis, expected {len(low)}")
    as_f64, const, clip, where = _backend(action)
    x = as_f64(action)
    if bool((x != x).any()):
        raise ValueError("cannot tokenize an action containing NaN")
    lo, hi, n = const(low), const(high), const(counts)
    # Nearest bin centre: centres sit at low + k * (high - low) / (n - 1), k = 0..n-1 (round half to even).
    continuous = ((clip(x, lo, hi) - lo) / (hi - lo) * (n - 1)).round()
    tokens = where(const(discrete), as_f64(x > 0.5), continuous)
    return tokens.long() if isinstance(tokens, torch.Tensor) else tokens.astype(np.int64)


def detokenize(tokens: Array, vocab_size: int = 256, table: tuple[ActionDim, ...] = ACTION_TABLE) -> Array:
    """Tokens (..., ACTION_SIZE) -> float32 flat actions; out-of-range tokens are clipped into range."""
    low, high, counts, discrete = _per_value(table, vocab_size)
    if tokens.shape[-1] != len(low):
        raise ValueError(f"tokens have {tokens.shape[-1]} values in their last axis, expected {len(low)}")
    as_f64, const, clip, where = _backend(tokens)
    lo, hi, n = const(low), const(high), const(counts)
    t = clip(as_f64(tokens), const(np.zeros_like(low)), n - 1)
    values = where(const(discrete), t, lo + t * (hi - lo) / (n - 1))
    return values.float() if isinstance(values, torch.Tensor) else values.astype(np.float32)


def tokenize_dict(action: dict[str, np.ndarray], vocab_size: int = 256) -> np.ndarray:
    """Named action dict {name: (..., size)} -> int64 tokens (..., ACTION_SIZE) in table order."""
    return tokenize(dict_to_action(action), vocab_size)


def detokenize_dict(tokens: np.ndarray, vocab_size: int = 256) -> dict[str, np.ndarray]:
    """Tokens (..., ACTION_SIZE) -> named action dict {name: float32 (..., size)}."""
    return action_to_dict(detokenize(np.asarray(tokens), vocab_size))


def logits_to_tokens(logits: torch.Tensor, vocab_size: int | None = None) -> torch.Tensor:
    """Greedy tokens (..., ACTION_SIZE) from logits (..., ACTION_SIZE, vocab), each dimension choosing only
    among its valid tokens (token 255 of a continuous dimension or 7 of terminate is never picked)."""
    vocab = logits.shape[-1] if vocab_size is None else vocab_size
    if logits.shape[-2:] != (ACTION_SIZE, vocab):
        raise ValueError(f"logits have shape {tuple(logits.shape)}, expected (..., {ACTION_SIZE}, {vocab})")
    counts = torch.as_tensor(token_counts(vocab), device=logits.device)
    valid = torch.arange(vocab, device=logits.device) < counts[:, None]  # (ACTION_SIZE, vocab)
    return logits.masked_fill(~valid, float("-inf")).argmax(dim=-1)


def action_table_rows(table: tuple[ActionDim, ...] = ACTION_TABLE) -> list[dict[str, object]]:
    """The action table as plain rows (name, size, low, high, discrete) for checkpoints."""
    return [dataclasses.asdict(d) for d in table]
