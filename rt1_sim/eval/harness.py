"""`evaluate`: run a suite's episodes (worker pool, torchrun shards), gather them, write the run folder.

Episodes run in `workers` processes per torchrun rank, each with one env and one policy
(`rt1_sim.eval.worker`); stateful policy randomness is seeded per episode, so per-episode results depend only
on the seeds, never on the number of workers or ranks. Under torchrun the seeds are sharded by rank and
gathered over gloo: the same results as one process.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator
from tqdm import tqdm

import envs  # noqa: F401  (registers the envs)
from envs.spaces import CAMERA_NAMES, EPISODE_DIR
from rt1_sim.config import EvalConfig
from rt1_sim.data.episodes import clean_incomplete
from rt1_sim.distributed import Distributed, available_cores, init_process_group, launch_environment
from rt1_sim.errors import ConfigError, OutputError
from rt1_sim.eval import worker
from rt1_sim.eval.policies import PolicyChoice, load_rt1, resolve_policy, substitute_instructions
from rt1_sim.eval.results import EvalReport, build_results, commit_recording, write_results
from rt1_sim.eval.video import VIDEO_MODES
from rt1_sim.policy import Policy
from rt1_sim.pool import worker_pool

log = logging.getLogger(__name__)

# Options the suite may not set: terminate_on_action comes from policy.terminate_on_action (EvalConfig refuses
# it in env_options), render_mode is not a scene variation.
RESERVED_ENV_OPTIONS = ("self", "render_mode", "terminate_on_action")


def check_env_options(env_id: str, options: dict[str, Any], source: str) -> None:
    """Every key must be a keyword of the registered env's constructor (the message lists them)."""
    try:
        env_class = load_env_creator(gym.spec(env_id).entry_point)
    except gym.error.Error as e:
        raise ConfigError(f"{source}: env_id {env_id!r}: {e}") from None
    valid = [p for p in inspect.signature(env_class).parameters if p not in RESERVED_ENV_OPTIONS]
    for key in options:
        if key not in valid:
            raise ConfigError(f"{source}: unknown key 'env_options.{key}'; {env_id} options: {valid}")


def resolve_env_options(config: EvalConfig, rt1: Policy | None, source: str) -> dict[str, Any]:
    """The suite's env options, the terminate switch and, for RT-1, the image size the model was built for."""
    check_env_options(config.env_id, config.env_options, source)
    options = {**config.env_options, "terminate_on_action": config.policy.terminate_on_action}
    if rt1 is not None:
        net = rt1.model.config
        wanted = [net.image_height, net.image_width]
        if "image_size" in options and list(options["image_size"]) != wanted:
            raise ConfigError(
                f"{source}: env_options.image_size is {list(options['image_size'])}, but the "
                f"checkpoint's model takes {wanted} images"
            )
        options["image_size"] = wanted
    return options


