"""The Task interface: what one task family adds to the shared table-and-robot scene.

A Task is built once per env with the env's `Sim` and `Panda` and its options; every episode the env clears
the scene, loads table and robot, then calls `build(rng)` with its own `np_random` (the only randomness a task
may use), lets the scene settle, and calls `start()`. After each control step it calls `after_step()` and then
reads `is_success()` (instantaneous: the env applies the hold over several control steps).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from envs.robot import Panda
from envs.sim import Sim


class Task(ABC):
    """One task family: scene, instruction, success, privileged state, variation and scripted expert."""

    family: str = ""

    def __init__(self, sim: Sim, robot: Panda, options: Any = None) -> None:
        self.sim = sim
        self.robot = robot
        self.options = options

    @abstractmethod
    def build(self, rng: np.random.Generator) -> None:
        """Spawn this episode's objects (table and robot exist already), drawing everything from `rng`."""

    def start(self) -> None:  # noqa: B027 - an optional hook: most tasks need nothing here
        """Called once the scene has settled after `build`: record start poses here."""

    def after_step(self) -> None:  # noqa: B027 - an optional hook
        """Called after every control step, before `is_success` (e.g. to track the highest lift so far)."""

    @abstractmethod
    def instruction(self) -> str:
        """The episode's natural-language instruction."""

    @abstractmethod
    def is_success(self) -> bool:
        """Whether the goal state holds right now."""

    def metrics(self) -> dict[str, float]:
        """Task numbers the env reports every step under `info["task_metrics"]` (e.g. `target_height`,
        metres)."""
        return {}

    def variation_ranges(self) -> dict[str, tuple[float, float]]:
        """The range each continuous `variation()` value is drawn from (an evaluation bins it over that range
        in its per-variation breakdown); {} when there is none."""
        return {}

    @abstractmethod
    def privileged_state(self) -> dict[str, Any]:
        """Ground truth the scripted expert reads (never part of the observation)."""

    @abstractmethod
    def variation(self) -> dict[str, Any]:
        """JSON-able facts of the episode: family, target, colours, splits, template id, family fields."""

    def goal_position(self) -> np.ndarray | None:
        """Where the task wants its target to end up, now (xyz, metres), logged per frame as results_raw.csv's
        `goal_pos_*` columns for training-time auxiliary losses; None: the task logs none (PandaPick-v0)."""
        return None

    @abstractmethod
    def raw_object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), xyzw quaternion (4,)) of the target, logged per frame in results_raw.csv."""

    @abstractmethod
    def expert(self, env, noise: float = 0.0, seed: int = 0):
        """This family's scripted expert (Policy protocol) for `env`."""
