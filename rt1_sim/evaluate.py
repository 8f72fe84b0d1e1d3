"""Compatibility names for code written against the former single-module `rt1_sim.evaluate`.

Evaluation lives in the `rt1_sim.eval` package now; import from there.
"""

from rt1_sim.config import DEFAULT_ENV_ID
from rt1_sim.eval import EvalReport, PolicyChoice, evaluate, resolve_policy
from rt1_sim.resources import bundled_checkpoint, default_eval_suite

BUNDLED_CHECKPOINT = bundled_checkpoint(DEFAULT_ENV_ID)
DEFAULT_SUITE = default_eval_suite()

__all__ = ["BUNDLED_CHECKPOINT", "DEFAULT_SUITE", "EvalReport", "PolicyChoice", "evaluate", "resolve_policy"]
