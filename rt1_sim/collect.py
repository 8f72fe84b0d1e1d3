"""`rt1-sim collect`: scripted-expert demonstrations -> a dataset in the IO layout, in parallel, resumable.

Episode k of the dataset is the k-th kept episode in seed order (seeds `seed`, `seed+1`, ...), whatever the number
of workers: workers render and write episodes into hidden staging folders, and the parent commits them in seed order
by renaming. A kill leaves only whole episodes; re-running the same command resumes after the last committed seed
and ends with the same dataset.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm import tqdm

import envs  # noqa: F401  (registers PandaPick-v0)
from envs import MAX_EPISODE_STEPS
from envs.scripted_expert import ScriptedExpert
from envs.spaces import CAMERA_NAMES, EPISODE_DIR, EPISODE_META_FILE
from rt1_sim.data.episodes import (EpisodeRecorder, clean_incomplete, commit_episode, discard_staged,
                                   stage_episode, write_dataset_info)
from rt1_sim.rollout import rollout

log = logging.getLogger(__name__)
CONFIG_FILE = "collect_config.json"


@dataclass(frozen=True)
class CollectConfig:
    """What determines a dataset's content (not how fast it is made: workers are not part of it)."""

    seed: int = 0
    noise: float = 0.1  # expert action noise, fraction of the action bounds (approach and descent only)
    keep_failures: bool = False
    max_steps: int = MAX_EPISODE_STEPS
    views: tuple[str, ...] = CAMERA_NAMES
    env_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        unknown = [v for v in self.views if v not in CAMERA_NAMES]
        if not self.views or unknown:
            raise ValueError(f"views must be a non-empty subset of {list(CAMERA_NAMES)}, got {list(self.views)}")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["views"] = list(self.views)
        return d


# ---- worker side: one env + expert per process ----
_worker: dict[str, Any] = {}


def _init_worker(cfg: CollectConfig, root: str) -> None:
    env = gym.make("PandaPick-v0", max_episode_steps=cfg.max_steps, **cfg.env_options)
    _worker.update(cfg=cfg, root=Path(root), env=env, expert=ScriptedExpert(env, noise=cfg.noise, seed=cfg.seed))


def _collect_one(seed: int) -> dict[str, Any]:
    """Roll out the expert for one seed; stage the episode if it is to be kept. Returns its metadata."""
    cfg, env = _worker["cfg"], _worker["env"]
    recorder = EpisodeRecorder(cfg.views)
    result = rollout(env, _worker["expert"], seed, on_step=recorder)
    meta = {"seed": seed, "success": result.success, "success_once": result.success_once,
            "end_reason": result.end_reason, "final_cube_height": result.final_cube_height}
    kept = result.success or cfg.keep_failures
    if kept:
        stage_episode(_worker["root"], cfg.views, f"seed{seed}", recorder.episode(result.instruction, meta))
    return {**meta, "kept": kept, "length": result.steps}


# ---- parent side ----
def _check_resumable(root: Path, cfg: CollectConfig) -> None:
    """Refuse to extend a dataset that was collected with different settings."""
    path = root / CONFIG_FILE
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); remove it or collect into a new folder") from None
    diff = {k: (saved.get(k), v) for k, v in cfg.to_json().items() if saved.get(k) != v}
    if diff:
        details = ", ".join(f"{k}: {old!r} on disk vs {new!r} now" for k, (old, new) in diff.items())
        raise ValueError(f"{root} was collected with other settings ({details}); use a new --out folder")


