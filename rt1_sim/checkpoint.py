"""Checkpoints: one file, written atomically, loaded with `weights_only=True`, failing with one clear error.

Convention for the dict (plain Python types and tensors only, so `weights_only=True` loads it):
- "model": state_dict of the uncompiled RT1 module
- "model_config": plain dict that rebuilds the model and its policy (`rt1_sim.model.rt1.model_config`)
- "action_table": the action table rows the model was trained with (`action_tokenizer.action_table_rows`)
- "action_tokenizer": the model's `ActionTokenizer.to_dict()` (older checkpoints lack it:
  `checkpoint_tokenizer` then builds it from the network's vocab_size, which is what they were trained with)
- training adds "optimizer", "scheduler", "step", "epoch", "rng", "config"; with PreciseBN
  (`precise_bn_batches`) "model" holds the recomputed BatchNorm statistics and "batchnorm_ema" training's
  moving averages, which only a resumed run loads; "data_fingerprint" ([windows, action CRC-32] per training
  folder) lets a resumed run say when its data differs.
`rt1_sim.model.rt1.checkpoint_state(model, ...)` builds the first three.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rt1_sim.errors import CheckpointError
from rt1_sim.files import atomic_write
from rt1_sim.model.action_tokenizer import ActionTokenizer, action_table_rows

MODEL_KEYS: tuple[str, ...] = ("model", "model_config", "action_table")

__all__ = [
    "MODEL_KEYS",
    "CheckpointError",
    "check_action_table",
    "checkpoint_tokenizer",
    "load_checkpoint",
    "save_checkpoint",
]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically (`rt1_sim.files`): a crash leaves the old file or the new one, never
    a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(
    path: str | Path, required: Sequence[str] = MODEL_KEYS, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint dict with `torch.load(weights_only=True)`; missing file, truncated or foreign file,
    or a missing `required` key all raise CheckpointError naming the file and the reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or foreign file; all mean the same here
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path}: not a readable checkpoint ({type(e).__name__}: {reason})"
        ) from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: holds a {type(state).__name__}, expected a dict")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing key(s) {missing}; it has {sorted(state)}")
    return state


def check_action_table(state: dict[str, Any], path: str | Path) -> None:
    """The checkpoint's model must have been trained with today's action table (envs/spaces.py)."""
    if state["action_table"] != action_table_rows():
        raise CheckpointError(
            f"checkpoint {path}: trained with action table {state['action_table']}, "
            f"but envs/spaces.py now has {action_table_rows()}"
        )


def checkpoint_tokenizer(state: dict[str, Any], path: str | Path) -> ActionTokenizer:
    """The checkpoint's ActionTokenizer: the stored one, or for older files (no "action_tokenizer") the one
    its network config implies (its vocab_size and today's action table, checked by `check_action_table`)."""
    check_action_table(state, path)
    try:
        if "action_tokenizer" in state:
            tokenizer = ActionTokenizer.from_dict(state["action_tokenizer"])
        else:
            tokenizer = ActionTokenizer(state["model_config"]["network"]["vocab_size"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"checkpoint {path}: unusable action tokenizer ({type(e).__name__}: {e})"
        ) from e
    if action_table_rows(tokenizer.table) != action_table_rows():
        raise CheckpointError(f"checkpoint {path}: its action tokenizer's table is not envs/spaces.py's")
    return tokenizer
