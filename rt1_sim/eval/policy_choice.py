"""Which policy an evaluation runs, and the policy each episode gets (same seeds -> same actions).

"auto" is the env's bundled RT-1 checkpoint (the scripted expert when it is missing), "scripted" the env's
expert, "random" the floor; anything else names an RT-1 checkpoint. torch is imported only to load a
checkpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rt1_sim.policy import Policy, RandomPolicy, make_expert
from rt1_sim.resources import bundled_checkpoint

if TYPE_CHECKING:
    import gymnasium as gym

    from rt1_sim.config import EvalPolicyConfig
    from rt1_sim.policy import RT1Policy

log = logging.getLogger(__name__)

POLICY_KEYWORDS = ("auto", "scripted", "random")  # anything else names an RT-1 checkpoint


@dataclass(frozen=True)
class PolicyChoice:
    """A resolved policy: `kind` is "scripted", "random" or "rt1" (with its checkpoint)."""

    kind: str
    checkpoint: Path | None = None

    @property
    def label(self) -> str:
        return self.checkpoint.stem if self.checkpoint is not None else self.kind


def resolve_policy(name: str, env_id: str) -> PolicyChoice:
    """ "auto" -> env `env_id`'s bundled RT-1 checkpoint if it exists, else the scripted expert (with a
    warning); "scripted" | "random"; anything else is the path of an RT-1 checkpoint."""
    if name == "auto":
        bundled = bundled_checkpoint(env_id)
        if bundled is not None and bundled.is_file():
            return PolicyChoice("rt1", bundled)
        where = f"at {bundled}" if bundled is not None else f"for {env_id}"
        log.warning("no bundled RT-1 checkpoint %s: evaluating the scripted expert instead", where)
        return PolicyChoice("scripted")
    if name in POLICY_KEYWORDS:
        return PolicyChoice(name)
    return PolicyChoice("rt1", Path(name))


def load_rt1(checkpoint: Path, options: EvalPolicyConfig) -> RT1Policy:
    """RT1Policy from a checkpoint, on options.device, cropping its frames as options.inference_crop says;
    torch is imported here and only here (a bad file: CheckpointError)."""
    from rt1_sim.policy import RT1Policy

    policy = RT1Policy.from_checkpoint(checkpoint, device=options.device)
    if options.inference_crop != "checkpoint":
        policy.model.inference_crop = options.inference_crop
    return policy


def episode_seed(policy_seed: int, env_seed: int) -> int:
    """A policy RNG seed for one episode, from the suite's policy seed and the episode's env seed."""
    return int(np.random.SeedSequence([policy_seed, env_seed]).generate_state(1)[0])


def policy_for_episodes(
    choice: PolicyChoice, options: EvalPolicyConfig, env: gym.Env, rt1: Policy | None = None
) -> Callable[[int], Policy]:
    """env seed -> the policy for that episode. The random policy is re-seeded from each episode's seed (its
    RNG would otherwise carry over between whichever episodes a worker happens to run); the expert seeds its
    noise per episode itself, and RT-1 is deterministic (argmax tokens), its history cleared by reset().
    `rt1`: an already loaded RT-1 policy (else it is loaded from the checkpoint)."""
    if choice.kind == "random":
        return lambda seed: RandomPolicy(seed=episode_seed(options.seed, seed))
    if choice.kind == "scripted":
        shared: Policy = make_expert(env, noise=options.expert_noise, seed=options.seed)
    else:
        shared = rt1 if rt1 is not None else load_rt1(choice.checkpoint, options)
    return lambda seed: shared


def substitute_instructions(mode: str, seeds: Sequence[int], own: dict[int, str]) -> dict[int, str]:
    """seed -> what the policy is told under `mode`: "blank" an empty string; "shuffled" the instruction of
    the next seed (cyclically, in seed order) whose instruction differs from the episode's own, so every
    episode gets a wrong command whenever the suite has more than one."""
    if mode == "blank":
        return {seed: "" for seed in seeds}
    order = list(seeds)
    told = {}
    for i, seed in enumerate(order):
        others = (order[(i + k) % len(order)] for k in range(1, len(order)))
        told[seed] = own[next((s for s in others if own[s] != own[seed]), seed)]
    return told
