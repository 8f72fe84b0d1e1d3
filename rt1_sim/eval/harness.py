"""`evaluate`: run a suite's episodes (worker pool, torchrun shards), gather them, write the run folder.

Episodes run in `workers` processes per torchrun rank, each with one env and one policy
(`rt1_sim.eval.worker`); stateful policy randomness is seeded per episode, so per-episode results depend only
on the seeds, never on the number of workers or ranks. Under torchrun the seeds are sharded by rank and
gathered over gloo: the same results as one process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

import envs  # noqa: F401  (registers the envs)
from envs.spaces import CAMERA_NAMES
from rt1_sim.config import EvalConfig
from rt1_sim.data.episodes import RECORD_CONFIG_FILE, clean_incomplete
from rt1_sim.distributed import available_cores, init_process_group, launch_environment
from rt1_sim.env_options import (
    check_option_name,
    checked_env,
    describe_limit,
    episode_limit,
    option_defaults,
)
from rt1_sim.errors import ConfigError, OutputError
from rt1_sim.eval import worker
from rt1_sim.eval.policy_choice import PolicyChoice, load_rt1, resolve_policy, substitute_instructions
from rt1_sim.eval.results import (
    EPISODES_FILE,
    RESULTS_FILE,
    EvalReport,
    build_results,
    commit_recording,
    write_results,
)
from rt1_sim.eval.video import VIDEO_MODES, check_video_scale
from rt1_sim.logs import log_to_file
from rt1_sim.outputs import make_folder, prepare_folder
from rt1_sim.pool import worker_count, worker_pool
from rt1_sim.run_layout import EVAL_LOG_FILE, VIDEO_DIR

if TYPE_CHECKING:
    from rt1_sim.policy import RT1Policy

log = logging.getLogger(__name__)
# Episodes per env in a chunk of seeds that a worker takes at a time (seed_chunks).
CHUNK_ROUNDS = 4
# Envs a worker steps together by default (eval and benchmark --envs-per-worker; benchmarks/eval_batching.py).
DEFAULT_ENVS_PER_WORKER = 4

# What a run writes into --out and into --record: what --overwrite may replace.
OUT_ENTRIES = (RESULTS_FILE, EPISODES_FILE, EVAL_LOG_FILE, VIDEO_DIR)
RECORD_ENTRIES = (RECORD_CONFIG_FILE, *CAMERA_NAMES)
# Options the suite may not set: terminate_on_action comes from policy.terminate_on_action (EvalConfig refuses
# it in env_options).
RESERVED_ENV_OPTIONS = ("terminate_on_action",)


def blame(source: str, overrides: Sequence[str], key: str) -> str:
    """Where the value of the dotted `key` came from: the last `--set` that set it (or a key above or below
    it), else `source` (the suite file)."""
    for text in reversed(overrides):
        name = text.partition("=")[0]
        if name == key or name.startswith(key + ".") or key.startswith(name + "."):
            return f"--set {text} (over {source})"
    return source


def resolve_env_options(
    config: EvalConfig, image_size: Sequence[int] | None, source: str, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """The suite's env options (every key an option of the env), the terminate switch and, for RT-1, the
    `image_size` its model was built for. Errors name the `--set` that gave the key, else `source`."""
    for key in config.env_options:
        where = blame(source, overrides, f"env_options.{key}")
        check_option_name(config.env_id, key, where, "env_options.", RESERVED_ENV_OPTIONS)
    options = {**config.env_options, "terminate_on_action": config.policy.terminate_on_action}
    if image_size is not None:
        wanted = list(image_size)
        if "image_size" in options and list(options["image_size"]) != wanted:
            raise ConfigError(
                f"{blame(source, overrides, 'env_options.image_size')}: env_options.image_size is "
                f"{list(options['image_size'])}, but the checkpoint's model takes {wanted} images"
            )
        options["image_size"] = wanted
    return options


def probe_env(config: EvalConfig, env_options: dict[str, Any], source: str) -> tuple[dict[str, Any], int]:
    """Make (and reset) the env once in the parent, so bad option values fail before any worker starts;
    returns the ranges that bin continuous variations in the breakdown (where the env has them) and the
    episode step limit."""
    probe = checked_env(config.env_id, env_options, source, "env_options.")
    ranges = probe.unwrapped.variation_ranges() if hasattr(probe.unwrapped, "variation_ranges") else {}
    probe.close()
    max_steps = episode_limit(config.env_id, config.max_steps, source)
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
        env = checked_env(config.env_id, env_options, "policy.instruction=shuffled")
        own = {seed: env.reset(seed=seed)[1]["instruction"] for seed in seeds}
        env.close()
    return substitute_instructions(mode, seeds, own)


def check_suite(
    config: EvalConfig, image_size: Sequence[int] | None, source: str, overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Every check of a suite's scenes (training calls it before loading data): the env options, the ranges
    and the step limit."""
    env_options = resolve_env_options(config, image_size, source, overrides)
    ranges, max_steps = probe_env(config, env_options, blame(source, overrides, "env_options"))
    return env_options, ranges, max_steps


