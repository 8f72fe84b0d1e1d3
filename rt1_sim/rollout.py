"""The one rollout loop: any Policy in any registered env, for collection and evaluation alike (no torch)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rt1_sim.policy import Policy

# on_step(obs, info, action): called for every observation the policy sees, with the action it chose, and once
# more for the final observation with action=None. `info` is the one returned together with `obs`.
StepCallback = Callable[[dict[str, np.ndarray], dict[str, Any], np.ndarray | None], None]


@dataclass(frozen=True)
class EpisodeResult:
    """What one episode gave. `success` is ManiSkill's success_at_end: the cube is held lifted at the end."""

    seed: int
    instruction: str
    success: bool
    success_once: bool
    steps: int
    end_reason: str  # "success" | "terminate_action" | "time_limit"
    final_cube_height: float
    sim_seconds: float  # env.reset + env.step: physics, IK and rendering
    policy_seconds: float  # policy.reset + policy.act

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def rollout(
    env: gym.Env, policy: Policy, seed: int, max_steps: int | None = None, on_step: StepCallback | None = None
) -> EpisodeResult:
    """Run one episode from `env.reset(seed=seed)` until termination, truncation or `max_steps`."""
    t0 = time.perf_counter()
    obs, info = env.reset(seed=seed)
    sim_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    policy.reset(info["instruction"])
    policy_s = time.perf_counter() - t0
    steps, end_reason = 0, "time_limit"
    while max_steps is None or steps < max_steps:
        t0 = time.perf_counter()
        action = policy.act(obs)
        policy_s += time.perf_counter() - t0
        if on_step is not None:
            on_step(obs, info, action)
        t0 = time.perf_counter()
        obs, _, terminated, truncated, info = env.step(action)
        sim_s += time.perf_counter() - t0
        steps += 1
        if terminated:
            end_reason = info["end_reason"]
            break
        if truncated:
            break
    if on_step is not None:
        on_step(obs, info, None)
    return EpisodeResult(
        seed=seed,
        instruction=info["instruction"],
        success=bool(info["is_success"]),
        success_once=bool(info["success_once"]),
        steps=steps,
        end_reason=end_reason,
        final_cube_height=float(info["cube_height"]),
        sim_seconds=sim_s,
        policy_seconds=policy_s,
    )
