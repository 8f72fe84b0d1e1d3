"""`rt1-sim collect`: scripted-expert demonstrations -> a dataset in the IO layout, in parallel, resumable.

Episode k of the dataset is the k-th kept episode in seed order (seeds `seed`, `seed+1`, ...), whatever the
number of workers: workers render and write episodes into hidden staging folders, and the parent commits them
in seed order by renaming. A kill leaves only whole episodes; re-running the same command resumes after the
last committed seed and ends with the same dataset. What determines the content is a `CollectConfig`
(`--config`, `--set`), written to the dataset as collect_config.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm import tqdm

import envs  # noqa: F401  (registers the envs)
from envs.spaces import CAMERA_NAMES, EPISODE_DIR, EPISODE_META_FILE
from rt1_sim.config import CollectConfig, add_override_argument, load_config
from rt1_sim.data.episodes import (
    RECORD_CONFIG_FILE,
    EpisodeRecorder,
    clean_incomplete,
    commit_episode,
    discard_staged,
    stage_episode,
    staging_dirs,
    write_dataset_info,
)
from rt1_sim.env_options import checked_env
from rt1_sim.errors import ConfigError, DatasetError, OutputError, UserError
from rt1_sim.files import atomic_write_text
from rt1_sim.outputs import check_writable, make_folder, prepare_folder
from rt1_sim.policy import make_expert
from rt1_sim.pool import worker_pool
from rt1_sim.rollout import rollout

log = logging.getLogger(__name__)
CONFIG_FILE = "collect_config.json"

__all__ = ["CONFIG_FILE", "CollectConfig", "collect"]

# ---- worker side: one env + expert per process ----
_worker: dict[str, Any] = {}


def _init_worker(cfg: CollectConfig, root: str) -> None:
    env = gym.make(cfg.env_id, max_episode_steps=cfg.max_steps, **cfg.env_options)
    _worker.update(cfg=cfg, root=Path(root), env=env, expert=make_expert(env, noise=cfg.noise, seed=cfg.seed))


def _close_worker() -> None:
    _worker.pop("env").close()


def _collect_one(seed: int) -> dict[str, Any]:
    """Roll out the expert for one seed; stage the episode if it is to be kept. Returns its metadata."""
    cfg, env = _worker["cfg"], _worker["env"]
    recorder = EpisodeRecorder(cfg.views)
    result = rollout(env, _worker["expert"], seed, on_step=recorder)
    meta = {
        "seed": seed,
        "success": result.success,
        "success_once": result.success_once,
        "end_reason": result.end_reason,
        "final_cube_height": result.final_cube_height,
    }
    kept = result.success or cfg.keep_failures
    if kept:
        episode = recorder.episode(result.instruction, meta)
        stage_episode(_worker["root"], cfg.views, f"seed{seed}", episode, io_names=cfg.io_file_names)
    return {**meta, "kept": kept, "length": result.steps}


# ---- parent side ----
def _check_resumable(root: Path, cfg: CollectConfig) -> None:
    """Refuse to extend a dataset that was collected with different settings (a key the file lacks was
    written before the key existed: it has its default, e.g. env_id)."""
    path = root / CONFIG_FILE
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OutputError(f"{path}: not valid JSON ({e}); remove it or collect into a new folder") from None
    if not isinstance(saved, dict):
        raise OutputError(f"{path}: expected a JSON object; remove it or collect into a new folder")
    on_disk = {k: saved.get(k, default) for k, default in CollectConfig().to_json().items()}
    diff = {k: (on_disk[k], v) for k, v in cfg.to_json().items() if on_disk[k] != v}
    if diff:
        details = ", ".join(f"{k}: {old!r} on disk vs {new!r} now" for k, (old, new) in diff.items())
        raise OutputError(
            f"{root} was collected with other settings ({details}); use a new --out folder, or --overwrite "
            "to replace it"
        )


def _prepare_out(out: Path, cfg: CollectConfig, overwrite: bool) -> tuple[list[Path], bool]:
    """What --overwrite removes, and whether `out` is a dataset of the same settings to resume; reads only.
    A folder that holds anything but an rt1-sim collect dataset is refused (eval --record's recordings too:
    expert episodes are never appended to a policy's rollouts)."""
    check_writable(out, "--out")
    if not overwrite and (out / RECORD_CONFIG_FILE).exists():
        raise OutputError(
            f"--out {out}: holds rollouts recorded by `rt1-sim eval --record` ({RECORD_CONFIG_FILE}); "
            "collect into a new folder, or pass --overwrite to replace them"
        )
    if not overwrite and (out / CONFIG_FILE).is_file():
        _check_resumable(out, cfg)
        return [], True
    return prepare_folder(out, "--out", {CONFIG_FILE, RECORD_CONFIG_FILE, *CAMERA_NAMES}, overwrite), False


def _read_meta(path: Path) -> dict[str, Any]:
    """A committed episode's episode.json (seed and length), or a DatasetError naming the file."""
    advice = "remove its episode folder from every view to resume"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; {advice}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e}); {advice}") from None
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), int) for k in ("seed", "steps")):
        raise DatasetError(f"{path}: expected integer 'seed' and 'steps'; {advice}")
    return meta