@dataclass(frozen=True)
class Outputs:
    """Where an evaluation writes: the run folder, its videos, a recording, and whether to replace a run."""

    out: Path
    video: str = "none"
    video_scale: int = 0  # 0: auto (see rt1_sim.eval.video.video_scale_for)
    record: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.video not in VIDEO_MODES:
            raise ConfigError(f"--video must be one of {VIDEO_MODES}, got {self.video!r}")
        if self.video_scale < 0:
            raise ConfigError(f"--video-scale must be >= 0 (0: auto), got {self.video_scale}")

    def check(self) -> list[Path]:
        """Refuse a run folder or --record folder that already holds files (unless `overwrite`: then return
        what to remove); reads only, so every rank may call it before any rank writes."""
        remove = prepare_folder(self.out, "--out", OUT_ENTRIES, self.overwrite)
        if self.record is not None:
            if self.record.resolve() == self.out.resolve():
                raise OutputError(f"--record {self.record}: must be another folder than --out")
            remove += prepare_folder(self.record, "--record", RECORD_ENTRIES, self.overwrite)
        return remove

    def make(self, remove: list[Path], is_main: bool, dist: Any) -> None:
        """Rank 0 removes what --overwrite replaces and creates the folders while the other ranks wait."""
        if dist is not None:
            dist.barrier()  # every rank has checked the folders before any is changed
        if is_main:
            make_folder(self.out, "--out", remove)
            if self.video != "none":
                make_folder(self.out / VIDEO_DIR, "--out")
            if self.record is not None:
                make_folder(self.record, "--record")
                clean_incomplete(self.record, CAMERA_NAMES)
        if dist is not None:
            dist.barrier()


