"""The RT-1 network: FiLM-EfficientNet image tokens, TokenLearner, causal transformer, action tokenizer.

`presets` (the network sizes) imports no torch; the network itself loads on first use of its names.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = dict.fromkeys(
    ("RT1", "action_loss", "build_model", "checkpoint_state", "model_config"), "rt1_sim.model.rt1"
)

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
