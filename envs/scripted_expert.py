"""Backwards-compatible name of PandaPick-v0's scripted expert (it lives with its task in
envs/tasks/pick_cube.py).

`envs.make_expert(env)` picks the right expert for any env and family; this alias serves existing imports.
"""

from envs.tasks.pick_cube import PickCubeExpert as ScriptedExpert
from envs.tasks.pick_cube import wrap_quarter_turn

__all__ = ["ScriptedExpert", "wrap_quarter_turn"]