@dataclass
class _Progress:
    """The dataset so far (lengths of the committed episodes) and this run's expert attempts."""

    lengths: list[int]
    next_seed: int
    resumed: int  # episodes already there when this run started
    attempts: int = 0
    successes: int = 0
    committed: list[int] = field(default_factory=list)


def _open_dataset(out: Path, episodes: int, cfg: CollectConfig, overwrite: bool) -> _Progress:
    """Create or resume `out` once every check has passed: write its settings first (a folder killed at any
    later point is one this command resumes), clear staging leftovers, read what is already committed."""
    remove, resuming = _prepare_out(out, cfg, overwrite)
    make_folder(out, "--out", remove)
    if not resuming:
        atomic_write_text(out / CONFIG_FILE, json.dumps(cfg.to_json(), indent=1, sort_keys=True))
    whole = clean_incomplete(out, cfg.views)
    if whole != list(range(len(whole))):
        raise DatasetError(f"{out}: episode folders are not numbered 0..{len(whole) - 1} ({whole[:5]}...)")
    if len(whole) > episodes:
        raise OutputError(
            f"--out {out} already holds {len(whole)} episodes, more than the {episodes} asked for"
        )
    first = out / cfg.views[0]
    metas = [_read_meta(first / EPISODE_DIR.format(i) / EPISODE_META_FILE) for i in whole]
    lengths = [m["steps"] for m in metas]
    write_dataset_info(out, cfg.views, lengths)
    next_seed = max((m["seed"] for m in metas), default=cfg.seed - 1) + 1
    return _Progress(lengths=lengths, next_seed=next_seed, resumed=len(whole))