def collect(out: Path, episodes: int, cfg: CollectConfig, workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Collect until `out` holds `episodes` episodes; resumes whatever is already there. Returns a summary."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_resumable(out, cfg)
    (out / CONFIG_FILE).write_text(json.dumps(cfg.to_json(), indent=1, sort_keys=True))
    views = cfg.views
    whole = clean_incomplete(out, views)
    if whole != list(range(len(whole))):
        raise ValueError(f"{out}: episode folders are not numbered 0..{len(whole) - 1} ({whole[:5]}...)")
    metas = [json.loads((out / views[0] / EPISODE_DIR.format(i) / EPISODE_META_FILE).read_text()) for i in whole]
    lengths = [m["steps"] for m in metas]
    next_seed = max((m["seed"] for m in metas), default=cfg.seed - 1) + 1
    if len(whole) > episodes:
        raise ValueError(f"{out} already holds {len(whole)} episodes, more than the {episodes} asked for")
    write_dataset_info(out, views, lengths)
    max_attempts = 2 * episodes + 20  # the expert succeeds in ~100% of episodes: far fewer means a broken setup
    attempts = successes = 0
    start = time.perf_counter()
    bar = tqdm(total=episodes, initial=len(whole), unit="ep", desc="collect", disable=not progress, mininterval=0.5)
    pool = mp.get_context("spawn").Pool(workers, _init_worker, (cfg, str(out))) if workers > 1 else None
    if pool is None:
        _init_worker(cfg, str(out))
    try:
        while len(lengths) < episodes:
            if attempts >= max_attempts:
                raise RuntimeError(f"only {len(lengths) - len(whole)} of {attempts} expert episodes were kept; "
                                   f"check the env options {cfg.env_options}")
            batch = range(next_seed, next_seed + max(2 * workers, episodes - len(lengths)))
            results = pool.imap(_collect_one, batch) if pool else map(_collect_one, batch)
            for r in results:  # in seed order
                staged = {v: out / v / f".tmp_seed{r['seed']}" for v in views}
                if len(lengths) >= episodes or attempts >= max_attempts:
                    if r["kept"]:
                        discard_staged(staged)
                    continue
                attempts += 1
                successes += r["success"]
                next_seed = r["seed"] + 1
                if r["kept"]:
                    commit_episode(out, views, staged, len(lengths))
                    lengths.append(r["length"])
                    write_dataset_info(out, views, lengths)
                    bar.update(1)
                bar.set_postfix(success=f"{successes / attempts:.1%}", refresh=False)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
        else:
            _worker["env"].close()
        clean_incomplete(out, views)
    elapsed = time.perf_counter() - start
    summary = {"out": str(out), "episodes": len(lengths), "frames": int(sum(lengths)), "attempts": attempts,
               "expert_success_rate": successes / attempts if attempts else None, "seconds": elapsed}
    log.info("collected %d episodes (%d frames) into %s; this run: %d attempts, expert success %s, %.1f s",
             len(lengths), sum(lengths), out, attempts,
             f"{successes / attempts:.1%}" if attempts else "n/a", elapsed)
    return summary


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string such as cube_color=random


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (created, or resumed if it exists)")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes the dataset should hold")
    parser.add_argument("--workers", type=int, default=1, help="parallel env processes (does not change the data)")
    parser.add_argument("--seed", type=int, default=0, help="first env seed; episodes use consecutive seeds")
    parser.add_argument("--noise", type=float, default=CollectConfig.noise,
                        help="expert action noise as a fraction of the action bounds")
    parser.add_argument("--keep-failures", action="store_true", help="also keep episodes the expert failed")
    parser.add_argument("--max-steps", type=int, default=MAX_EPISODE_STEPS, help="episode step limit")
    parser.add_argument("--views", nargs="+", default=list(CAMERA_NAMES), help="cameras to record")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="camera image size")
    parser.add_argument("--env-option", type=_parse_option, action="append", default=[], metavar="KEY=VALUE",
                        help="PandaPickEnv option, value as JSON (e.g. num_distractors=2, x_range=[0.4,0.7])")


def run(args: argparse.Namespace) -> int:
    env_options = dict(args.env_option)
    if args.image_size:
        env_options["image_size"] = list(args.image_size)
    cfg = CollectConfig(seed=args.seed, noise=args.noise, keep_failures=args.keep_failures, max_steps=args.max_steps,
                        views=tuple(args.views), env_options=env_options)
    summary = collect(args.out, args.episodes, cfg, workers=args.workers)
    print(json.dumps(summary))
    return 0