def seed_chunks(seeds: Sequence[int], envs_per_worker: int, workers: int) -> list[list[int]]:
    """`seeds` cut into the chunks workers take one at a time: up to CHUNK_ROUNDS episodes per env of a
    worker, so every env has a queue to refill from, but never so many that a worker is left without one."""
    share = -(-len(seeds) // workers)  # every worker's share, rounded up
    size = max(envs_per_worker, min(CHUNK_ROUNDS * envs_per_worker, share))
    return [list(seeds[i : i + size]) for i in range(0, len(seeds), size)]


def run_shard(
    job: worker.EvalJob, seeds: Sequence[int], workers: int, rt1: RT1Policy | None, progress: bool
) -> list[dict[str, Any]]:
    """Run `seeds` with `workers` processes (1: in this process, with the loaded `rt1`), each stepping
    `job.envs_per_worker` envs; outcomes come back per chunk of seeds, the chunks in seed order."""
    outcomes: list[dict[str, Any]] = []
    successes = 0
    bar = tqdm(total=len(seeds), unit="ep", desc="eval", disable=not progress, mininterval=0.5)
    pool = worker_pool(workers, worker.init_worker, (job,), worker.close_worker, local_initargs=(job, rt1))
    with bar, pool as imap:
        for chunk in imap(worker.run_episodes, seed_chunks(seeds, job.envs_per_worker, workers)):
            outcomes.extend(chunk)
            successes += sum(outcome["row"]["success"] for outcome in chunk)
            bar.update(len(chunk))
            bar.set_postfix(success=f"{successes / len(outcomes):.1%}", refresh=False)
    return outcomes


def timing(
    outcomes: list[dict[str, Any]],
    wall: float,
    workers: int,
    world: int,
    threads: int | None,
    envs_per_worker: int = 1,
) -> dict:
    """The only part of results.json that changes between identical runs."""
    steps = max(sum(o["row"]["steps"] for o in outcomes), 1)
    return {
        "wall_seconds": wall,
        "episodes_per_minute": 60.0 * len(outcomes) / wall,
        "sim_seconds_per_step": sum(o["sim_seconds"] for o in outcomes) / steps,
        "policy_seconds_per_step": sum(o["policy_seconds"] for o in outcomes) / steps,
        "workers": workers,
        "envs_per_worker": envs_per_worker,
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
    overwrite: bool = False,
    video_scale: int = 0,
    overrides: Sequence[str] = (),
    log_file: bool = False,
    envs_per_worker: int = DEFAULT_ENVS_PER_WORKER,
    told: Mapping[int, str] | None = None,
) -> EvalReport:
    """Evaluate `config.policy` on the suite `config`, write the run folder `out`, return the report.

    `workers` processes (per torchrun rank) run the episodes; `video` is "all", "failures" or "none", its
    camera images upscaled `video_scale` times (0: auto); `record` is a new dataset folder that receives every
    episode in the IO layout. `out` and `record` must be new or empty unless `overwrite`. Every input is
    checked before anything is written; `overrides` (the `--set` texts) let an error name the override rather
    than the suite file; `log_file` also logs to <out>/eval.log. `told` (seed -> instruction) fixes what the
    policy is told instead of `config.policy.instruction`'s rule: a benchmark re-runs one episode of a
    language-ablation suite with the instruction the whole suite gave it. Under torchrun every rank returns
    the same report and rank 0 writes the files (`out` and `record` must then be shared folders).
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if envs_per_worker < 1:
        raise ConfigError(f"--envs-per-worker must be >= 1, got {envs_per_worker}")
    if told is not None and set(told) != set(config.seeds):
        raise ValueError(f"told names seeds {sorted(told)}, the suite has {list(config.seeds)}")
    where = Outputs(Path(out), video, video_scale, Path(record) if record is not None else None, overwrite)
    source = str(config_file) if config_file is not None else "the EvalConfig defaults"
    job = launch_environment()
    dist = init_process_group(job, "gloo")
    choice: PolicyChoice = resolve_policy(config.policy.name, config.env_id)
    rt1 = load_rt1(choice.checkpoint, config.policy) if choice.kind == "rt1" else None
    size = (rt1.model.config.image_height, rt1.model.config.image_width) if rt1 is not None else None
    env_options = resolve_env_options(config, size, source, overrides)
    ranges, max_steps = probe_env(config, env_options, blame(source, overrides, "env_options"))
    if video != "none":
        defaults = option_defaults(config.env_id, source)
        check_video_scale(video_scale, env_options.get("image_size", defaults.get("image_size")))
    where.make(where.check(), job.is_main, dist)

    seeds = list(config.seeds)[job.rank :: job.world_size]
    workers = worker_count(workers, len(seeds), "episodes")
    threads = max(1, available_cores() // (workers * job.local_world_size)) if rt1 is not None else None
    episode_job = worker.EvalJob(
        config=config,
        policy=choice,
        env_options=env_options,
        max_steps=max_steps,
        video=video,
        out=str(where.out),
        record=str(where.record) if where.record is not None else None,
        torch_threads=threads,
        instructions=dict(told) if told is not None else told_instructions(config, env_options),
        video_scale=video_scale,
        envs_per_worker=min(envs_per_worker, max(1, -(-len(seeds) // workers))),
    )
    with log_to_file(where.out / EVAL_LOG_FILE if log_file and job.is_main else None, mode="w"):
        log.info("episode limit: %s", describe_limit(config.max_steps, max_steps))
        start = time.perf_counter()
        outcomes = run_shard(
            episode_job, seeds, workers, rt1 if workers == 1 else None, progress and job.is_main
        )
        if dist is not None:
            gathered: list[Any] = [None] * job.world_size
            dist.all_gather_object(gathered, outcomes)
            outcomes = [o for shard in gathered for o in shard]
        wall = time.perf_counter() - start
        outcomes.sort(key=lambda o: o["row"]["seed"])
        rows = [o["row"] for o in outcomes]
        results = build_results(config, source, choice, rows, ranges, max_steps)
        if told is not None:  # the suite's instruction rule was overridden: say with what
            results["policy"]["told"] = {str(seed): told[seed] for seed in sorted(told)}
        results["timing"] = timing(
            outcomes, wall, workers, job.world_size, threads, episode_job.envs_per_worker
        )
        if job.is_main:
            write_results(where.out, results)
            if where.record is not None:
                commit_recording(where.record, rows, results)
            log.info("wrote results to %s", where.out)
    return EvalReport(results, where.out)
