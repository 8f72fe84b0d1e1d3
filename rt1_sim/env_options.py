"""Env options from a user (a collect `--env-option`, a suite's `env_options`, a `--set`): checked once, in
the parent process, before any worker starts and before anything is written."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

import envs  # noqa: F401  (registers the envs)
from rt1_sim.errors import ConfigError

NOT_OPTIONS = ("self", "render_mode")  # constructor arguments that are not scene options


def option_names(env_id: str, source: str, excluded: Sequence[str] = ()) -> list[str]:
    """The keyword options of the registered env's constructor, in signature order."""
    return [p for p in option_defaults(env_id, source) if p not in excluded]


def option_defaults(env_id: str, source: str) -> dict[str, Any]:
    """The registered env's keyword options with their defaults (inspect.Parameter.empty when none)."""
    try:
        env_class = load_env_creator(gym.spec(env_id).entry_point)
    except gym.error.Error as e:
        raise ConfigError(f"{source}: env_id {env_id!r}: {e}") from None
    params = inspect.signature(env_class).parameters
    return {name: p.default for name, p in params.items() if name not in NOT_OPTIONS}


def check_option_name(
    env_id: str, key: str, source: str, prefix: str = "", excluded: Sequence[str] = ()
) -> None:
    """One ConfigError naming `source` and the option when `key` is not an option of the env."""
    valid = option_names(env_id, source, excluded)
    if key not in valid:
        what = "key" if prefix else "env option"
        raise ConfigError(f"{source}: unknown {what} {prefix + key!r}; {env_id} options: {valid}")


def episode_limit(env_id: str, max_steps: int | None, source: str) -> int:
    """The episode step limit a run uses: `max_steps` when set, else the env's registered
    `max_episode_steps` (PandaPick-v0: 80, PandaTabletop-v0: 200)."""
    if max_steps is not None:
        return max_steps
    try:
        registered = gym.spec(env_id).max_episode_steps
    except gym.error.Error as e:
        raise ConfigError(f"{source}: env_id {env_id!r}: {e}") from None
    if registered is None:
        raise ConfigError(f"{source}: {env_id} registers no max_episode_steps: set max_steps")
    return int(registered)


def describe_limit(max_steps: int | None, limit: int) -> str:
    """How a log line names the limit used: `200 steps (the env's registered limit)` or
    `80 steps (max_steps)`."""
    origin = "max_steps" if max_steps is not None else "the env's registered limit"
    return f"{limit} steps ({origin})"


def checked_env(
    env_id: str, options: dict[str, Any], source: str, prefix: str = "", **make_kwargs: Any
) -> gym.Env:
    """The env made with `options` and reset once, so that a bad name or value fails here as one ConfigError
    naming `source` (an option or a file) and the option; the caller closes the env."""
    option_names(env_id, source)  # an unknown env_id fails here, with no option given too
    for key in options:
        check_option_name(env_id, key, source, prefix)
    label = f"{prefix.rstrip('.')}: " if prefix else ""
    try:
        env = gym.make(env_id, **make_kwargs, **options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: {label}{e}") from None
    try:
        env.reset(seed=0)
    except (TypeError, ValueError) as e:
        env.close()
        raise ConfigError(f"{source}: {label}{e}") from None
    return env
