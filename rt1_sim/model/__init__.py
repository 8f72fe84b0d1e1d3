"""The RT-1 network: FiLM-EfficientNet image tokens, TokenLearner, causal transformer, action tokenizer.

`presets` (the network sizes) imports no torch; the network itself loads on first use of its names.
"""

from __future__ import annotations

from rt1_sim.lazy import lazy_names

_LAZY = dict.fromkeys(
    ("RT1", "action_loss", "build_model", "checkpoint_state", "model_config"), "rt1_sim.model.rt1"
)

__all__ = sorted(_LAZY)
__getattr__ = lazy_names(__name__, _LAZY)
