"""The one Policy protocol every controller implements: scripted expert, random policy and RT-1.

`reset(instruction)` at the start of each episode (the env's instruction string, from `info["instruction"]`;
policies that need no language ignore it), `act(obs) -> action` every control step, numpy in and numpy out: the
observation dict of `envs.PandaPickEnv` in, a flat float32 action of `envs.spaces.ACTION_SIZE` values out.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from envs.spaces import ACTION_HIGH, ACTION_LOW, ACTION_SLICES


@runtime_checkable
class Policy(Protocol):
    """Anything that can drive the env for one episode at a time."""

    def reset(self, instruction: str | None = None) -> None:
        """Forget everything about the previous episode; `instruction` is the new episode's task."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Return the flat action (float32, ACTION_SIZE) for the current observation."""


class RandomPolicy:
    """Uniform random actions inside the action table's bounds, never asking to terminate: the floor."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._rng = np.random.default_rng(seed)

    def reset(self, instruction: str | None = None) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action = self._rng.uniform(ACTION_LOW, ACTION_HIGH).astype(np.float32)
        action[ACTION_SLICES["terminate_episode"]] = 0.0
        return action
