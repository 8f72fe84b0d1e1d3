"""`rt1-sim collect`: scripted-expert demonstrations -> a dataset in the IO layout, in parallel, resumable.

A multi-task env (one with a `task` option, PandaTabletop-v0) gets IO's `[robotname]_[taskname]` folders under
`--out`: `Panda_<task>`, or one `Panda_<family>` per family for task "mix" (`dataset_plan`), each collected by
the same single-folder `collect`, one after another.

Episode k of the dataset is the k-th kept episode in seed order (seeds `seed`, `seed+1`, ...), whatever the
number of workers: workers render and write episodes into hidden staging folders, and the parent commits them
in seed order by renaming. A kill leaves only whole episodes; re-running the same command resumes after the
last committed seed and ends with the same dataset. What determines the content is a `CollectConfig`
(`--config`, `--set`), written to the dataset as collect_config.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
from tqdm import tqdm

from envs import FAMILIES, MIX
from envs.spaces import CAMERA_NAMES
from rt1_sim.config import CollectConfig
from rt1_sim.config_loader import Shorthand, add_override_argument, load_config, shorthand_overrides
from rt1_sim.data.episodes import (
    EPISODE_DIR,
    EPISODE_META_FILE,
    RECORD_CONFIG_FILE,
    EpisodeRecorder,
    clean_incomplete,
    commit_episode,
    discard_staged,
    stage_episode,
    staging_dirs,
    task_folder_name,
    write_dataset_info,
)
from rt1_sim.env_options import checked_env, describe_limit, episode_limit, option_defaults
from rt1_sim.errors import ConfigError, DatasetError, OutputError, UserError
from rt1_sim.files import atomic_write_text
from rt1_sim.outputs import check_unlocked, check_writable, lock_folder, make_folder, prepare_folder
from rt1_sim.policy import make_expert
from rt1_sim.pool import WorkerDied, worker_count, worker_pool
from rt1_sim.rollout import rollout
from rt1_sim.run_layout import COLLECT_CONFIG_FILE

log = logging.getLogger(__name__)

# The env option that names a multi-task env's task (its value "mix", envs.MIX, draws a family per episode).
TASK_OPTION = "task"

__all__ = ["TASK_OPTION", "CollectConfig", "collect", "collect_datasets", "dataset_plan"]

# ---- worker side: one env + expert per process ----
_worker: dict[str, Any] = {}


def _init_worker(cfg: CollectConfig, root: str) -> None:
    env = gym.make(cfg.env_id, max_episode_steps=cfg.max_steps, **cfg.env_options)
    _worker.update(cfg=cfg, root=Path(root), env=env, expert=make_expert(env, noise=cfg.noise, seed=cfg.seed))


def _close_worker() -> None:
    _worker.pop("env").close()


def _collect_one(seed: int) -> dict[str, Any]:
    """Roll out the expert for one seed; stage the episode if it is to be kept. Returns its metadata: the
    env's `variation()` (family, target, splits, ...; read right after reset) and the outcome."""
    cfg, env = _worker["cfg"], _worker["env"]
    recorder = EpisodeRecorder(cfg.views)
    variation: dict[str, Any] = {}

    expert = _worker["expert"]

    def on_step(obs: dict[str, Any], info: dict[str, Any], action: Any) -> None:
        if not variation:  # the first observation: the scene as reset built it
            variation.update(env.unwrapped.variation())
        label = expert.clean_action if cfg.clean_labels and action is not None else action
        recorder(obs, info, label)

    result = rollout(env, expert, seed, on_step=on_step)
    meta = {
        **variation,
        "instruction": result.instruction,
        "seed": seed,
        "success": result.success,
        "success_once": result.success_once,
        "end_reason": result.end_reason,
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
    path = root / COLLECT_CONFIG_FILE
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
    if not overwrite and (out / COLLECT_CONFIG_FILE).is_file():
        _check_resumable(out, cfg)
        return [], True
    return prepare_folder(
        out, "--out", {COLLECT_CONFIG_FILE, RECORD_CONFIG_FILE, *CAMERA_NAMES}, overwrite
    ), False


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
        atomic_write_text(out / COLLECT_CONFIG_FILE, json.dumps(cfg.to_json(), indent=1, sort_keys=True))
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


def _check_counts(episodes: int, workers: int) -> None:
    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")


def with_episode_limit(cfg: CollectConfig) -> CollectConfig:
    """`cfg` with its step limit resolved (unset: the env's registered limit): the number the dataset's
    collect_config.json records and a resumed collection must match."""
    return dataclasses.replace(cfg, max_steps=episode_limit(cfg.env_id, cfg.max_steps, "max_steps"))


def _check_env(cfg: CollectConfig) -> None:
    """Make the env with `cfg`'s options once (and reset it), so a bad option fails before any write."""
    checked_env(cfg.env_id, cfg.env_options, "env_options", max_episode_steps=cfg.max_steps).close()


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
    _check_counts(episodes, workers)
    workers = worker_count(workers, episodes, "episodes")
    out = Path(out)
    given = cfg.max_steps
    cfg = with_episode_limit(cfg)
    _check_env(cfg)
    check_unlocked(out, "--out")  # another collect writing there: refused, naming it
    _prepare_out(out, cfg, overwrite)  # reads only: the folder rule, before the lock creates the folder
    with lock_folder(out, "--out"):  # one collection at a time in `out`, until this one ends
        return _collect_locked(out, episodes, cfg, workers, progress, overwrite, given)


def _collect_locked(
    out: Path,
    episodes: int,
    cfg: CollectConfig,
    workers: int,
    progress: bool,
    overwrite: bool,
    given: int | None,
) -> dict[str, Any]:
    """`collect` once `out` is locked: open the dataset (checked again: another run may have ended meanwhile)
    or resume it, then collect."""
    state = _open_dataset(out, episodes, cfg, overwrite)
    log.info("%s: episode limit %s", out, describe_limit(given, cfg.max_steps))
    # the expert succeeds in ~100% of episodes: far fewer means a broken setup
    max_attempts = 2 * episodes + 20
    start = time.perf_counter()
    bar = tqdm(
        total=episodes,
        initial=state.resumed,
        unit="ep",
        desc=f"collect {out.name}",
        disable=not progress,
        mininterval=0.5,
    )
    try:
        with (
            _on_worker_death(out),
            bar,
            worker_pool(workers, _init_worker, (cfg, str(out)), _close_worker) as imap,
        ):
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
    return _summary(out, state, time.perf_counter() - start, cfg.max_steps)


@contextlib.contextmanager
def _on_worker_death(out: Path) -> Iterator[None]:
    try:
        yield
    except WorkerDied as e:  # true: a collection resumes after its last committed episode
        raise e.advice(f"the episodes in {out} are kept: re-run the same command to continue") from None


# ---- multi-task collection: one IO dataset folder per task under a root ----
def dataset_plan(out: Path, cfg: CollectConfig) -> list[tuple[Path, CollectConfig]]:
    """Where each dataset goes, with its settings. An env without a `task` option (PandaPick-v0): `out` is
    the dataset. An env with one: `out` is a root and the dataset of task T is `out/Panda_T` (IO's
    `[robotname]_[taskname]`); task "mix" (envs.MIX) means one dataset per family (envs.FAMILIES), each
    collected with `env_options.task` set to that family and the same seeds."""
    options = option_defaults(cfg.env_id, "env_options")
    if TASK_OPTION not in options:
        return [(Path(out), cfg)]
    task = cfg.env_options.get(TASK_OPTION, options[TASK_OPTION])
    if not isinstance(task, str) or not task:
        raise ConfigError(f"env_options.{TASK_OPTION} must be a task name or {MIX!r}, got {task!r}")
    tasks = FAMILIES if task == MIX else (task,)
    return [
        (
            Path(out) / task_folder_name(t),
            dataclasses.replace(cfg, env_options={**cfg.env_options, TASK_OPTION: t}),
        )
        for t in tasks
    ]


def collect_datasets(
    out: Path,
    episodes: int,
    cfg: CollectConfig,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """`collect` into every folder of `dataset_plan(out, cfg)`, one after another, `episodes` episodes each.
    Every folder's settings and output folder are checked before any is written. A single dataset returns
    `collect`'s summary; several return the total, with each dataset's summary under "datasets"."""
    _check_counts(episodes, workers)
    plan = dataset_plan(out, cfg)
    if plan == [(Path(out), cfg)]:  # an env without tasks: --out is the dataset
        return collect(out, episodes, cfg, workers, progress, overwrite)
    _check_root(Path(out))
    check_unlocked(out, "--out")
    for folder, folder_cfg in plan:
        resolved = with_episode_limit(folder_cfg)
        _check_env(resolved)
        check_unlocked(folder, "--out")
        _prepare_out(folder, resolved, overwrite)  # reads only: the folder rule, resumable settings
    start = time.perf_counter()
    with lock_folder(out, "--out"):  # the root too: a second multi-task collection there is refused at once
        summaries = {
            folder.name: collect(folder, episodes, folder_cfg, workers, progress, overwrite)
            for folder, folder_cfg in plan
        }
    if len(summaries) == 1:
        return next(iter(summaries.values()))
    return _total(Path(out), summaries, time.perf_counter() - start)


def _check_root(out: Path) -> None:
    """A multi-task `--out` holds Panda_<task> datasets, never a dataset (or eval recording) of its own."""
    check_writable(out, "--out")
    own = [name for name in (COLLECT_CONFIG_FILE, RECORD_CONFIG_FILE) if (out / name).exists()]
    if own:
        raise OutputError(
            f"--out {out}: holds a dataset itself ({own[0]}); a multi-task collection writes its "
            "Panda_<task> dataset folders into a root folder: choose a new one"
        )


def _total(out: Path, summaries: dict[str, dict[str, Any]], elapsed: float) -> dict[str, Any]:
    """The summary of a multi-task collection: totals over its datasets, and each one's summary."""
    attempts = sum(s["attempts"] for s in summaries.values())
    successes = sum(s["attempts"] * (s["expert_success_rate"] or 0.0) for s in summaries.values())
    total = {
        "out": str(out),
        "datasets": summaries,
        "episodes": sum(s["episodes"] for s in summaries.values()),
        "frames": sum(s["frames"] for s in summaries.values()),
        "attempts": attempts,
        "expert_success_rate": round(successes) / attempts if attempts else None,
        "seconds": elapsed,
    }
    log.info(
        "collected %d datasets (%s) into %s: %d episodes, %d frames in all; %.1f s",
        len(summaries),
        ", ".join(summaries),
        out,
        total["episodes"],
        total["frames"],
        elapsed,
    )
    return total


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


def _summary(out: Path, state: _Progress, elapsed: float, max_steps: int) -> dict[str, Any]:
    attempts, successes, lengths = state.attempts, state.successes, state.lengths
    summary = {
        "out": str(out),
        "episodes": len(lengths),
        "frames": int(sum(lengths)),
        "attempts": attempts,
        "expert_success_rate": successes / attempts if attempts else None,
        "max_steps": max_steps,
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
SHORTHANDS = (  # the options that stand for one CollectConfig key each (rt1_sim.config_loader.Shorthand)
    Shorthand("seed", "seed"),
    Shorthand("noise", "noise"),
    Shorthand("clean_labels", "clean_labels"),
    Shorthand("keep_failures", "keep_failures"),
    Shorthand("io_names", "io_file_names"),
    Shorthand("max_steps", "max_steps"),
    Shorthand("views", "views"),
    Shorthand("image_size", "env_options.image_size"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="dataset folder: new or empty; an rt1-sim collect dataset of the same settings is resumed; "
        "anything else is refused unless --overwrite. For an env with a `task` option (PandaTabletop-v0) it "
        "is a root: the dataset of task T goes to OUT/Panda_T, and task=mix gives one Panda_<family> "
        "dataset per family",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what --out holds (a dataset of other settings, eval --record's rollouts) instead of "
        "refusing; files rt1-sim did not write are never removed",
    )
    parser.add_argument(
        "--episodes",
        type=int,
        required=True,
        help="number of episodes the dataset should hold; with task=mix, per family (N episodes in each "
        "of the Panda_<family> datasets: balanced classes for training)",
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
    shorthand.add_argument(
        "--clean-labels",
        action="store_true",
        help="record the expert's command before noise as each step's action (DART): noise moves the robot "
        "off the expert's path, the labels show the way back (--set clean_labels=true)",
    )
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


def env_option_overrides(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Each `--env-option KEY=VALUE` as the override `env_options.KEY=VALUE` it stands for."""
    if args.image_size is not None and min(args.image_size) < 1:
        raise ConfigError(f"--image-size must be two positive integers (H W), got {args.image_size}")
    overrides = []
    for text in args.env_option:
        if "=" not in text or text.startswith("="):
            raise ConfigError(f"--env-option {text!r}: expected KEY=VALUE")
        overrides.append((f"--env-option {text}", f"env_options.{text}"))
    return overrides


def config_from_args(args: argparse.Namespace) -> CollectConfig:
    """The config file, then --set, then the shorthand options, all through the one loader."""
    shorthands = [*shorthand_overrides(args, SHORTHANDS), *env_option_overrides(args)]
    return load_config(CollectConfig, args.config, [*args.overrides, *shorthands])


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    summary = collect_datasets(args.out, args.episodes, cfg, workers=args.workers, overwrite=args.overwrite)
    for each in summary.get("datasets", {}).values():  # one line per dataset, then the total
        print(json.dumps(each))
    print(json.dumps({k: v for k, v in summary.items() if k != "datasets"}))
    return 0
