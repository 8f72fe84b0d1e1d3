"""Checkpoints: one file, written atomically, loaded with `weights_only=True`, failing with one clear error.

Convention for the dict (plain Python types and tensors only, so `weights_only=True` loads it):
- "model": state_dict of the uncompiled RT1 module
- "model_config": plain dict that rebuilds the model and its policy (`rt1_sim.model.rt1.model_config`)
- "action_table": the action table rows the model was trained with (`action_tokenizer.action_table_rows`)
- training adds "optimizer", "scheduler", "step", "epoch", "rng", "config".
`rt1_sim.model.rt1.checkpoint_state(model, ...)` builds the first three.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

MODEL_KEYS: tuple[str, ...] = ("model", "model_config", "action_table")


class CheckpointError(ValueError):
    """A checkpoint could not be used; the message names the file and the reason."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` atomically: a temp file in the same directory, fsync, then os.replace, so a
    crash leaves either the old file or the new one, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Persist the rename itself (the directory entry); not possible on every platform.
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


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