def probe_env(config: EvalConfig, env_options: dict[str, Any], source: str) -> tuple[dict[str, Any], int]:
    """Make the env once in the parent, so bad option values fail before any worker starts; returns the ranges
    that bin continuous variations in the breakdown (where the env has them) and the episode step limit."""
    try:
        probe = gym.make(config.env_id, **env_options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: env_options: {e}") from None
    ranges = {
        name: getattr(probe.unwrapped, attribute)
        for name, attribute in (
            ("cube_size", "cube_size_range"),
            ("cube_x", "x_range"),
            ("cube_y", "y_range"),
        )
        if hasattr(probe.unwrapped, attribute)
    }
    max_steps = config.max_steps or probe.spec.max_episode_steps
    probe.close()
    return ranges, max_steps


def told_instructions(config: EvalConfig, env_options: dict[str, Any]) -> dict[int, str] | None:
    """seed -> the instruction the policy is told, for the language ablations (None: each episode's own).
    "shuffled" reads every episode's own instruction from a reset of the env; every rank computes the same."""
    mode = config.policy.instruction
    if mode == "given":
        return None
    seeds = list(config.seeds)
    own: dict[int, str] = {}
    if mode == "shuffled":
        env = gym.make(config.env_id, **env_options)
        own = {seed: env.reset(seed=seed)[1]["instruction"] for seed in seeds}
        env.close()
    return substitute_instructions(mode, seeds, own)


def prepare_record(record: Path, job: Distributed, dist: Any) -> None:
    """Refuse a folder that already holds episodes; rank 0 clears a killed run's staging leftovers while the
    other ranks wait (they would otherwise be clearing what rank 0 is already staging)."""
    prefix = EPISODE_DIR.split("{")[0]
    if any(path.is_dir() for view in CAMERA_NAMES for path in (record / view).glob(f"{prefix}*")):
        raise OutputError(f"--record {record}: already holds episodes; record into a new folder")
    if job.is_main:
        clean_incomplete(record, CAMERA_NAMES)
    if dist is not None:
        dist.barrier()


def run_shard(
    job: worker.EvalJob, seeds: Sequence[int], workers: int, rt1: Policy | None, progress: bool
) -> list[dict[str, Any]]:
    """Run `seeds` in seed order with `workers` processes (1: in this process, with the loaded `rt1`)."""
    outcomes: list[dict[str, Any]] = []
    successes = 0
    bar = tqdm(total=len(seeds), unit="ep", desc="eval", disable=not progress, mininterval=0.5)
    pool = worker_pool(workers, worker.init_worker, (job,), worker.close_worker, local_initargs=(job, rt1))
    with bar, pool as imap:
        for outcome in imap(worker.run_episode, seeds):
            outcomes.append(outcome)
            successes += outcome["row"]["success"]
            bar.update(1)
            bar.set_postfix(success=f"{successes / len(outcomes):.1%}", refresh=False)
    return outcomes


def timing(
    outcomes: list[dict[str, Any]], wall: float, workers: int, world: int, threads: int | None
) -> dict:
    """The only part of results.json that changes between identical runs."""
    steps = max(sum(o["row"]["steps"] for o in outcomes), 1)
    return {
        "wall_seconds": wall,
        "episodes_per_minute": 60.0 * len(outcomes) / wall,
        "sim_seconds_per_step": sum(o["sim_seconds"] for o in outcomes) / steps,
        "policy_seconds_per_step": sum(o["policy_seconds"] for o in outcomes) / steps,
        "workers": workers,
        "world_size": world,
        "torch_threads_per_worker": threads,
    }


def evaluate(
    config: EvalConfig,
    out: str | Path,
    workers: int = 1,
    video: str = "none",
    record: str | Path | None = None,
    config_file: str | Path | None = None,
    progress: bool = True,
) -> EvalReport:
    """Evaluate `config.policy` on the suite `config`, write the run folder `out`, return the report.

    `workers` processes (per torchrun rank) run the episodes; `video` is "all", "failures" or "none";
    `record` is a new dataset folder that receives every episode in the IO layout. Under torchrun every rank
    returns the same report and rank 0 writes the files (`out` and `record` must then be shared folders).
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if video not in VIDEO_MODES:
        raise ConfigError(f"video must be one of {VIDEO_MODES}, got {video!r}")
    source = str(config_file) if config_file is not None else "the EvalConfig defaults"
    job = launch_environment()
    dist = init_process_group(job, "gloo")
    choice: PolicyChoice = resolve_policy(config.policy.name)
    rt1 = load_rt1(choice.checkpoint, config.policy.device) if choice.kind == "rt1" else None
    env_options = resolve_env_options(config, rt1, source)
    ranges, max_steps = probe_env(config, env_options, source)

    out = Path(out)
    (out / worker.VIDEO_DIR if video != "none" else out).mkdir(parents=True, exist_ok=True)
    if record is not None:
        record = Path(record)
        prepare_record(record, job, dist)
    seeds = list(config.seeds)[job.rank :: job.world_size]
    workers = min(workers, max(len(seeds), 1))
    threads = max(1, available_cores() // (workers * job.local_world_size)) if rt1 is not None else None
    episode_job = worker.EvalJob(
        config=config,
        policy=choice,
        env_options=env_options,
        max_steps=max_steps,
        video=video,
        out=str(out),
        record=str(record) if record is not None else None,
        torch_threads=threads,
        instructions=told_instructions(config, env_options),
    )
    start = time.perf_counter()
    outcomes = run_shard(episode_job, seeds, workers, rt1 if workers == 1 else None, progress and job.is_main)
    if dist is not None:
        gathered: list[Any] = [None] * job.world_size
        dist.all_gather_object(gathered, outcomes)
        outcomes = [o for shard in gathered for o in shard]
    wall = time.perf_counter() - start
    outcomes.sort(key=lambda o: o["row"]["seed"])
    rows = [o["row"] for o in outcomes]

    results = build_results(config, source, choice, rows, ranges)
    results["timing"] = timing(outcomes, wall, workers, job.world_size, threads)
    if job.is_main:
        write_results(out, results)
        if record is not None:
            commit_recording(record, rows, results)
        log.info("wrote results to %s", out)
    return EvalReport(results, out)
