"""Closed-loop evaluation: any Policy on a suite of fixed-seed scenes; success rates with Wilson intervals.

A suite (`eval_configs/*.json`, an `EvalConfig`) fixes the env id and options, the seeds (episode k uses seed
`seed_start + k`, so two policies meet identical scenes) and the episode limit. One module per concept:

- `harness`   `evaluate()`: the worker pool per process, torchrun sharding and gathering, the run folder
- `worker`    one env + one policy per process; one episode -> its row (+ video, + recording)
- `policies`  which policy ("auto", "scripted", "random", a checkpoint) and the policy of each episode
- `results`   results.json / episodes.csv, the report and its summary line, versions
- `stats`     Wilson interval, rate blocks, success per variation
- `video`     the front | wrist mp4 of an episode
- `cli`       `rt1-sim eval`

torch is imported only for RT-1 checkpoints (or under torchrun). Every file is written atomically.
"""

from rt1_sim.eval.harness import evaluate
from rt1_sim.eval.policies import PolicyChoice, resolve_policy
from rt1_sim.eval.results import EPISODES_FILE, RESULTS_FILE, EvalReport, episode_columns

__all__ = [
    "EPISODES_FILE",
    "RESULTS_FILE",
    "EvalReport",
    "PolicyChoice",
    "episode_columns",
    "evaluate",
    "resolve_policy",
]
