"""The rt1-sim simulation: numpy + pybullet + gymnasium only (never torch).

`import envs` registers the envs with gymnasium (their entry points are strings) and loads nothing else: no
pybullet, no redirected file descriptors. The env classes, the experts and the scene tables load on first use
(`envs.PandaTabletopEnv`, `envs.make_expert`, `envs.FAMILIES`, ...), the simulator when a module that builds
scenes is imported. The shared contract (action table, camera and column names) is `envs.spaces`: numpy only.
"""

import importlib
from typing import Any

import gymnasium

MAX_EPISODE_STEPS = 80  # 8 s at 10 Hz; the scripted expert needs about 40 control steps
# 20 s at 10 Hz. The experts need 15 (pick, drawer) to 35 (move_near) control steps on average; the longest
# successful one of 3600 measured expert episodes (600 per family) took 77. 200 leaves a policy room too.
TABLETOP_MAX_EPISODE_STEPS = 200

gymnasium.register(
    id="PandaPick-v0", entry_point="envs.panda_pick:PandaPickEnv", max_episode_steps=MAX_EPISODE_STEPS
)
gymnasium.register(
    id="PandaTabletop-v0",
    entry_point="envs.tabletop:PandaTabletopEnv",
    max_episode_steps=TABLETOP_MAX_EPISODE_STEPS,
)

# name -> the module that defines it, imported on first access (PEP 562)
_LAZY = {
    "make_expert": "envs.experts",
    "PandaPickEnv": "envs.panda_pick",
    "PandaTabletopEnv": "envs.tabletop",
    **dict.fromkeys(
        ("COLORS", "FAMILIES", "HELDOUT_COLORS", "HELDOUT_COMBOS", "MIX", "SHAPES", "SPLITS", "TRAIN_COLORS"),
        "envs.objects",
    ),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'envs' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = ["MAX_EPISODE_STEPS", "TABLETOP_MAX_EPISODE_STEPS", *sorted(_LAZY)]
