"""The one rollout loop: any Policy in any registered env, for collection and evaluation alike (no torch)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from rt1_sim.policy import Policy

# on_step(obs, info, action): called for every observation the policy sees, with the action it chose, and once
# more for the final observation with action=None. `info` is the one returned together with `obs`.
StepCallback = Callable[[dict[str, np.ndarray], dict[str, Any], np.ndarray | None], None]


@dataclass(frozen=True)
class EpisodeResult:
    """What one episode gave. `success` is ManiSkill's success_at_end: the env's `is_success` at the last
    step. `task_metrics` are the task's own numbers then (`info["task_metrics"]`, e.g. a lifted height)."""

    seed: int
    instruction: str
    success: bool
    success_once: bool
    steps: int
    end_reason: str  # "success" | "terminate_action" | "time_limit"
    task_metrics: dict[str, float | bool]
    sim_seconds: float  # env.reset + env.step: physics, IK and rendering
    policy_seconds: float  # policy.reset + policy.act

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def rollout(
    env: gym.Env, policy: Policy, seed: int, max_steps: int | None = None, on_step: StepCallback | None = None
) -> EpisodeResult:
    """Run one episode from `env.reset(seed=seed)` until termination, truncation or `max_steps`: `rollouts`
    with one env."""
    callbacks = None if on_step is None else (lambda _slot, _seed: on_step)
    return next(rollouts([env], EachEnv([lambda _seed: policy]), [seed], max_steps, callbacks))


class VectorPolicy(Protocol):
    """What `rollouts` drives: episodes in numbered slots (one per env), begun and ended one at a time, and
    one `act` for every slot with an episode under way."""

    def begin(self, slot: int, seed: int, instruction: str) -> None:
        """A new episode (env seed `seed`, the env's `instruction`) starts in `slot`."""

    def act(self, obs: Mapping[int, dict[str, np.ndarray]]) -> dict[int, np.ndarray]:
        """slot -> flat action, for every slot in `obs` (the slots with an episode under way)."""

    def end(self, slot: int) -> None:
        """The episode in `slot` is over."""


class EachEnv:
    """A VectorPolicy of one Policy per episode: `policy_for[slot](seed)` (the scripted expert of that slot's
    env, a random policy seeded by the episode, ...) is reset at `begin` and acts on its own observation."""

    def __init__(self, policy_for: Sequence[Callable[[int], Policy]]) -> None:
        self.policy_for = list(policy_for)
        self.current: dict[int, Policy] = {}

    def begin(self, slot: int, seed: int, instruction: str) -> None:
        policy = self.current[slot] = self.policy_for[slot](seed)
        policy.reset(instruction)

    def act(self, obs: Mapping[int, dict[str, np.ndarray]]) -> dict[int, np.ndarray]:
        return {slot: self.current[slot].act(o) for slot, o in obs.items()}

    def end(self, slot: int) -> None:
        self.current.pop(slot, None)


@dataclass
class _Running:
    """One slot's episode in progress."""

    seed: int
    obs: dict[str, np.ndarray]
    info: dict[str, Any]
    on_step: StepCallback | None
    steps: int = 0
    sim_seconds: float = 0.0
    policy_seconds: float = 0.0


def rollouts(
    envs: Sequence[gym.Env],
    policy: VectorPolicy,
    seeds: Iterable[int],
    max_steps: int | None = None,
    on_step_for: Callable[[int, int], StepCallback | None] | None = None,
) -> Iterator[EpisodeResult]:
    """The one rollout loop: one episode per seed, up to len(envs) at a time (env k runs in slot k), each
    from `env.reset(seed=seed)` until termination, truncation or `max_steps`. Every step, one `policy.act`
    serves every running episode; an env whose episode ends takes the next seed while the others go on.
    Yields the results as episodes end. `on_step_for(slot, seed)` is the `StepCallback` of the episode of
    `seed` on env `slot`. An episode's
    steps and result depend only on its seed (and the policy), never on the other slots; the time of a
    shared `act` is split evenly between the episodes it served."""
    pending = iter(seeds)
    running: dict[int, _Running] = {}

    def begin(slot: int) -> None:
        seed = next(pending, None)
        if seed is None:
            return
        t0 = time.perf_counter()
        obs, info = envs[slot].reset(seed=seed)
        sim_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        policy.begin(slot, seed, info["instruction"])
        callback = on_step_for(slot, seed) if on_step_for is not None else None
        running[slot] = _Running(seed, obs, info, callback, 0, sim_s, time.perf_counter() - t0)

    for slot in range(len(envs)):
        begin(slot)
    while running:
        t0 = time.perf_counter()
        actions = policy.act({slot: r.obs for slot, r in running.items()})
        share = (time.perf_counter() - t0) / len(running)
        for slot in list(running):
            r, action = running[slot], actions[slot]
            r.policy_seconds += share
            if r.on_step is not None:
                r.on_step(r.obs, r.info, action)
            t0 = time.perf_counter()
            r.obs, _, terminated, truncated, r.info = envs[slot].step(action)
            r.sim_seconds += time.perf_counter() - t0
            r.steps += 1
            if terminated or truncated or (max_steps is not None and r.steps >= max_steps):
                end_reason = r.info["end_reason"] if terminated else "time_limit"
                if r.on_step is not None:
                    r.on_step(r.obs, r.info, None)
                policy.end(slot)
                del running[slot]
                yield _result(r, end_reason)
                begin(slot)


def _result(r: _Running, end_reason: str) -> EpisodeResult:
    info = r.info
    return EpisodeResult(
        seed=r.seed,
        instruction=info["instruction"],
        success=bool(info["is_success"]),
        success_once=bool(info["success_once"]),
        steps=r.steps,
        end_reason=end_reason,
        task_metrics={k: _scalar(v) for k, v in info.get("task_metrics", {}).items()},
        sim_seconds=r.sim_seconds,
        policy_seconds=r.policy_seconds,
    )


def _scalar(value: Any) -> float | bool:
    """A task metric as a plain bool or float (numpy scalars and 0-d arrays included)."""
    value = np.asarray(value).item()
    return value if isinstance(value, bool) else float(value)
