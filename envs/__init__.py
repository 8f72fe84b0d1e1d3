"""The rt1-sim simulation: numpy + pybullet + gymnasium only (never torch)."""

import gymnasium

from envs.quiet import quiet_c_output

with quiet_c_output():  # pybullet prints its build time when first imported
    from envs.experts import make_expert
    from envs.objects import (
        COLORS,
        FAMILIES,
        HELDOUT_COLORS,
        HELDOUT_COMBOS,
        MIX,
        SHAPES,
        SPLITS,
        TRAIN_COLORS,
    )
    from envs.panda_pick import PandaPickEnv
    from envs.tabletop import PandaTabletopEnv

MAX_EPISODE_STEPS = 80  # 8 s at 10 Hz; the scripted expert needs about 40 control steps
# 20 s at 10 Hz. The experts need 17 (pick, drawer) to 41 (move_near) control steps on average; the longest of
# 1200 measured expert episodes (200 per family) took 175 (stack, after re-grasps). 200 leaves a policy room too.
TABLETOP_MAX_EPISODE_STEPS = 200

gymnasium.register(
    id="PandaPick-v0", entry_point="envs.panda_pick:PandaPickEnv", max_episode_steps=MAX_EPISODE_STEPS
)
gymnasium.register(
    id="PandaTabletop-v0",
    entry_point="envs.tabletop:PandaTabletopEnv",
    max_episode_steps=TABLETOP_MAX_EPISODE_STEPS,
)

__all__ = [
    "COLORS",
    "FAMILIES",
    "HELDOUT_COLORS",
    "HELDOUT_COMBOS",
    "MAX_EPISODE_STEPS",
    "MIX",
    "SHAPES",
    "SPLITS",
    "TABLETOP_MAX_EPISODE_STEPS",
    "TRAIN_COLORS",
    "PandaPickEnv",
    "PandaTabletopEnv",
    "make_expert",
]
