"""The rt1-sim simulation: numpy + pybullet + gymnasium only (never torch)."""

import gymnasium

from envs.panda_pick import PandaPickEnv

MAX_EPISODE_STEPS = 80  # 8 s at 10 Hz; the scripted expert needs about 40 control steps

gymnasium.register(id="PandaPick-v0", entry_point="envs.panda_pick:PandaPickEnv", max_episode_steps=MAX_EPISODE_STEPS)

__all__ = ["MAX_EPISODE_STEPS", "PandaPickEnv"]
