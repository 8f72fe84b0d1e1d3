"""The RT-1 network: FiLM-EfficientNet image tokens, TokenLearner, causal transformer, action tokenizer."""

from rt1_sim.model.rt1 import RT1, action_loss, build_model, checkpoint_state, model_config

__all__ = ["RT1", "action_loss", "build_model", "checkpoint_state", "model_config"]
