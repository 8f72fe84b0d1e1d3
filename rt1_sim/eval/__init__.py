"""Closed-loop evaluation: any Policy on a suite of fixed-seed scenes; success rates with Wilson intervals.

A suite (`eval_configs/*.json`, an `EvalConfig`) fixes the env id and options, the seeds (episode k uses seed
`seed_start + k`, so two policies meet identical scenes) and the episode limit. One module per concept:

- `harness`        `evaluate()`: the worker pool per process, torchrun sharding and gathering, the run folder
- `worker`         one env + one policy per process; one episode -> its row (+ video, + recording)
- `policy_choice`  which policy ("auto", "scripted", "random", a checkpoint) and the policy of each episode
- `results`        results.json / episodes.csv, the report and its summary line, versions
- `stats`          Wilson interval, rate blocks, success per variation
- `video`          the front | wrist mp4 of an episode
- `cli`            `rt1-sim eval`

torch is imported only for RT-1 checkpoints (or under torchrun). Every file is written atomically.
"""

from __future__ import annotations

from rt1_sim.lazy import lazy_names
from rt1_sim.run_layout import EPISODES_FILE, RESULTS_FILE

# Imported on first use, so that `rt1_sim.eval.stats` (what `compare` reads a finished run with) comes without
# the simulator that `harness` and `results` import.
_LAZY = {
    "evaluate": "rt1_sim.eval.harness",
    "PolicyChoice": "rt1_sim.eval.policy_choice",
    "resolve_policy": "rt1_sim.eval.policy_choice",
    "EvalReport": "rt1_sim.eval.results",
    "episode_columns": "rt1_sim.eval.results",
}

__all__ = ["EPISODES_FILE", "RESULTS_FILE", *_LAZY]
__getattr__ = lazy_names(__name__, _LAZY)
