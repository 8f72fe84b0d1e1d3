"""`make_expert(env)`: the scripted expert for any rt1-sim env, whatever family the current episode is."""

from __future__ import annotations

import numpy as np


class TaskExpert:
    """Policy-protocol dispatcher: at each `reset(instruction)` it takes the current episode's task's expert.

    One expert per task class is made lazily and kept; each seeds its noise from (seed, episode seed) at the
    episode's first step, so demonstrations never depend on worker order or on earlier episodes.
    """

    def __init__(self, env, noise: float = 0.0, seed: int = 0) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        self.env = env
        self.noise = noise
        self.seed = seed
        self._experts: dict[type, object] = {}
        self.current = None

    def reset(self, instruction: str | None = None) -> None:
        task = self.env.unwrapped.task
        if task is None:
            raise RuntimeError("reset the env before the expert: the episode's task is not known yet")
        kind = type(task)
        if kind not in self._experts:
            self._experts[kind] = task.expert(self.env, noise=self.noise, seed=self.seed)
        self.current = self._experts[kind]
        self.current.reset(instruction)

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.current is None:
            self.reset()
        return self.current.act(obs)

    @property
    def clean_action(self) -> np.ndarray | None:
        """The current expert's last command before noise (None before its first `act`)."""
        return None if self.current is None else self.current.clean_action


def make_expert(env, noise: float = 0.0, seed: int = 0):
    """The scripted expert for `env` (PandaPick-v0 or PandaTabletop-v0, any family or `mix`)."""
    from envs.panda_pick import PandaPickEnv

    if isinstance(env.unwrapped, PandaPickEnv):
        return env.unwrapped.pick_task.expert(env, noise=noise, seed=seed)
    return TaskExpert(env, noise=noise, seed=seed)
