"""`rt1-sim eval`: closed-loop evaluation of any Policy on a suite of fixed-seed PandaPick scenes.

A suite (`eval_configs/*.json`, an `EvalConfig`) fixes the env options, the seeds (episode k uses seed
`seed_start + k`, so two policies meet identical scenes) and the episode limit. Episodes run in `workers`
spawned processes, each with one env and one policy, through the one `rollout` loop; stateful policy
randomness is seeded per episode, so per-episode results depend only on the seeds, never on the number of
workers. Under `torchrun` the episodes are sharded by rank and gathered over gloo: the same results as one
process.

The run folder gets `results.json` (aggregate success rate with a Wilson 95% interval, per-variation
breakdown, per-episode rows, config, checkpoint and versions; timings only in its `timing` block),
`episodes.csv`, `eval.log` and mp4 videos (front | wrist, with step and success overlaid). Every file is
written atomically. torch is imported only for RT-1 checkpoints (or under torchrun).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import logging
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pandas as pd
import pybullet
from PIL import Image, ImageDraw
from tqdm import tqdm

import envs
import rt1_sim
from envs.scripted_expert import ScriptedExpert
from envs.spaces import CAMERA_NAMES, EPISODE_DIR
from rt1_sim.config import ConfigError, EvalConfig, add_override_argument, config_to_dict, load_config
from rt1_sim.data.episodes import (
    EpisodeRecorder,
    clean_incomplete,
    commit_episode,
    stage_episode,
    staging_dirs,
    write_dataset_info,
)
from rt1_sim.policy import Policy, RandomPolicy
from rt1_sim.rollout import rollout
from rt1_sim.stats import wilson_interval

log = logging.getLogger(__name__)

ENV_ID = "PandaPick-v0"
REPO_ROOT = Path(__file__).resolve().parent.parent
BUNDLED_CHECKPOINT = REPO_ROOT / "assets" / "checkpoints" / "rt1_cpu.pt"
DEFAULT_SUITE = REPO_ROOT / "eval_configs" / "default.json"
POLICY_KEYWORDS = ("auto", "scripted", "random")  # anything else names an RT-1 checkpoint
VIDEO_MODES = ("all", "failures", "none")
RESULTS_FILE, EPISODES_FILE, LOG_FILE, VIDEO_DIR = "results.json", "episodes.csv", "eval.log", "videos"
# Written into a --record dataset, as collect writes collect_config.json.
RECORD_CONFIG_FILE = "eval_config.json"
EPISODE_COLUMNS = (
    "seed",
    "success",
    "success_once",
    "steps",
    "final_cube_height",
    "end_reason",
    "instruction",
    "cube_color",
    "num_distractors",
    "cube_size",
    "cube_x",
    "cube_y",
    "video",
)
BREAKDOWN_BINS = 3  # equal-width bins over the suite's range, for continuous variations (position, size)
RENDERER = "pybullet ER_TINY_RENDERER (CPU)"  # what envs/sim.py renders every camera with
CAPTION_HEIGHT = 14  # pixels above the images for the overlaid text (PIL's default font is ~11 px tall)
MACRO_BLOCK = 16  # H.264 block size: frames are padded to multiples of it so imageio never rescales them


# ---------------------------------------------------------------- small pure pieces
def video_frame(obs: dict[str, np.ndarray], step: int, success: bool) -> np.ndarray:
    """Front and wrist images side by side under a caption with the step number and success, padded to whole
    H.264 macro blocks: (H', W', 3) uint8."""
    images = np.concatenate([obs[name] for name in CAMERA_NAMES], axis=1)  # (H, V * W, 3)
    h, w = images.shape[:2]
    height = -(-(h + CAPTION_HEIGHT) // MACRO_BLOCK) * MACRO_BLOCK
    width = -(-w // MACRO_BLOCK) * MACRO_BLOCK
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[height - h :, :w] = images
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    draw.text((2, 1), f"step {step}", fill=(255, 255, 255))
    if success:
        draw.text((w // 2, 1), "success", fill=(64, 255, 64))
    return np.asarray(picture)


def write_video(path: Path, frames: Sequence[np.ndarray], fps: float) -> None:
    """Encode frames as an H.264 mp4 (imageio's ffmpeg plugin), atomically: a temp file, then os.replace."""
    path = Path(path)
    tmp = path.with_name(
        f".{path.stem}.{os.getpid()}.tmp{path.suffix}"
    )  # ffmpeg picks the container by suffix
    try:
        with imageio.get_writer(tmp, format="FFMPEG", fps=fps, macro_block_size=MACRO_BLOCK) as writer:
            for frame in frames:
                writer.append_data(frame)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def rate_block(successes: int, episodes: int) -> dict[str, Any]:
    """{episodes, successes, success_rate, ci95_low, ci95_high} with the Wilson 95% interval."""
    low, high = wilson_interval(successes, episodes)
    return {
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes,
        "ci95_low": low,
        "ci95_high": high,
    }


def bin_of(value: float, low: float, high: float, bins: int = BREAKDOWN_BINS) -> tuple[int, str]:
    """(index, "[a, b]") of the one of `bins` equal-width bins of [low, high] that holds `value` (clamped);
    (0, "a") when the range is a point."""
    if high <= low:
        return 0, f"{low:.3f}"
    i = min(max(int((value - low) / (high - low) * bins), 0), bins - 1)
    step = (high - low) / bins
    return i, f"[{low + i * step:.3f}, {low + (i + 1) * step:.3f}]"


def breakdown(rows: Sequence[dict[str, Any]], ranges: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Success per variation: cube colour and distractor count by value; cube size and x/y position binned
    over the suite's `ranges` ({"cube_size": (lo, hi), "cube_x": ..., "cube_y": ...}), in value order."""
    keys: dict[str, Callable[[dict[str, Any]], tuple[Any, str]]] = {
        "cube_color": lambda r: (r["cube_color"], r["cube_color"]),
        "num_distractors": lambda r: (r["num_distractors"], str(r["num_distractors"])),
        **{name: (lambda r, name=name: bin_of(r[name], *ranges[name])) for name in ranges},
    }
    out: dict[str, Any] = {}
    for name, key in keys.items():
        groups: dict[tuple[Any, str], list[bool]] = {}
        for r in rows:
            groups.setdefault(key(r), []).append(r["success"])
        out[name] = {label: rate_block(sum(s), len(s)) for (_, label), s in sorted(groups.items())}
    return out


def versions() -> dict[str, Any]:
    """Software that can change results (rendering drifts between simulator versions); never imports torch."""

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {
        "rt1_sim": rt1_sim.__version__,
        "python": platform.python_version(),
        "pybullet": version("pybullet"),
        "pybullet_api": pybullet.getAPIVersion(),
        "renderer": RENDERER,
        "torch": version("torch"),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _episode_seed(policy_seed: int, env_seed: int) -> int:
    """A policy RNG seed for one episode, from the suite's policy seed and the episode's env seed."""
    return int(np.random.SeedSequence([policy_seed, env_seed]).generate_state(1)[0])


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# ---------------------------------------------------------------- policies
@dataclass(frozen=True)
class PolicyChoice:
    """A resolved policy: `kind` is "scripted", "random" or "rt1" (with its checkpoint)."""

    kind: str
    checkpoint: Path | None = None

    @property
    def label(self) -> str:
        return self.checkpoint.stem if self.checkpoint is not None else self.kind


def resolve_policy(name: str) -> PolicyChoice:
    """ "auto" -> the bundled RT-1 checkpoint if it exists, else the scripted expert (with a warning);
    "scripted" | "random"; anything else is the path of an RT-1 checkpoint."""
    if name == "auto":
        if BUNDLED_CHECKPOINT.is_file():
            return PolicyChoice("rt1", BUNDLED_CHECKPOINT)
        log.warning(
            "no bundled RT-1 checkpoint at %s: evaluating the scripted expert instead", BUNDLED_CHECKPOINT
        )
        return PolicyChoice("scripted")
    if name in POLICY_KEYWORDS:
        return PolicyChoice(name)
    return PolicyChoice("rt1", Path(name))


def _load_rt1(checkpoint: Path, device: str) -> Policy:
    """RT1Policy from a checkpoint; torch is imported here and only here (a bad file: CheckpointError)."""
    from rt1_sim.policy import RT1Policy

    return RT1Policy.from_checkpoint(checkpoint, device=device)


# ---------------------------------------------------------------- worker side: one env + one policy each
@dataclass(frozen=True)
class _Job:
    """Everything a worker needs (picklable): resolved env options, policy, what to write where."""

    config: EvalConfig
    policy: PolicyChoice
    env_options: dict[str, Any]
    max_steps: int
    video: str
    out: str
    record: str | None
    torch_threads: int | None


_worker: dict[str, Any] = {}


def _init_worker(job: _Job, rt1: Policy | None = None) -> None:
    if job.torch_threads is not None:  # W workers share the cores instead of each taking all of them
        import torch

        torch.set_num_threads(job.torch_threads)
    env = gym.make(ENV_ID, max_episode_steps=job.max_steps, **job.env_options)
    _worker.update(job=job, env=env, policy_for=_policy_for_episodes(job, env, rt1))


def _policy_for_episodes(job: _Job, env: gym.Env, rt1: Policy | None) -> Callable[[int], Policy]:
    """episode seed -> the policy for that episode. The random policy is re-seeded from each episode's seed
    (its RNG would otherwise carry over between whichever episodes a worker happens to run); the expert seeds
    its noise per episode itself, and RT-1 is deterministic (argmax tokens), its history cleared by reset().
    """
    options = job.config.policy
    if job.policy.kind == "random":
        return lambda seed: RandomPolicy(seed=_episode_seed(options.seed, seed))
    if job.policy.kind == "scripted":
        shared: Policy = ScriptedExpert(env, noise=options.expert_noise, seed=options.seed)
    else:
        shared = rt1 if rt1 is not None else _load_rt1(job.policy.checkpoint, options.device)
    return lambda seed: shared


def _variation(env: envs.PandaPickEnv) -> dict[str, Any]:
    """The scene variation drawn for the current episode (read right after reset)."""
    state = env.privileged_state()
    return {
        "cube_color": env.cube_color_name,
        "num_distractors": env.distractor_count,
        "cube_size": float(state["cube_size"]),
        "cube_x": float(state["cube_pos"][0]),
        "cube_y": float(state["cube_pos"][1]),
    }


def _run_episode(seed: int) -> dict[str, Any]:
    """One episode: its row (deterministic) and its timings; writes its video and stages its recording."""
    job, env = _worker["job"], _worker["env"]
    variation: dict[str, Any] = {}
    frames: list[np.ndarray] = []
    recorder = EpisodeRecorder(CAMERA_NAMES) if job.record else None

    def on_step(obs: dict[str, np.ndarray], info: dict[str, Any], action: np.ndarray | None) -> None:
        if not variation:
            variation.update(_variation(env.unwrapped))
        if job.video != "none":
            frames.append(video_frame(obs, len(frames), bool(info["is_success"])))
        if recorder is not None:
            recorder(obs, info, action)

    result = rollout(env, _worker["policy_for"](seed), seed, on_step=on_step)
    video = None
    if job.video == "all" or (job.video == "failures" and not result.success):
        video = f"{VIDEO_DIR}/seed_{seed}.mp4"
        write_video(Path(job.out) / video, frames, fps=env.unwrapped.control_hz)
    row = {
        "seed": seed,
        "success": result.success,
        "success_once": result.success_once,
        "steps": result.steps,
        "final_cube_height": result.final_cube_height,
        "end_reason": result.end_reason,
        "instruction": result.instruction,
        **variation,
        "video": video,
    }
    if recorder is not None:
        meta = {k: row[k] for k in ("seed", "success", "success_once", "end_reason", "final_cube_height")}
        stage_episode(
            Path(job.record),
            CAMERA_NAMES,
            f"seed{seed}",
            recorder.episode(result.instruction, {**meta, "policy": job.policy.label}),
        )
    return {"row": row, "sim_seconds": result.sim_seconds, "policy_seconds": result.policy_seconds}


# ---------------------------------------------------------------- parent side
@dataclass(frozen=True)
class EvalReport:
    """What `evaluate` measured; `results` is exactly the content of results.json."""

    results: dict[str, Any]
    out: Path

    @property
    def success_rate(self) -> float:
        return self.results["success_rate"]

    @property
    def per_episode(self) -> list[dict[str, Any]]:
        return self.results["per_episode"]

    def summary(self) -> str:
        """One line a person can paste: suite, policy, successes, rate with its interval, speed."""
        r, t = self.results, self.results["timing"]
        return (
            f"{r['config']['name']} suite, policy {r['policy']['label']}: {r['successes']}/{r['episodes']} "
            f"success = {r['success_rate']:.1%} (Wilson 95% CI {r['ci95_low']:.1%}-{r['ci95_high']:.1%}), "
            f"success_once {r['success_once']:.1%}, {r['mean_steps']:.1f} mean steps; "
            f"{t['episodes_per_minute']:.1f} episodes/min with {t['workers']} worker(s) x "
            f"{t['world_size']} process(es); {self.out / RESULTS_FILE}"
        )


def _process_group() -> Any:
    """torch.distributed with the gloo group joined, under torchrun (WORLD_SIZE > 1); otherwise None."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist


def _prepare_record(record: Path, rank: int, dist: Any) -> None:
    """Refuse a folder that already holds episodes; rank 0 clears a killed run's staging leftovers while the
    other ranks wait (they would otherwise be clearing what rank 0 is already staging)."""
    prefix = EPISODE_DIR.split("{")[0]
    if any(path.is_dir() for view in CAMERA_NAMES for path in (record / view).glob(f"{prefix}*")):
        raise ValueError(f"--record {record}: already holds episodes; record into a new folder")
    if rank == 0:
        clean_incomplete(record, CAMERA_NAMES)
    if dist is not None:
        dist.barrier()


def _check_env_options(options: dict[str, Any], source: str) -> None:
    # terminate_on_action comes from policy.terminate_on_action (EvalConfig refuses it here); render_mode
    # is not a scene variation
    excluded = ("self", "render_mode", "terminate_on_action")
    valid = [p for p in inspect.signature(envs.PandaPickEnv.__init__).parameters if p not in excluded]
    for key in options:
        if key not in valid:
            raise ConfigError(f"{source}: unknown key 'env_options.{key}'; PandaPickEnv options: {valid}")


def _env_options(config: EvalConfig, rt1: Policy | None, source: str) -> dict[str, Any]:
    """The suite's env options, the terminate switch and, for RT-1, the image size the model was built for."""
    _check_env_options(config.env_options, source)
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


def _run_shard(
    job: _Job, seeds: Sequence[int], workers: int, rt1: Policy | None, progress: bool
) -> list[dict[str, Any]]:
    """Run `seeds` in seed order with `workers` processes (1: in this process)."""
    outcomes = []
    successes = 0
    bar = tqdm(total=len(seeds), unit="ep", desc="eval", disable=not progress, mininterval=0.5)
    pool = mp.get_context("spawn").Pool(workers, _init_worker, (job,)) if workers > 1 else None
    if pool is None:
        _init_worker(job, rt1)
    try:
        for outcome in pool.imap(_run_episode, seeds) if pool else map(_run_episode, seeds):
            outcomes.append(outcome)
            successes += outcome["row"]["success"]
            bar.update(1)
            bar.set_postfix(success=f"{successes / len(outcomes):.1%}", refresh=False)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        else:
            _worker.pop("env").close()
    return outcomes


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
        raise ValueError(f"workers must be >= 1, got {workers}")
    if video not in VIDEO_MODES:
        raise ValueError(f"video must be one of {VIDEO_MODES}, got {video!r}")
    source = str(config_file) if config_file is not None else "the EvalConfig defaults"
    dist = _process_group()
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist is not None else (0, 1)
    choice = resolve_policy(config.policy.name)
    rt1 = _load_rt1(choice.checkpoint, config.policy.device) if choice.kind == "rt1" else None
    env_options = _env_options(config, rt1, source)
    try:  # bad option values fail here, before any worker starts
        probe = gym.make(ENV_ID, **env_options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: env_options: {e}") from None
    ranges = {
        "cube_size": probe.unwrapped.cube_size_range,
        "cube_x": probe.unwrapped.x_range,
        "cube_y": probe.unwrapped.y_range,
    }
    max_steps = config.max_steps or probe.spec.max_episode_steps
    probe.close()

    out = Path(out)
    (out / VIDEO_DIR if video != "none" else out).mkdir(parents=True, exist_ok=True)
    if record is not None:
        record = Path(record)
        _prepare_record(record, rank, dist)
    seeds = list(config.seeds)[rank::world]
    workers = min(workers, max(len(seeds), 1))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads = max(1, _available_cores() // (workers * local_world)) if rt1 is not None else None
    job = _Job(
        config=config,
        policy=choice,
        env_options=env_options,
        max_steps=max_steps,
        video=video,
        out=str(out),
        record=str(record) if record is not None else None,
        torch_threads=threads,
    )
    start = time.perf_counter()
    outcomes = _run_shard(job, seeds, workers, rt1 if workers == 1 else None, progress and rank == 0)
    if dist is not None:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, outcomes)
        outcomes = [o for shard in gathered for o in shard]
    wall = time.perf_counter() - start
    outcomes.sort(key=lambda o: o["row"]["seed"])
    rows = [o["row"] for o in outcomes]

    results = _results(config, source, choice, rows, ranges)
    steps = sum(r["steps"] for r in rows)
    results["timing"] = {  # the only part that changes between identical runs
        "wall_seconds": wall,
        "episodes_per_minute": 60.0 * len(rows) / wall,
        "sim_seconds_per_step": sum(o["sim_seconds"] for o in outcomes) / max(steps, 1),
        "policy_seconds_per_step": sum(o["policy_seconds"] for o in outcomes) / max(steps, 1),
        "workers": workers,
        "world_size": world,
        "torch_threads_per_worker": threads,
    }
    report = EvalReport(results, out)
    if rank == 0:
        atomic_write_text(out / RESULTS_FILE, json.dumps(results, indent=1) + "\n")
        atomic_write_text(
            out / EPISODES_FILE,
            pd.DataFrame(rows, columns=list(EPISODE_COLUMNS)).to_csv(index=False, float_format="%.6g"),
        )
        if record is not None:
            _commit_recording(record, rows, results)
        log.info("wrote %s and %s to %s", RESULTS_FILE, EPISODES_FILE, out)
    return report


def _results(
    config: EvalConfig,
    source: str,
    choice: PolicyChoice,
    rows: list[dict[str, Any]],
    ranges: dict[str, tuple[float, float]],
) -> dict[str, Any]:
    """results.json without its timing block: identical for identical suites, whatever the workers."""
    n = len(rows)
    successes = sum(r["success"] for r in rows)
    steps = [r["steps"] for r in rows]
    rate = rate_block(successes, n)
    aggregated = {
        **rate,
        "pc_success": 100.0 * rate["success_rate"],
        "success_at_end": rate["success_rate"],
        "success_once": sum(r["success_once"] for r in rows) / n,
        "mean_steps": float(np.mean(steps)),
        "median_steps": float(np.median(steps)),
    }
    checkpoint = choice.checkpoint
    policy = {
        "name": config.policy.name,
        "kind": choice.kind,
        "label": choice.label,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_sha256": _sha256(checkpoint) if checkpoint is not None else None,
    }
    return {
        "success_rate": aggregated["success_rate"],
        "ci95_low": aggregated["ci95_low"],
        "ci95_high": aggregated["ci95_high"],
        "episodes": n,
        "successes": successes,
        "success_at_end": aggregated["success_at_end"],
        "success_once": aggregated["success_once"],
        "mean_steps": aggregated["mean_steps"],
        "median_steps": aggregated["median_steps"],
        "aggregated": aggregated,
        "per_variation": breakdown(rows, ranges),
        "policy": policy,
        "config": config_to_dict(config),
        "config_file": source,
        "versions": versions(),
        "per_episode": rows,
    }


def _commit_recording(record: Path, rows: Sequence[dict[str, Any]], results: dict[str, Any]) -> None:
    """Make the staged episodes visible as data_000, data_001, ... in seed order, then list their lengths."""
    for index, row in enumerate(rows):
        commit_episode(record, CAMERA_NAMES, staging_dirs(record, CAMERA_NAMES, f"seed{row['seed']}"), index)
    write_dataset_info(record, CAMERA_NAMES, [row["steps"] for row in rows])
    meta = {k: results[k] for k in ("config", "config_file", "policy", "versions")}
    atomic_write_text(record / RECORD_CONFIG_FILE, json.dumps(meta, indent=1) + "\n")


# ---------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    default_suite = DEFAULT_SUITE if DEFAULT_SUITE.is_file() else None
    parser.add_argument(
        "--config",
        type=Path,
        default=default_suite,
        help=f"eval suite JSON (default: {default_suite or 'the EvalConfig defaults'})",
    )
    parser.add_argument(
        "--policy",
        help="scripted | random | auto | PATH.pt (an RT-1 checkpoint); default: the "
        "suite's policy.name ('auto': the bundled RT-1 checkpoint, else the scripted expert)",
    )
    parser.add_argument("--episodes", type=int, help="number of episodes (default: the suite's)")
    parser.add_argument("--seed-start", type=int, help="env seed of the first episode (default: the suite's)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel env processes per torchrun process (default: the available cores); "
        "does not change the results",
    )
    parser.add_argument("--video", choices=VIDEO_MODES, default="failures", help="which episodes get an mp4")
    parser.add_argument("--record", type=Path, help="also save every episode as a dataset (IO layout) here")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/eval/<suite>_<policy>)")
    add_override_argument(parser, "env_options.num_distractors=2")


def _leave_process_group() -> None:
    """Destroy the gloo group `evaluate` joined under torchrun (torch is loaded then; never imported here)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run(args: argparse.Namespace) -> int:
    rank = int(os.environ.get("RANK", "0"))
    handler = None
    try:
        config = load_config(EvalConfig, args.config, args.overrides)
        shortcuts = {
            "policy": dataclasses.replace(config.policy, name=args.policy) if args.policy else None,
            "episodes": args.episodes,
            "seed_start": args.seed_start,
        }
        config = dataclasses.replace(config, **{k: v for k, v in shortcuts.items() if v is not None})
        out = args.out or Path("runs") / "eval" / f"{config.name}_{Path(config.policy.name).stem}"
        workers = args.workers
        if workers is None:
            workers = max(1, _available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(out / LOG_FILE, mode="w")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(handler)
        report = evaluate(
            config, out, workers=workers, video=args.video, record=args.record, config_file=args.config
        )
    except ValueError as e:  # ConfigError, CheckpointError, bad env option values: the message says it all
        print(f"rt1-sim eval: error: {e}", file=sys.stderr)
        return 2
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        _leave_process_group()
    if rank == 0:
        print(report.summary())
    return 0
