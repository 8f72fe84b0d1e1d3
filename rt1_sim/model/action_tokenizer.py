"""Actions <-> tokens: one `ActionTokenizer` object (vocabulary size + action table) that every user shares.

Bounds come from the one action table (`envs.spaces.ACTION_TABLE`). A continuous value is clipped to its
bounds and rounded to the nearest of `levels` evenly spaced bin centres, `levels` being the vocabulary size
made odd (255 of the 256 tokens; token 255 is never produced): an odd count puts a bin centre exactly on the
midpoint, so 0 of a symmetric range maps to the centre token (127 of 256, 63 of 128) and decodes to exactly
0.0. (TF's RT-1 truncates into 256 bins instead, so 0 decodes to -0.0002 there.) A discrete dimension
(`terminate_episode`) is token 0 or 1.

The model holds its tokenizer (`RT1.tokenizer`, built from its NetworkConfig) and checkpoints store it, so the
dataset, the policy, validation and the benchmarks all decode with the vocabulary the network was built with:
there is no default vocabulary size to disagree with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from envs.spaces import ACTION_TABLE, ActionDim, action_to_dict, dict_to_action

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def continuous_levels(vocab_size: int) -> int:
    """Number of bins used by a continuous dimension: the largest odd count that fits the vocabulary."""
    return vocab_size if vocab_size % 2 == 1 else vocab_size - 1


def action_table_rows(table: tuple[ActionDim, ...] = ACTION_TABLE) -> list[dict[str, object]]:
    """The action table as plain rows (name, size, low, high, discrete) for checkpoints."""
    return [dataclasses.asdict(d) for d in table]


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


@dataclass(frozen=True)
class ActionTokenizer:
    """Flat actions (..., ACTION_SIZE) <-> int64 tokens (..., ACTION_SIZE), numpy arrays and torch tensors
    alike; `vocab_size` is the network's output vocabulary (`NetworkConfig.vocab_size`)."""

    vocab_size: int
    table: tuple[ActionDim, ...] = ACTION_TABLE

    def __post_init__(self) -> None:
        if isinstance(self.vocab_size, bool) or not isinstance(self.vocab_size, int) or self.vocab_size < 3:
            raise ValueError(f"vocab_size must be an integer >= 3, got {self.vocab_size!r}")
        object.__setattr__(self, "table", tuple(self.table))
        # Flat per-value (low, high, number of tokens, is_discrete), float64 / int64 / bool (ACTION_SIZE,).
        per_value = {
            "_low": [d.low for d in self.table],
            "_high": [d.high for d in self.table],
            "_counts": [2 if d.discrete else continuous_levels(self.vocab_size) for d in self.table],
            "_discrete": [d.discrete for d in self.table],
        }
        sizes = [d.size for d in self.table]
        for name, values in per_value.items():
            object.__setattr__(self, name, np.repeat(np.asarray(values), sizes))
        object.__setattr__(self, "_counts", self._counts.astype(np.int64))
        object.__setattr__(self, "_low", self._low.astype(np.float64))
        object.__setattr__(self, "_high", self._high.astype(np.float64))

    @property
    def action_size(self) -> int:
        return int(sum(d.size for d in self.table))

    @property
    def token_counts(self) -> np.ndarray:
        """Number of valid tokens of each flat action dimension, (ACTION_SIZE,) int64 (255 or 2 for 256)."""
        return self._counts.copy()

    def _check_last_axis(self, x: Array, what: str) -> None:
        if x.shape[-1] != self.action_size:
            raise ValueError(f"{what} has {x.shape[-1]} values in its last axis, expected {self.action_size}")

    def tokenize(self, action: Array) -> Array:
        """Flat actions (..., ACTION_SIZE) -> int64 tokens (..., ACTION_SIZE), each in [0, token_counts)."""
        self._check_last_axis(action, "action")
        as_f64, const, clip, where = _backend(action)
        x = as_f64(action)
        if bool((x != x).any()):
            raise ValueError("cannot tokenize an action containing NaN")
        lo, hi, n = const(self._low), const(self._high), const(self._counts)
        # Nearest bin centre: centres at low + k * (high - low) / (n - 1), k = 0..n-1 (round half to even).
        continuous = ((clip(x, lo, hi) - lo) / (hi - lo) * (n - 1)).round()
        tokens = where(const(self._discrete), as_f64(x > 0.5), continuous)
        return tokens.long() if isinstance(tokens, torch.Tensor) else tokens.astype(np.int64)

    def detokenize(self, tokens: Array) -> Array:
        """Tokens (..., ACTION_SIZE) -> float32 flat actions; out-of-range tokens are clipped into range."""
        self._check_last_axis(tokens, "tokens")
        as_f64, const, clip, where = _backend(tokens)
        lo, hi, n = const(self._low), const(self._high), const(self._counts)
        t = clip(as_f64(tokens), const(np.zeros_like(self._low)), n - 1)
        values = where(const(self._discrete), t, lo + t * (hi - lo) / (n - 1))
        return values.float() if isinstance(values, torch.Tensor) else values.astype(np.float32)

    def tokenize_dict(self, action: Mapping[str, np.ndarray]) -> np.ndarray:
        """Named action dict {name: (..., size)} -> int64 tokens (..., ACTION_SIZE) in table order."""
        return self.tokenize(dict_to_action(dict(action)))

    def detokenize_dict(self, tokens: np.ndarray) -> dict[str, np.ndarray]:
        """Tokens (..., ACTION_SIZE) -> named action dict {name: float32 (..., size)}."""
        return action_to_dict(self.detokenize(np.asarray(tokens)))

    def logits_to_tokens(self, logits: torch.Tensor) -> torch.Tensor:
        """Greedy tokens (..., ACTION_SIZE) from logits (..., ACTION_SIZE, vocab_size), each dimension
        choosing only among its valid tokens (token 255 of a continuous dimension or 7 of terminate is
        never picked)."""
        if tuple(logits.shape[-2:]) != (self.action_size, self.vocab_size):
            raise ValueError(
                f"logits have shape {tuple(logits.shape)}, "
                f"expected (..., {self.action_size}, {self.vocab_size})"
            )
        counts = torch.as_tensor(self._counts, device=logits.device)
        valid = torch.arange(self.vocab_size, device=logits.device) < counts[:, None]  # (ACTION_SIZE, vocab)
        return logits.masked_fill(~valid, float("-inf")).argmax(dim=-1)

    def logits_to_actions(self, logits: torch.Tensor) -> torch.Tensor:
        """Greedy float32 actions (..., ACTION_SIZE) from logits (..., ACTION_SIZE, vocab_size)."""
        return self.detokenize(self.logits_to_tokens(logits))

    def to_dict(self) -> dict[str, Any]:
        """Plain state for checkpoints (`torch.load(weights_only=True)`-safe): vocab size and table rows."""
        return {"vocab_size": self.vocab_size, "table": action_table_rows(self.table)}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> ActionTokenizer:
        """Inverse of `to_dict`; raises ValueError (KeyError, TypeError) on a malformed dict."""
        table = tuple(ActionDim(**row) for row in state["table"])
        return cls(int(state["vocab_size"]), table)
