"""The run folder and what is checked before anything is written: the eval suite, the checkpoint to resume and
the settings it may not change, the folder (new, empty, or the resumed run's own) and its lock."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from rt1_sim.checkpoint import MODEL_KEYS, load_checkpoint
from rt1_sim.config import EvalConfig, TrainConfig
from rt1_sim.config_loader import config_to_dict, load_config
from rt1_sim.distributed import Distributed
from rt1_sim.errors import ConfigError, OutputError
from rt1_sim.files import atomic_write_text
from rt1_sim.logs import log_to_file
from rt1_sim.model.film_efficientnet import FiLMEfficientNet
from rt1_sim.outputs import (
    FileLock,
    check_unlocked,
    check_writable,
    lock_folder,
    make_folder,
    prepare_folder,
)
from rt1_sim.run_layout import (
    RESULTS_FILE,
    TRAIN_CONFIG_FILE,
    TRAIN_LOG_FILE,
    TRAIN_RUN_ENTRIES,
    eval_folder,
)
from rt1_sim.train.metrics import MetricsLog

if TYPE_CHECKING:
    from rt1_sim.train.trainer import Trainer


RUN_FOLDER = "run folder (log_dir/run_name)"  # how errors name it


# Keys a resumed run may change: they set how long, where and how visibly it runs, never the data order, the
# train/validation split, the model or the optimisation (those are refused: the checkpoint's state follows
# them).
RESUME_MAY_CHANGE = (
    "mode",
    "device",
    "log_dir",
    "run_name",
    "epochs",
    "max_steps",
    "resume",
    "resume_from_checkpoint",
    "world_size",
    "dist_url",
    "val_interval",
    "num_val_threads",
    "num_eval_threads",
    "num_workers",
    "imagenet_weights",
    "checkpoint_every_steps",
    "precise_bn_batches",
    "inference_crop",
    "freeze_batchnorm_at_step",  # within the limits `check_batchnorm_freeze` sets
    "log_every_steps",
    "tensorboard",
    "progress",
    "deterministic",
    "torch_threads",
    "eval_config",
    "eval_every_epochs",
    "eval_every_steps",
    "eval_episodes",
    "scheduler_configs.verbose",
)


# Keys a training checkpoint adds to the model's (rt1_sim.checkpoint.MODEL_KEYS). "step" counts optimizer
# steps done; "epoch" / "epoch_step" say where the next step is (that epoch, after that many of its batches).
TRAIN_KEYS = ("optimizer", "scheduler", "step", "epoch", "epoch_step", "rng", "config")


def run_folder(cfg: TrainConfig, config_path: str | Path | None) -> Path:
    """log_dir/run_name; without run_name a resumed run continues in its checkpoint's folder, a new one gets
    log_dir/<config stem>-<start time>."""
    if cfg.run_name:
        return Path(cfg.log_dir) / cfg.run_name
    if cfg.resume:
        return Path(cfg.resume_from_checkpoint).parent
    stem = Path(config_path).stem if config_path else "train"
    return Path(cfg.log_dir) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def broadcast(value: Any, job: Distributed) -> Any:
    if not job.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@dataclass
class Preflight:
    """What `preflight` checked: the eval suite, the checkpoint state to resume, the run folder and what
    --overwrite removes from it."""

    suite: EvalConfig | None
    state: dict[str, Any] | None
    run_dir: Path
    remove: list[Path]
    overwrite: bool = False
    final_eval_only: bool = False  # the training is complete; its final evaluation may be left


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def check_resume_config(saved: dict[str, Any], cfg: TrainConfig, path: str) -> None:
    """Refuse to resume with settings that change the data order, split, model or optimisation: one error
    listing every differing key, and the keys a resumed run may change."""
    now, before = _flat(config_to_dict(cfg.resolved())), _flat(saved)
    diff = [k for k in now if k not in RESUME_MAY_CHANGE and k in before and before[k] != now[k]]
    if diff:
        details = "; ".join(f"{k}: {before[k]!r} in the checkpoint, {now[k]!r} now" for k in diff)
        raise ConfigError(
            f"resume from {path}: the run was trained with other settings ({details}); these fix the data "
            "order, split, model or optimisation, so a resumed run keeps them. A resumed run may change "
            f"only {', '.join(RESUME_MAY_CHANGE)}; start a new run to change the others"
        )


def check_batchnorm_freeze(saved: dict[str, Any], cfg: TrainConfig, step: int, path: str) -> None:
    """freeze_batchnorm_at_step may be set or moved on resume while it lies at the checkpoint's step or
    later; once the checkpoint has trained with frozen statistics it stays as it was."""
    before, now = saved.get("freeze_batchnorm_at_step"), cfg.freeze_batchnorm_at_step
    if before is not None and before < step and now != before:
        raise ConfigError(
            f"resume from {path}: the run has trained with BatchNorm frozen since step {before} "
            f"(freeze_batchnorm_at_step), and the checkpoint is at step {step}; a resumed run keeps "
            f"freeze_batchnorm_at_step {before}, got {now}"
        )
    if now is not None and now < step and before != now:
        raise ConfigError(
            f"resume from {path}: freeze_batchnorm_at_step {now} lies before the checkpoint's step {step}, "
            f"which trained with batch statistics; set it to {step} or later"
        )


def _check_suite(cfg: TrainConfig) -> EvalConfig | None:
    """The eval suite with its env options checked (by making its env once), before any data is loaded."""
    if not cfg.eval_config:
        return None
    from rt1_sim.eval.harness import check_suite  # the simulator is imported only when the run evaluates

    suite = load_config(EvalConfig, cfg.eval_config)
    if cfg.eval_episodes is not None:
        suite = dataclasses.replace(suite, episodes=cfg.eval_episodes)
    network = cfg.network
    check_suite(suite, (network.image_height, network.image_width), f"eval_config {cfg.eval_config}")
    return suite


def _check_imagenet_weights(cfg: TrainConfig, source: str) -> None:
    """A new run's imagenet_weights must load into its image encoder: checked on a throwaway encoder before
    any data is read (`build` seeds torch afterwards, so this draws from no stream the run uses)."""
    if not cfg.imagenet_weights or cfg.resume:
        return
    try:
        FiLMEfficientNet(cfg.network).load_imagenet_weights(cfg.imagenet_weights)
    except (OSError, RuntimeError, ValueError) as e:
        raise ConfigError(f"{source}: imagenet_weights {e}") from None


def load_resume_state(cfg: TrainConfig, device: torch.device, source: str) -> dict[str, Any] | None:
    """The checkpoint to resume, refused when its settings differ (`_check_left` says what is left to do)."""
    if not cfg.resume:
        return None
    path = cfg.resume_from_checkpoint
    if not path:
        raise ConfigError(f"{source}: resume is true but resume_from_checkpoint is empty")
    state = load_checkpoint(path, required=MODEL_KEYS + TRAIN_KEYS, map_location=device)
    check_resume_config(state["config"], cfg, path)
    check_batchnorm_freeze(state["config"], cfg, state["step"], path)
    return state


def training_complete(cfg: TrainConfig, state: dict[str, Any]) -> bool:
    return state["epoch"] >= cfg.epochs or (cfg.max_steps is not None and state["step"] >= cfg.max_steps)


def nothing_left(cfg: TrainConfig, state: dict[str, Any], evaluated: Path | None = None) -> ConfigError:
    done = f", and its final evaluation is in {evaluated}" if evaluated is not None else ""
    return ConfigError(
        f"resume from {cfg.resume_from_checkpoint}: nothing left to train (the checkpoint is at step "
        f"{state['step']}, epoch {state['epoch']} of epochs={cfg.epochs}, max_steps={cfg.max_steps}{done}); "
        "raise epochs or max_steps"
    )


def _check_left(cfg: TrainConfig, state: dict[str, Any], suite: EvalConfig | None, run_dir: Path) -> bool:
    """Whether only the final closed-loop evaluation is left: the checkpoint ends the training (at its end,
    not past it) and the run continues in its folder, where that evaluation did not finish (a kill during it;
    `pending_eval`, once the data is read, places one inside an epoch). A run with nothing left to do is
    refused."""
    if not training_complete(cfg, state):
        return False
    past_end = state["epoch"] > cfg.epochs or (cfg.max_steps is not None and state["step"] > cfg.max_steps)
    own_folder = run_dir.resolve() == Path(cfg.resume_from_checkpoint).resolve().parent
    if suite is None or past_end or not own_folder:
        raise nothing_left(cfg, state)
    if state["epoch_step"] == 0:  # after a whole epoch: its evaluation folder is known without the data
        evaluated = eval_folder(run_dir, float(state["epoch"]))
        if (evaluated / RESULTS_FILE).is_file():
            raise nothing_left(cfg, state, evaluated)
    return True


def _check_run_folder(cfg: TrainConfig, run_dir: Path, overwrite: bool) -> list[Path]:
    """A new run needs an empty (or new) folder unless `overwrite`; a resumed run continues in its
    checkpoint's folder, or starts another one under the same rule."""
    if cfg.resume and run_dir.resolve() == Path(cfg.resume_from_checkpoint).resolve().parent:
        check_writable(run_dir, RUN_FOLDER)
        return []
    return prepare_folder(run_dir, RUN_FOLDER, TRAIN_RUN_ENTRIES, overwrite)