def collect(
    out: Path,
    episodes: int,
    cfg: CollectConfig,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Collect until `out` holds `episodes` episodes; resumes a dataset of the same settings, refuses any
    other non-empty folder unless `overwrite`. Every input is checked (the env options by making the env
    once, here) before anything is written. Returns a summary."""
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    out = Path(out)
    checked_env(cfg.env_id, cfg.env_options, "env_options", max_episode_steps=cfg.max_steps).close()
    state = _open_dataset(out, episodes, cfg, overwrite)
    # the expert succeeds in ~100% of episodes: far fewer means a broken setup
    max_attempts = 2 * episodes + 20
    start = time.perf_counter()
    bar = tqdm(
        total=episodes,
        initial=state.resumed,
        unit="ep",
        desc="collect",
        disable=not progress,
        mininterval=0.5,
    )
    try:
        with bar, worker_pool(workers, _init_worker, (cfg, str(out)), _close_worker) as imap:
            while len(state.lengths) < episodes:
                if state.attempts >= max_attempts:
                    raise UserError(
                        f"only {len(state.lengths) - state.resumed} of {state.attempts} expert episodes were "
                        f"kept; check the env options {cfg.env_options}"
                    )
                batch = range(
                    state.next_seed, state.next_seed + max(2 * workers, episodes - len(state.lengths))
                )
                for r in imap(_collect_one, batch):  # in seed order
                    _commit_in_order(out, cfg, r, state, episodes, max_attempts, bar)
    finally:
        clean_incomplete(out, cfg.views)
    return _summary(out, state, time.perf_counter() - start)


def _commit_in_order(
    out: Path,
    cfg: CollectConfig,
    r: dict[str, Any],
    state: _Progress,
    episodes: int,
    max_attempts: int,
    bar: tqdm,
) -> None:
    """Count one attempt and commit its episode if kept; attempts beyond what is needed are discarded."""
    staged = staging_dirs(out, cfg.views, f"seed{r['seed']}")
    if len(state.lengths) >= episodes or state.attempts >= max_attempts:
        if r["kept"]:
            discard_staged(staged)
        return
    state.attempts += 1
    state.successes += r["success"]
    state.next_seed = r["seed"] + 1
    if r["kept"]:
        commit_episode(out, cfg.views, staged, len(state.lengths))
        state.lengths.append(r["length"])
        write_dataset_info(out, cfg.views, state.lengths)
        bar.update(1)
    bar.set_postfix(success=f"{state.successes / state.attempts:.1%}", refresh=False)


def _summary(out: Path, state: _Progress, elapsed: float) -> dict[str, Any]:
    attempts, successes, lengths = state.attempts, state.successes, state.lengths
    summary = {
        "out": str(out),
        "episodes": len(lengths),
        "frames": int(sum(lengths)),
        "attempts": attempts,
        "expert_success_rate": successes / attempts if attempts else None,
        "seconds": elapsed,
    }
    log.info(
        "collected %d episodes (%d frames) into %s; this run: %d attempts, expert success %s, %.1f s",
        len(lengths),
        sum(lengths),
        out,
        attempts,
        f"{successes / attempts:.1%}" if attempts else "n/a",
        elapsed,
    )
    return summary


# ---- command line ----
# Shorthand options, each the same as a `--set` of its key (applied after the config file and --set).
SHORTHANDS = {
    "seed": "seed",
    "noise": "noise",
    "max_steps": "max_steps",
    "views": "views",
    "image_size": "env_options.image_size",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="dataset folder: new or empty; an rt1-sim collect dataset of the same settings is resumed; "
        "anything else is refused unless --overwrite",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what --out holds (a dataset of other settings, eval --record's rollouts) instead of "
        "refusing; files rt1-sim did not write are never removed",
    )
    parser.add_argument(
        "--episodes", type=int, required=True, help="number of episodes the dataset should hold"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel env processes (does not change the data)"
    )
    parser.add_argument(
        "--config", type=Path, help="CollectConfig JSON (default: the CollectConfig defaults)"
    )
    add_override_argument(parser, "env_options.num_distractors=2, noise=0.05")
    shorthand = parser.add_argument_group("shorthands", "each is the same as --set of the key it names")
    shorthand.add_argument(
        "--seed", type=int, help="first env seed, episodes use consecutive seeds (--set seed=S)"
    )
    shorthand.add_argument("--noise", type=float, help="expert action noise, fraction of the action bounds")
    shorthand.add_argument("--keep-failures", action="store_true", help="also keep failed expert episodes")
    shorthand.add_argument(
        "--io-names",
        action="store_true",
        help="name the CSVs result.csv / result_raw.csv, as IO's published loader reads them "
        "(--set io_file_names=true; rt1-sim reads both spellings)",
    )
    shorthand.add_argument("--max-steps", type=int, help="episode step limit (--set max_steps=N)")
    shorthand.add_argument("--views", nargs="+", help="cameras to record (--set 'views=[\"front\"]')")
    shorthand.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="camera image size (env_options.image_size)",
    )
    shorthand.add_argument(
        "--env-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env option, value as JSON: the same as --set env_options.KEY=VALUE (e.g. num_distractors=2)",
    )


def shorthand_overrides(args: argparse.Namespace) -> list[str]:
    """The shorthand options as `--set` overrides, in a fixed order."""
    overrides = [
        f"{key}={json.dumps(getattr(args, name))}"
        for name, key in SHORTHANDS.items()
        if getattr(args, name) is not None
    ]
    if args.keep_failures:
        overrides.append("keep_failures=true")
    if args.io_names:
        overrides.append("io_file_names=true")
    if args.image_size is not None and min(args.image_size) < 1:
        raise ConfigError(f"--image-size must be two positive integers (H W), got {args.image_size}")
    for text in args.env_option:
        if "=" not in text or text.startswith("="):
            raise ConfigError(f"--env-option {text!r}: expected KEY=VALUE")
        overrides.append(f"env_options.{text}")
    return overrides


def run(args: argparse.Namespace) -> int:
    cfg = load_config(CollectConfig, args.config, [*args.overrides, *shorthand_overrides(args)])
    summary = collect(args.out, args.episodes, cfg, workers=args.workers, overwrite=args.overwrite)
    print(json.dumps(summary))
    return 0