def preflight(
    cfg: TrainConfig, device: torch.device, job: Distributed, config_path: str | Path | None, overwrite: bool
) -> Preflight:
    """Every check of the user's input that does not need the data: the eval suite, the checkpoint to resume
    and its settings, the run folder. Nothing is written; rank 0 checks the folder and every rank raises."""
    source = str(config_path) if config_path else "the TrainConfig"
    suite = _check_suite(cfg)
    _check_imagenet_weights(cfg, source)
    state = load_resume_state(cfg, device, source)
    run_dir = Path(broadcast(str(run_folder(cfg, config_path)), job))
    final_eval_only = state is not None and _check_left(cfg, state, suite, run_dir)
    remove, problem = [], None
    if job.is_main:
        try:
            check_unlocked(run_dir, RUN_FOLDER)  # another run (the same run_name, or resumed) writing there
            remove = _check_run_folder(cfg, run_dir, overwrite)
        except OutputError as e:
            problem = str(e)
    problem = broadcast(problem, job)
    if problem is not None:
        raise OutputError(problem)
    return Preflight(suite, state, run_dir, remove, overwrite, final_eval_only)


def take_run_folder(cfg: TrainConfig, checked: Preflight) -> tuple[str | None, FileLock | None]:
    """Rank 0 locks the run folder `preflight` checked, checks it again (a run may have ended there since) and
    removes what --overwrite replaces; returns (the refusal, for every rank to raise | None, the lock)."""
    lock, problem = None, None
    try:
        lock = lock_folder(checked.run_dir, RUN_FOLDER)  # a second run into this folder is refused here
        make_folder(checked.run_dir, RUN_FOLDER, _check_run_folder(cfg, checked.run_dir, checked.overwrite))
    except OutputError as e:
        problem = str(e)
        if lock is not None:
            lock.release()
    return problem, lock


@contextlib.contextmanager
def run_folder_open(t: Trainer, checked: Preflight) -> Iterator[None]:
    """Hold the run folder `preflight` checked for the duration of the run (rank 0: locked, what --overwrite
    replaces removed; resolved config, train.log, metrics.csv)."""
    cfg, job = t.cfg, t.job
    t.run_dir = checked.run_dir
    problem, lock = take_run_folder(cfg, checked) if job.is_main else (None, None)
    problem = broadcast(problem, job)
    if problem is not None:
        raise OutputError(problem)
    with contextlib.ExitStack() as held:
        if lock is not None:
            held.enter_context(lock)  # released when the run ends; the kernel drops it if the process dies
        with log_to_file(t.run_dir / TRAIN_LOG_FILE if job.is_main else None):
            if job.is_main:
                atomic_write_text(
                    t.run_dir / TRAIN_CONFIG_FILE, json.dumps(config_to_dict(cfg.resolved()), indent=1) + "\n"
                )
                t.metrics_log = MetricsLog(t.run_dir, t.state.step if cfg.resume else None, cfg.tensorboard)
            try:
                yield
            finally:
                if t.metrics_log is not None:
                    t.metrics_log.close()
