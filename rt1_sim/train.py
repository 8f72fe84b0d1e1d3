"""`rt1-sim train`: the RT-1 training loop.

    rt1-sim train --config train_configs/cpu.json [--set key.path=value ...]
    torchrun --nproc_per_node=K -m rt1_sim.train --config ...        (DDP: gloo on CPU, NCCL on GPU)
    python -m torch.distributed.launch --nproc_per_node=K --use_env -m rt1_sim.train --config ...  (IO's)

The loop, as `train` reads: `build` everything from the config, `resume` from a checkpoint if asked, then for
every epoch `train_step` over its batches and, at the end of the epoch (or when `max_steps` stops it early),
one `end_of_period`: validate, save checkpoint_best when the validation loss improved, save checkpoint_last,
evaluate it closed-loop. Inside an epoch `mid_epoch_period` writes periodic checkpoints and, every
`eval_every_steps` steps of the epoch, evaluates checkpoint_last too. The counters a checkpoint saves live
in one small `TrainState`.

AdamW + CosineAnnealingWarmRestarts (stepped per epoch as in IO, or per step), gradient clipping, autocast on
GPU, validation every `val_interval` epochs (cross-entropy, per-dimension token accuracy, action MAE in action
units), atomic checkpoints from which a run resumes at the next step with the same data order, augmentation
and RNG streams. Everything goes into the run folder `log_dir/<run_name>/`: the resolved config, `train.log`,
`metrics.csv` (and TensorBoard events when installed), checkpoints. Only rank 0 writes files.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from envs.spaces import ACTION_SLICES, ACTION_TABLE, RESULTS_COLUMNS
from rt1_sim import distributed
from rt1_sim.checkpoint import (
    MODEL_KEYS,
    CheckpointError,
    check_action_table,
    load_checkpoint,
    save_checkpoint,
)
from rt1_sim.config import EvalConfig, TrainConfig, add_override_argument, config_to_dict, load_config
from rt1_sim.data.episodes import DatasetError, expand_dataset_roots
from rt1_sim.data.frame_cache import frame_loader
from rt1_sim.data.sources import list_episodes
from rt1_sim.data.windows import (
    RandomCrop,
    WindowConcat,
    collate_windows,
    concat_windows,
    split_episodes,
)
from rt1_sim.distributed import Distributed, launch_environment
from rt1_sim.errors import ConfigError, OutputError
from rt1_sim.files import atomic_write_text, disk_full_as_error
from rt1_sim.logs import log_to_file
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.film_efficientnet import FiLMEfficientNet
from rt1_sim.model.instruction import (
    InstructionEncoder,
    encoder_settings,
    make_instruction_encoder,
    recorded_encoder,
)
from rt1_sim.model.rt1 import RT1, checkpoint_state, model_config
from rt1_sim.model.state_head import STATE_NAMES, RT1WithStateHead, StateHead
from rt1_sim.outputs import (
    FileLock,
    check_unlocked,
    check_writable,
    lock_folder,
    make_folder,
    prepare_folder,
)
from rt1_sim.preprocess import images_to_tensor

log = logging.getLogger(__name__)

CONFIG_FILE = "train_config.json"
LOG_FILE = "train.log"
RUN_FOLDER = "run folder (log_dir/run_name)"  # how errors name it
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
LAST_CHECKPOINT = "checkpoint_last.pt"
BEST_CHECKPOINT = "checkpoint_best.pt"
EVAL_DIR = "eval"
# What a run writes into its folder (rt1-sim plot adds learning_curve.png): what --overwrite may replace.
RUN_ENTRIES = (
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    TENSORBOARD_DIR,
    LAST_CHECKPOINT,
    BEST_CHECKPOINT,
    EVAL_DIR,
    "learning_curve.png",
)
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
# With the state head (aux_state_weight > 0): its validation error in metres per position, and its loss.
STATE_COLUMNS = [f"val/state_error_m/{name}" for name in STATE_NAMES]
# Per-dimension names are the dataset's columns (ee_command_position_x, ...), per-block ones the table's.
VAL_COLUMNS = (
    ["val/loss", "val/token_acc", "val/loss_blank_instruction", "val/loss_other_images"]
    + [f"val/token_acc/{c}" for c in RESULTS_COLUMNS]
    + [f"val/action_mae/{d.name}" for d in ACTION_TABLE]
    + STATE_COLUMNS
)
TRAIN_COLUMNS = ["train/loss", "train/token_acc", "train/lr", "train/samples_per_s", "train/state_loss"]
EVAL_COLUMNS = ["eval/success_rate", "eval/ci95_low", "eval/ci95_high"]
METRIC_COLUMNS = ["step", "epoch", "time_s", *TRAIN_COLUMNS, *VAL_COLUMNS, *EVAL_COLUMNS]


def select_device(name: str, job: Distributed) -> torch.device:
    """The one device of this process: "auto" takes CUDA when present; under DDP "cuda" is cuda:LOCAL_RANK."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f'device {name!r} asked for, but torch sees no CUDA GPU; use "device": "cpu"')
    if name.startswith("cuda:"):
        if job.enabled:
            raise ConfigError(
                f'device {name!r}: under torchrun use "cuda" (each process takes cuda:LOCAL_RANK)'
            )
        return torch.device(name)
    return torch.device("cuda", job.local_rank if job.enabled else 0)


def init_process_group(job: Distributed, device: torch.device) -> None:
    """Join the job's process group: NCCL for GPUs, gloo on CPU (env:// rendezvous, as torchrun sets up)."""
    if job.enabled and device.type == "cuda":
        torch.cuda.set_device(device)
    distributed.init_process_group(job, "nccl" if device.type == "cuda" else "gloo")


# ---------------------------------------------------------------- data
@dataclass
class Data:
    """The training and validation windows (every dataset folder's, concatenated), with the instruction
    encoder and the most common training instruction."""

    train: WindowConcat
    val: WindowConcat | None
    instruction_encoder: InstructionEncoder
    default_instruction: str
    val_folders: tuple[str, ...] = ()  # the dataset folder of each part of `val`, in order


def resolve_data_path(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with a dataset root in data_path spelled out as its `Panda_*` folders (a list); a single dataset
    folder stays the string it was. What the run folder and checkpoints record, and what resume compares.
    Reads folder names only: `data_folders` checks the folders when the data is loaded."""
    if not cfg.data_path:
        return cfg
    given = [cfg.data_path] if isinstance(cfg.data_path, str) else list(cfg.data_path)
    folders = expand_dataset_roots(given, cfg.cam_view)
    if folders == given:
        return cfg
    return dataclasses.replace(cfg, data_path=tuple(folders))


def data_folders(cfg: TrainConfig, source: str) -> list[Path]:
    """The dataset folders of `cfg.data_path` (roots expanded): a missing or empty one is a ConfigError naming
    the key and the folder."""
    if not cfg.data_path:
        raise ConfigError(f"{source}: data_path is missing (the dataset folder, IO layout)")
    resolved = resolve_data_path(cfg).data_path
    single = isinstance(resolved, str)
    folders = [Path(resolved)] if single else [Path(p) for p in resolved]
    seen: dict[Path, int] = {}
    for i, folder in enumerate(folders):  # one folder twice (./d and d, a link, a root and its Panda_*)
        first = seen.setdefault(folder.resolve(), i)
        if first != i:
            raise ConfigError(
                f"{source}: data_path[{first}] {resolved[first]} and data_path[{i}] {resolved[i]} are the "
                "same folder; list each dataset folder once (it would be trained on twice)"
            )
    for i, folder in enumerate(folders):
        key = "data_path" if single else f"data_path[{i}]"
        if not folder.is_dir():
            raise ConfigError(f"{source}: {key} {folder}: dataset folder does not exist")
        try:
            empty = not any(folder.iterdir())
        except OSError as e:  # a folder we may not read
            raise ConfigError(f"{source}: {key} {folder}: cannot read it ({e.strerror or e})") from None
        if empty:
            raise ConfigError(
                f"{source}: {key} {folder}: the folder is empty (no dataset, no Panda_* folders)"
            )
    return folders


def _split(folder: Path, cfg: TrainConfig, several: bool) -> tuple[list[int], list[int]]:
    """IO's seeded split of one dataset folder's episodes (errors name the folder when there are several)."""
    lengths = list_episodes(folder, cfg.cam_view)
    try:
        return split_episodes(len(lengths), cfg.num_train_episode, cfg.num_val_episode, cfg.seed)
    except DatasetError as e:
        raise DatasetError(f"{folder}: {e}" if several else str(e)) from None


def build_data(cfg: TrainConfig, source: str, job: Distributed) -> Data:
    """Split the episodes of every dataset folder of `cfg.data_path` on its own, decode them once (one frame
    cache per folder), and concatenate the folders' train / val window datasets."""
    if cfg.using_proprioception:
        raise ConfigError(
            f"{source}: using_proprioception is true, but the IO dataset layout has no end-effector "
            "pose or gripper per frame (results_raw.csv holds joints and the object pose only)"
        )
    folders = data_folders(cfg, source)
    splits = [_split(folder, cfg, len(folders) > 1) for folder in folders]
    network = cfg.network
    size = (network.image_height, network.image_width)
    encoder = make_instruction_encoder(cfg.instruction_encoder, network.language_embedding_size)
    common = {
        "time_sequence_length": cfg.time_sequence_length,
        "predicting_next_ts": cfg.predicting_next_ts,
        "tokenizer": ActionTokenizer(network.vocab_size),
        "instruction_encoder": encoder,
        "seed": cfg.seed,
    }
    show = cfg.progress and job.is_main
    train_caches, val_caches, val_folders = [], [], []
    for folder, (train_ids, val_ids) in zip(folders, splits):
        # The disk cache is opened (built by rank 0 while the other ranks wait) once, for both splits.
        load_frames = frame_loader(cfg.frame_cache, folder, cfg.cam_view, size, cfg.cache_dir, show)
        train_caches.append(load_frames(train_ids))
        if val_ids:
            val_caches.append(load_frames(val_ids))
            val_folders.append(folder.name)
    augment = RandomCrop(size, network.crop_size) if cfg.augment else None
    train = concat_windows(train_caches, augment=augment, **common)
    val = concat_windows(val_caches, **common) if val_caches else None
    if len(train) == 0:
        raise ConfigError(
            f"{source}: the training episodes give no window (episodes of one frame with predicting_next_ts)"
        )
    _log_data(folders, splits, train, val, cfg.cam_view, size)
    return Data(train, val, encoder, train.default_instruction(), tuple(val_folders))


def _log_data(
    folders: list[Path],
    splits: list[tuple[list[int], list[int]]],
    train: WindowConcat,
    val: WindowConcat | None,
    views: tuple[str, ...],
    size: tuple[int, int],
) -> None:
    """One line per dataset folder (episodes and windows of each split), and the total when several."""
    val_parts = iter(val.datasets if val else [])
    for folder, (train_ids, val_ids), part in zip(folders, splits, train.datasets):
        log.info(
            "data %s: %d train episodes (%d windows), %d val episodes (%d windows), %s at %dx%d",
            folder,
            len(train_ids),
            len(part),
            len(val_ids),
            len(next(val_parts)) if val_ids else 0,
            "+".join(views),
            *size,
        )
    if len(folders) > 1:
        log.info(
            "data: %d dataset folders, %d train episodes (%d windows), %d val episodes (%d windows)",
            len(folders),
            sum(len(t) for t, _ in splits),
            len(train),
            sum(len(v) for _, v in splits),
            len(val) if val else 0,
        )


def epoch_batches(sampler: DistributedSampler, batch_size: int, epoch: int) -> list[list[int]]:
    """This rank's batches of `epoch`: DistributedSampler's seeded shuffle (set_epoch), cut into batches."""
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def make_loader(
    dataset: WindowConcat, batches: list[list[int]], cfg: TrainConfig, device: torch.device, seed: int
) -> DataLoader:
    """A DataLoader over given batches; `seed` feeds the workers' base seed, so the global torch RNG (dropout)
    is not consumed by starting an epoch and a resumed run draws the same numbers."""
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=cfg.num_workers,
        collate_fn=collate_windows,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A collated window batch on `device`, images as float (B, T, V, 3, H, W) in [0, 1]."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "images"}
    out["images"] = images_to_tensor(batch["images"], device)
    return out


# ---------------------------------------------------------------- metrics
class MetricsLog:
    """metrics.csv (fixed columns, namespaced keys) and TensorBoard scalars when installed; rank 0 only."""

    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool) -> None:
        self.path = run_dir / METRICS_FILE
        with disk_full_as_error(self.path):
            if resume_step is not None and self.path.is_file():
                # Rows logged after the checkpoint we resume from are redone: drop them.
                old = pd.read_csv(self.path)
                # (a run from before a column existed gets that column empty)
                kept = old[old["step"] <= resume_step].reindex(columns=METRIC_COLUMNS)
                kept.to_csv(self.path, index=False)
            new = not self.path.is_file()
            self.file = open(self.path, "a", newline="")  # noqa: SIM115  (kept open; close() closes it)
            self.csv = csv.DictWriter(self.file, fieldnames=METRIC_COLUMNS)
            if new:
                self.csv.writeheader()
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("TensorBoard is not installed: metrics go to %s only", self.path)
            else:
                self.writer = SummaryWriter(str(run_dir / TENSORBOARD_DIR), purge_step=resume_step)

    def write(self, row: dict[str, Any]) -> None:
        with disk_full_as_error(self.path):
            self.csv.writerow(row)
            self.file.flush()
        if self.writer is not None:
            for key, value in row.items():
                if "/" in key and value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self.writer.add_scalar(key, value, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------- steps
def token_hits(
    tokenizer: ActionTokenizer, logits: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Correct greedy tokens per action dimension (A,) over the valid steps, and the number of valid steps."""
    predicted = tokenizer.logits_to_tokens(logits[valid].float())  # (M, A)
    return (predicted == tokens[valid]).sum(0), int(valid.sum())


@torch.no_grad()
def validate(
    model: RT1,
    dataset: WindowConcat,
    cfg: TrainConfig,
    device: torch.device,
    job: Distributed,
    autocast: Any,
    blank_instruction: torch.Tensor,
    head: StateHead | None = None,
) -> tuple[dict[str, float], list[float]]:
    """Cross-entropy (mean per token), per-dimension token accuracy and per-block action MAE (in the action
    table's units: metres, radians, ...) over every valid step of the validation windows, split over ranks;
    the cross-entropy of each part of `dataset` (each dataset folder) alone; and the two probes of
    `probe_losses` (`blank_instruction` is the embedding of the empty instruction); with the state `head`,
    its mean error in metres for each position (`val/state_error_m/<name>`) where the data logs it."""
    was_training = model.training
    model.eval()
    indices = list(range(job.rank, len(dataset), job.world_size))  # every window exactly once over all ranks
    batches = [indices[i : i + cfg.batch_size] for i in range(0, len(indices), cfg.batch_size)]
    sums = torch.zeros(
        2 + 2 * len(RESULTS_COLUMNS), dtype=torch.float64, device=device
    )  # ce, steps, hits, abs
    a = len(RESULTS_COLUMNS)
    parts = torch.zeros(len(dataset.datasets), 2, dtype=torch.float64, device=device)  # ce, steps per part
    part_of = torch.as_tensor(np.searchsorted(dataset.cumulative_sizes, range(len(dataset)), side="right"))
    probes = torch.zeros(3, dtype=torch.float64, device=device)  # ce blank, ce other images, their steps
    errors = torch.zeros(2, len(STATE_NAMES), dtype=torch.float64, device=device)  # metres, steps
    for indices_in_batch, batch in zip(batches, make_loader(dataset, batches, cfg, device, cfg.seed)):
        batch = to_device(batch, device)
        with autocast():
            tokens = model.encode_window(batch["images"], batch["instruction"], batch["valid"])
            logits = model.forward_tokens(tokens, batch["valid"])
            if head is not None:
                errors += state_errors(head, tokens, batch)
        probes += probe_losses(model, batch, blank_instruction.to(device), autocast)
        logits, valid, tokens = logits.float(), batch["valid"], batch["tokens"]
        sums[0] += F.cross_entropy(logits[valid].flatten(0, 1), tokens[valid].flatten(), reduction="sum")
        ce = F.cross_entropy(logits.flatten(0, 2), tokens.flatten(), reduction="none").view(tokens.shape)
        per_window = torch.stack([(ce.sum(-1) * valid).sum(-1), valid.sum(-1)], dim=1).double()
        parts.index_add_(0, part_of[indices_in_batch].to(device), per_window)
        hits, steps = token_hits(model.tokenizer, logits, tokens, valid)
        sums[1] += steps
        sums[2 : 2 + a] += hits
        predicted = model.tokenizer.logits_to_actions(logits[valid])  # (M, A) in action units
        sums[2 + a :] += (predicted - batch["actions"][valid]).abs().sum(0)
    if job.enabled:
        dist.all_reduce(sums)
        dist.all_reduce(parts)
        dist.all_reduce(probes)
        dist.all_reduce(errors)
    model.train(was_training)
    steps = sums[1].item()
    if steps == 0:
        return {}, []
    acc, mae = (sums[2 : 2 + a] / steps).tolist(), (sums[2 + a :] / steps).tolist()
    metrics = {"val/loss": sums[0].item() / (steps * a), "val/token_acc": float(np.mean(acc))}
    metrics["val/loss_blank_instruction"] = probes[0].item() / (steps * a)
    if probes[2] > 0:
        metrics["val/loss_other_images"] = probes[1].item() / (probes[2].item() * a)
    metrics.update({f"val/token_acc/{c}": v for c, v in zip(RESULTS_COLUMNS, acc)})
    for d in ACTION_TABLE:
        metrics[f"val/action_mae/{d.name}"] = float(np.mean(mae[ACTION_SLICES[d.name]]))
    for name, (metres, n) in zip(STATE_NAMES, errors.T.tolist()):
        if n > 0:
            metrics[f"val/state_error_m/{name}"] = metres / n
    return metrics, [ce / max(n, 1.0) / a for ce, n in parts.tolist()]


def state_errors(head: StateHead, tokens: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(2, len(STATE_NAMES)): the summed Euclidean error (metres) of each predicted position over the valid
    steps where the data logs it, and the number of those steps."""
    predicted = head.metres(head(tokens).float()).unflatten(-1, (len(STATE_NAMES), 3))  # (B, T, K, 3)
    states = batch["states"].unflatten(-1, (len(STATE_NAMES), 3))
    logged = batch["state_mask"].unflatten(-1, (len(STATE_NAMES), 3)).all(-1) & batch["valid"][..., None]
    error = (predicted - states).norm(dim=-1)  # (B, T, K)
    return torch.stack([(error * logged).sum((0, 1)), logged.sum((0, 1))]).double()


def probe_losses(
    model: RT1, batch: dict[str, torch.Tensor], blank_instruction: torch.Tensor, autocast: Any
) -> torch.Tensor:
    """Does the model read its instruction, does it look at its cameras? The batch's summed cross-entropy
    over its valid steps when every window is told the empty instruction, then when every window sees the
    next window's images (the batch rolled by one; skipped for a batch of one), and that second sum's step
    count. A probe's loss equals `val/loss` when the model ignores that input, and rises when it uses it."""
    images, instruction, valid = batch["images"], batch["instruction"], batch["valid"]
    targets = batch["tokens"][valid].flatten()
    sums = torch.zeros(3, dtype=torch.float64, device=valid.device)
    probes = [(0, images, blank_instruction.expand_as(instruction))]
    if len(images) > 1:
        probes.append((1, images.roll(1, dims=0), instruction))
    for slot, probe_images, probe_instruction in probes:
        with autocast():
            logits, _ = model(probe_images, probe_instruction, valid)
        sums[slot] = F.cross_entropy(logits.float()[valid].flatten(0, 1), targets, reduction="sum")
    if len(images) > 1:
        sums[2] = valid.sum()
    return sums


# ---------------------------------------------------------------- checkpoints
def rng_states(job: Distributed, device: torch.device) -> dict[str, list[torch.Tensor]]:
    """Every rank's torch (and CUDA) generator state, gathered in rank order (a collective under DDP)."""
    local = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        local["cuda"] = torch.cuda.get_rng_state(device)
    gathered = [local]
    if job.enabled:
        gathered = [None] * job.world_size
        dist.all_gather_object(gathered, local)
    return {key: [g[key] for g in gathered] for key in local}


def restore_rng(rng: dict[str, list[torch.Tensor]], job: Distributed, device: torch.device) -> None:
    if len(rng["torch"]) != job.world_size:
        log.warning(
            "checkpoint was written by %d process(es), this run has %d: RNG streams restart from the seed",
            len(rng["torch"]),
            job.world_size,
        )
        return
    torch.set_rng_state(rng["torch"][job.rank].cpu())
    if device.type == "cuda" and "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"][job.rank].cpu(), device)


def check_compatible(state: dict[str, Any], expected: dict[str, Any], path: str) -> None:
    """The checkpoint must hold the network this config builds, trained with today's action table."""
    check_action_table(state, path)
    saved = {**state["model_config"], "instruction_encoder": recorded_encoder(state["model_config"])}
    keys = ("network", "cam_view", "time_sequence_length", "using_proprioception", "instruction_encoder")
    diff = [k for k in keys if saved.get(k) != expected[k]]
    if diff:
        details = "; ".join(
            f"{k}: {saved.get(k)} in the checkpoint, {expected[k]} in the config" for k in diff
        )
        raise CheckpointError(f"checkpoint {path}: another model than the config's ({details})")


# ---------------------------------------------------------------- run folder
def run_folder(cfg: TrainConfig, config_path: str | Path | None) -> Path:
    """log_dir/run_name; without run_name a resumed run continues in its checkpoint's folder, a new one gets
    log_dir/<config stem>-<start time>."""
    if cfg.run_name:
        return Path(cfg.log_dir) / cfg.run_name
    if cfg.resume:
        return Path(cfg.resume_from_checkpoint).parent
    stem = Path(config_path).stem if config_path else "train"
    return Path(cfg.log_dir) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def _broadcast(value: Any, job: Distributed) -> Any:
    if not job.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---------------------------------------------------------------- checks before anything is written
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


def _check_resume(cfg: TrainConfig, device: torch.device, source: str) -> dict[str, Any] | None:
    """The checkpoint to resume, refused when its settings differ (`_check_left` says what is left to do)."""
    if not cfg.resume:
        return None
    path = cfg.resume_from_checkpoint
    if not path:
        raise ConfigError(f"{source}: resume is true but resume_from_checkpoint is empty")
    state = load_checkpoint(path, required=MODEL_KEYS + TRAIN_KEYS, map_location=device)
    check_resume_config(state["config"], cfg, path)
    return state


def _training_complete(cfg: TrainConfig, state: dict[str, Any]) -> bool:
    return state["epoch"] >= cfg.epochs or (cfg.max_steps is not None and state["step"] >= cfg.max_steps)


def _nothing_left(cfg: TrainConfig, state: dict[str, Any], evaluated: Path | None = None) -> ConfigError:
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
    if not _training_complete(cfg, state):
        return False
    past_end = state["epoch"] > cfg.epochs or (cfg.max_steps is not None and state["step"] > cfg.max_steps)
    own_folder = run_dir.resolve() == Path(cfg.resume_from_checkpoint).resolve().parent
    if suite is None or past_end or not own_folder:
        raise _nothing_left(cfg, state)
    if state["epoch_step"] == 0:  # after a whole epoch: its evaluation folder is known without the data
        from rt1_sim.eval.results import RESULTS_FILE  # the eval package imports the simulator

        evaluated = eval_folder(run_dir, float(state["epoch"]))
        if (evaluated / RESULTS_FILE).is_file():
            raise _nothing_left(cfg, state, evaluated)
    return True


def _check_run_folder(cfg: TrainConfig, run_dir: Path, overwrite: bool) -> list[Path]:
    """A new run needs an empty (or new) folder unless `overwrite`; a resumed run continues in its
    checkpoint's folder, or starts another one under the same rule."""
    if cfg.resume and run_dir.resolve() == Path(cfg.resume_from_checkpoint).resolve().parent:
        check_writable(run_dir, RUN_FOLDER)
        return []
    return prepare_folder(run_dir, RUN_FOLDER, RUN_ENTRIES, overwrite)


def preflight(
    cfg: TrainConfig, device: torch.device, job: Distributed, config_path: str | Path | None, overwrite: bool
) -> Preflight:
    """Every check of the user's input that does not need the data: the eval suite, the checkpoint to resume
    and its settings, the run folder. Nothing is written; rank 0 checks the folder and every rank raises."""
    source = str(config_path) if config_path else "the TrainConfig"
    suite = _check_suite(cfg)
    _check_imagenet_weights(cfg, source)
    state = _check_resume(cfg, device, source)
    run_dir = Path(_broadcast(str(run_folder(cfg, config_path)), job))
    final_eval_only = state is not None and _check_left(cfg, state, suite, run_dir)
    remove, problem = [], None
    if job.is_main:
        try:
            check_unlocked(run_dir, RUN_FOLDER)  # another run (the same run_name, or resumed) writing there
            remove = _check_run_folder(cfg, run_dir, overwrite)
        except OutputError as e:
            problem = str(e)
    problem = _broadcast(problem, job)
    if problem is not None:
        raise OutputError(problem)
    return Preflight(suite, state, run_dir, remove, overwrite, final_eval_only)


# ---------------------------------------------------------------- the loop
@dataclass
class TrainState:
    """Where the loop stands; a checkpoint saves it and `resume` restores it."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # the epoch of the next step
    epoch_step: int = 0  # batches of `epoch` already trained
    best_val_loss: float = math.inf
    seconds_before: float = 0.0  # training time of the runs this one resumes


@dataclass
class Trainer:
    """Everything the loop works with, built once by `build`; `model` is `raw`, wrapped for DDP if enabled."""

    cfg: TrainConfig
    source: str  # the config file, for error messages
    device: torch.device
    job: Distributed
    data: Data
    raw: RT1
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.CosineAnnealingWarmRestarts
    scaler: torch.amp.GradScaler  # enabled for fp16 autocast only; otherwise every call passes through
    amp_dtype: torch.dtype | None
    suite: EvalConfig | None  # closed-loop evaluation suite
    head: StateHead | None = None  # the training-only state head (aux_state_weight > 0); `model` holds it too
    state: TrainState = field(default_factory=TrainState)
    run_dir: Path | None = None
    metrics_log: MetricsLog | None = None  # rank 0 only
    started: float = field(default_factory=time.perf_counter)
    last: dict[str, dict[str, float]] = field(default_factory=lambda: {"train": {}, "val": {}, "eval": {}})

    def autocast(self) -> contextlib.AbstractContextManager:
        """The one autocast context (bf16 / fp16 on GPU; nothing on CPU)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def parameters(self) -> list[torch.nn.Parameter]:
        """What the optimizer trains: the network's parameters, then the state head's."""
        return list(self.raw.parameters()) + (list(self.head.parameters()) if self.head is not None else [])

    def state_weight(self) -> float:
        """The state loss's weight at the next step (aux_state_weight, annealed linearly to 0)."""
        cfg = self.cfg
        if cfg.aux_state_anneal_steps is None:
            return cfg.aux_state_weight
        return cfg.aux_state_weight * max(0.0, 1.0 - self.state.step / cfg.aux_state_anneal_steps)

    def clock(self) -> float:
        """Training seconds, continuing the clock of the run this one resumes."""
        return round(self.state.seconds_before + time.perf_counter() - self.started, 3)

    def log_metrics(self, epoch: float, metrics: dict[str, float]) -> None:
        if self.metrics_log is not None:
            self.metrics_log.write(
                {"step": self.state.step, "epoch": epoch, "time_s": self.clock(), **metrics}
            )


def build(
    cfg: TrainConfig, device: torch.device, job: Distributed, source: str, suite: EvalConfig | None = None
) -> Trainer:
    """Seed, read the data, build model, optimizer, scheduler and scaler (nothing is written yet); `suite` is
    the checked eval suite (`preflight`)."""
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed + job.rank)  # rank 0 = a single-process run; DDP copies rank 0's weights
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    data = build_data(cfg, source, job)
    raw = RT1(
        cfg.network, cfg.cam_view, cfg.time_sequence_length, cfg.using_proprioception, data.train.tokenizer
    )
    if cfg.instruction_standardize:
        distinct = sorted({text for part in data.train.datasets for text in part.cache.instructions})
        embeddings = np.stack([data.instruction_encoder(text) for text in distinct])
        raw.set_instruction_normalization(torch.as_tensor(embeddings))
        log.info(
            "instruction embeddings standardised over %d distinct training instructions (gain %.2f)",
            len(distinct),
            raw.instruction_gain.item(),
        )
    raw = raw.to(device)
    if cfg.imagenet_weights and not cfg.resume:
        try:
            raw.image_encoder.load_imagenet_weights(cfg.imagenet_weights)
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{source}: imagenet_weights {e}") from None
    head, model = None, raw  # a run without the state head draws no random numbers for one
    if cfg.aux_state_weight > 0:
        head = StateHead(raw.tokens_per_frame, cfg.network.token_embedding_size_per_image).to(device)
        model = RT1WithStateHead(raw, head)
    params = list(raw.parameters()) + (list(head.parameters()) if head is not None else [])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = cfg.scheduler_configs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, sched.T_0, sched.T_mult, sched.eta_min
    )
    amp_dtype = (
        {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp) if device.type == "cuda" else None
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return Trainer(
        cfg, source, device, job, data, raw, model, optimizer, scheduler, scaler, amp_dtype, suite, head
    )


def resume(t: Trainer, state: dict[str, Any] | None = None) -> None:
    """Restore weights, optimizer, scheduler, scaler, RNG streams and counters from resume_from_checkpoint
    (`state`: that checkpoint, already loaded and checked by `preflight`)."""
    path = t.cfg.resume_from_checkpoint
    if state is None:
        state = _check_resume(t.cfg, t.device, t.source)
    check_compatible(state, model_config(t.raw, encoder_settings(t.data.instruction_encoder)), path)
    try:
        t.raw.load_state_dict(state["model"])
        if t.head is not None:
            t.head.load_state_dict(state["state_head"])
        t.optimizer.load_state_dict(state["optimizer"])
        t.scheduler.load_state_dict(state["scheduler"])
        if t.scaler.is_enabled() and "grad_scaler" in state:
            t.scaler.load_state_dict(state["grad_scaler"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot restore the training state ({e})") from e
    restore_rng(state["rng"], t.job, t.device)
    t.state = TrainState(
        step=state["step"],
        epoch=state["epoch"],
        epoch_step=state["epoch_step"],
        best_val_loss=state.get("best_val_loss", math.inf),
        seconds_before=state.get("seconds", 0.0),
    )
    s = t.state
    log.info(
        "resumed from %s after step %d: continuing at step %d (epoch %d, batch %d)",
        path,
        s.step,
        s.step + 1,
        s.epoch + 1,
        s.epoch_step + 1,
    )


def _take_run_folder(cfg: TrainConfig, checked: Preflight) -> tuple[str | None, FileLock | None]:
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
    problem, lock = _take_run_folder(cfg, checked) if job.is_main else (None, None)
    problem = _broadcast(problem, job)
    if problem is not None:
        raise OutputError(problem)
    with contextlib.ExitStack() as held:
        if lock is not None:
            held.enter_context(lock)  # released when the run ends; the kernel drops it if the process dies
        with log_to_file(t.run_dir / LOG_FILE if job.is_main else None):
            if job.is_main:
                atomic_write_text(
                    t.run_dir / CONFIG_FILE, json.dumps(config_to_dict(cfg.resolved()), indent=1) + "\n"
                )
                t.metrics_log = MetricsLog(t.run_dir, t.state.step if cfg.resume else None, cfg.tensorboard)
            try:
                yield
            finally:
                if t.metrics_log is not None:
                    t.metrics_log.close()


def train_step(
    t: Trainer, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One optimizer step on a batch: forward under autocast, backward (scaled for fp16), clip, step.
    Returns (logits (B, T, A, vocab), action loss, state loss | None); the step minimises the action loss
    plus the weighted state loss when the run has a state head."""
    inputs = (batch["images"], batch["instruction"], batch["valid"])
    aux = None
    with t.autocast():
        if t.head is None:
            logits, loss = t.model(*inputs, None, batch["tokens"])
            total = loss
        else:
            logits, loss, aux = t.model(*inputs, batch["tokens"], batch["states"], batch["state_mask"])
            total = loss + t.state_weight() * aux
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(total).backward()
    t.scaler.unscale_(t.optimizer)  # clip the true gradients
    if t.cfg.grad_clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(t.parameters(), t.cfg.grad_clip_norm)
    t.scaler.step(t.optimizer)
    t.scaler.update()
    return logits, loss, aux


def train_epoch(t: Trainer, epoch: int, batches: list[list[int]]) -> int:
    """Train `epoch` from batch `t.state.epoch_step` on; returns the batches done (fewer than all when
    max_steps stops it). Logs a train metrics row every log_every_steps; periodic checkpoints and evaluations
    inside the epoch are `mid_epoch_period`'s."""
    cfg, state = t.cfg, t.state
    t.data.train.set_epoch(epoch)
    t.model.train()
    window = _Window(t.device)
    done = state.epoch_step
    bar = tqdm(
        total=len(batches),
        initial=done,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        unit="step",
        disable=not (cfg.progress and t.job.is_main),
        mininterval=1.0,
        dynamic_ncols=True,
    )
    with bar:
        for batch in make_loader(t.data.train, batches[done:], cfg, t.device, cfg.seed + epoch):
            batch = to_device(batch, t.device)
            logits, loss, aux = train_step(t, batch)
            state.step += 1
            done += 1
            lr = t.optimizer.param_groups[0]["lr"]  # the rate this step used
            if cfg.scheduler_configs.interval == "step":
                t.scheduler.step(epoch + done / len(batches))
            hits, steps = token_hits(t.raw.tokenizer, logits.detach(), batch["tokens"], batch["valid"])
            window.add(loss, hits, steps * hits.numel(), len(batch["valid"]), aux)
            bar.update(1)
            stopping = _max_steps_reached(t)
            # A row at every checkpoint too: a run resumed from it starts a new window, and its first row
            # then averages the same steps as the run that was not stopped.
            saving = done < len(batches) and _mid_epoch_save_due(t, done)
            if state.step % cfg.log_every_steps == 0 or done == len(batches) or stopping or saving:
                t.last["train"] = {**window.collect(t.job), "train/lr": lr}
                _show(bar, t.last["train"])
                t.log_metrics(epoch + done / len(batches), t.last["train"])
            if stopping:
                break
            if done < len(batches):  # the end of the epoch has its own end_of_period
                window.start += mid_epoch_period(t, epoch, done, len(batches))  # samples/s: training only
    return done


def mid_epoch_period(t: Trainer, epoch: int, done: int, total: int) -> float:
    """Inside an epoch: write checkpoint_last every checkpoint_every_steps steps, and every eval_every_steps
    steps write it and evaluate it closed-loop. Returns the seconds the evaluation took (0.0 without one)."""
    evaluating = _step_eval_due(t, done)
    if _mid_epoch_save_due(t, done):
        save(t, LAST_CHECKPOINT, epoch, done)
    if not evaluating:
        return 0.0
    started = time.perf_counter()
    closed_loop_eval(t, epoch + done / total)
    return time.perf_counter() - started


def _mid_epoch_save_due(t: Trainer, epoch_step: int) -> bool:
    """Whether checkpoint_last is written after `epoch_step` steps of an epoch (not its last step): every
    checkpoint_every_steps steps in all, and before each evaluation inside the epoch."""
    every = t.cfg.checkpoint_every_steps
    return _step_eval_due(t, epoch_step) or bool(every and t.state.step % every == 0)


def _step_eval_due(t: Trainer, epoch_step: int) -> bool:
    """Whether eval_every_steps asks for a closed-loop evaluation after `epoch_step` steps of an epoch. Steps
    are counted from the epoch's start, so every epoch is evaluated at the same fractions (an epoch of 3141
    steps with 1571: at its middle, then at its end if the end is due anyway) and never again one step after
    the end-of-epoch evaluation, as a count of all steps since the run's start would."""
    every = t.cfg.eval_every_steps
    return t.suite is not None and every > 0 and epoch_step > 0 and epoch_step % every == 0


def eval_folder(run_dir: Path, epoch: float) -> Path:
    """eval/epoch_<E>: E is the whole epoch count after a whole epoch, else the fractional epoch truncated to
    six decimals (truncated, so that an evaluation just before an epoch's end never takes that end's name)."""
    whole = math.floor(epoch)
    micro = math.floor((epoch - whole) * 1_000_000)
    name = f"{whole}" if epoch == whole else f"{whole}.{max(micro, 1):06d}".rstrip("0")
    return run_dir / EVAL_DIR / f"epoch_{name}"


def _max_steps_reached(t: Trainer) -> bool:
    return t.cfg.max_steps is not None and t.state.step >= t.cfg.max_steps


def _show(bar: tqdm, metrics: dict[str, float]) -> None:
    bar.set_postfix(
        loss=f"{metrics['train/loss']:.3f}",
        lr=f"{metrics['train/lr']:.2e}",
        samples_s=f"{metrics['train/samples_per_s']:.1f}",
        refresh=False,
    )


class Due(NamedTuple):
    """What an end of period does."""

    validate: bool
    save: bool
    evaluate: bool


def end_of_period(t: Trainer, epoch: int, epoch_step: int, position: float, due: Due) -> None:
    """Validate (checkpoint_best when the loss improved), write checkpoint_last, evaluate it closed-loop, as
    `due` says: after a whole epoch, or when max_steps stops inside one. (`epoch`, `epoch_step`) is where the
    next step would be (what the checkpoints record); `position` is the fractional epoch the metrics get."""
    if due.validate and validate_and_log(t, position):
        save(t, BEST_CHECKPOINT, epoch, epoch_step)
    if due.save:
        save(t, LAST_CHECKPOINT, epoch, epoch_step)
    if due.evaluate:
        closed_loop_eval(t, position)


def save(t: Trainer, name: str, epoch: int, epoch_step: int) -> None:
    """Write a training checkpoint (a collective under DDP: every rank calls it, rank 0 writes)."""
    rng = rng_states(t.job, t.device)
    if not t.job.is_main:
        return
    state = checkpoint_state(t.raw, encoder_settings(t.data.instruction_encoder), t.data.default_instruction)
    state.update(
        optimizer=t.optimizer.state_dict(),
        scheduler=t.scheduler.state_dict(),
        step=t.state.step,
        epoch=epoch,
        epoch_step=epoch_step,
        rng=rng,
        best_val_loss=t.state.best_val_loss,
        seconds=t.clock(),
        config=config_to_dict(t.cfg.resolved()),
    )
    if t.scaler.is_enabled():
        state["grad_scaler"] = t.scaler.state_dict()
    if t.head is not None:
        state["state_head"] = t.head.state_dict()
    save_checkpoint(t.run_dir / name, state)


def validate_and_log(t: Trainer, epoch: float) -> bool:
    """Validate (all ranks), log; True when the validation loss is the best so far."""
    if t.data.val is None:
        return False
    blank = torch.as_tensor(t.data.instruction_encoder(""), dtype=torch.float32)
    metrics, part_losses = validate(t.raw, t.data.val, t.cfg, t.device, t.job, t.autocast, blank, t.head)
    t.last["val"] = metrics
    summary = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.count("/") == 1)
    log.info("epoch %g, step %d: %s", epoch, t.state.step, summary)
    if len(part_losses) > 1:  # several dataset folders (task families): which of them the model fits worst
        per_folder = zip(t.data.val_folders, part_losses, strict=True)
        log.info(
            "epoch %g, step %d: val/loss per dataset folder: %s",
            epoch,
            t.state.step,
            ", ".join(f"{name} {loss:.4f}" for name, loss in per_folder),
        )
    t.log_metrics(epoch, metrics)
    if metrics.get("val/loss", math.inf) < t.state.best_val_loss:
        t.state.best_val_loss = metrics["val/loss"]
        return True
    return False


def closed_loop_eval(t: Trainer, epoch: float) -> None:
    """Roll out checkpoint_last in the eval suite (every rank takes a share of the episodes)."""
    from rt1_sim.eval import evaluate  # the simulator is imported only when evaluating

    if t.job.enabled:
        dist.barrier()  # rank 0 has written the checkpoint
    suite, device = t.suite, t.device
    policy = dataclasses.replace(suite.policy, name=str(t.run_dir / LAST_CHECKPOINT), device=str(device))
    threads = torch.get_num_threads()
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),  # training RNG untouched
        _on_worker_death(t.run_dir / LAST_CHECKPOINT),
    ):
        report = evaluate(
            dataclasses.replace(suite, policy=policy),
            eval_folder(t.run_dir, epoch),
            workers=t.cfg.num_eval_threads or t.cfg.num_val_threads or 1,
            video="none",
            config_file=t.cfg.eval_config,
            progress=t.cfg.progress and t.job.is_main,
            overwrite=True,  # the run's own folder: `pending_eval` repeats one a kill cut short
        )
    torch.set_num_threads(threads)  # the harness sizes torch's thread pool for its workers
    log.info("epoch %g, step %d: %s", epoch, t.state.step, report.summary())
    families = report.results.get("per_variation", {}).get("family", {})
    if len(families) > 1:  # a multi-task suite: success per task family
        log.info(
            "epoch %g per family: %s",
            epoch,
            ", ".join(f"{name} {r['successes']}/{r['episodes']}" for name, r in families.items()),
        )
    t.last["eval"] = {f"eval/{k}": report.results[k] for k in ("success_rate", "ci95_low", "ci95_high")}
    t.log_metrics(epoch, t.last["eval"])


@contextlib.contextmanager
def _on_worker_death(checkpoint: Path) -> Iterator[None]:
    from rt1_sim.pool import WorkerDied

    try:
        yield
    except WorkerDied as e:  # true: a resumed run first redoes an evaluation that did not finish
        raise e.advice(
            f"resume the run from {checkpoint} (resume: true, resume_from_checkpoint) to redo this evaluation"
        ) from None


def train(
    cfg: TrainConfig,
    device: torch.device,
    job: Distributed = Distributed(),
    config_path: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train as `cfg` says on `device` (this process's rank in `job`); returns the run summary. Every check
    that does not need the data comes first; the run folder must be new or empty unless `overwrite` (a
    resumed run may continue in its checkpoint's folder)."""
    cfg = resolve_data_path(cfg)  # a root's Panda_* folders, recorded and compared on resume
    checked = preflight(cfg, device, job, config_path, overwrite)
    t = build(cfg, device, job, str(config_path) if config_path else "the TrainConfig", checked.suite)
    if cfg.resume:
        resume(t, checked.state)
    if job.enabled:
        # The 1x1 convolutions' weight gradients differ from their bucket views only in the strides of size-1
        # dimensions (same memory layout); DDP's warning about it is a false positive.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        t.model = DistributedDataParallel(t.model, device_ids=[device] if device.type == "cuda" else None)
    sampler = DistributedSampler(
        t.data.train, num_replicas=job.world_size, rank=job.rank, shuffle=True, seed=cfg.seed
    )
    pending = pending_eval(t, sampler, checked.run_dir) if cfg.resume else None
    if checked.final_eval_only and pending is None:  # inside an epoch: placed once the data was read
        raise _nothing_left(cfg, checked.state, eval_folder(checked.run_dir, _position(t, sampler)))
    with run_folder_open(t, checked):
        _log_start(t)
        t.started = time.perf_counter()
        if pending is not None:
            log.info(
                "the evaluation at epoch %g did not finish before the run stopped: running it now", pending
            )
            closed_loop_eval(t, pending)
        for epoch in range(t.state.epoch, cfg.epochs):  # none left after a final evaluation
            if _max_steps_reached(t):
                break
            batches = epoch_batches(sampler, cfg.batch_size, epoch)
            done = train_epoch(t, epoch, batches)
            if done < len(batches):  # max_steps reached inside the epoch
                end_of_period(
                    t, epoch, done, epoch + done / len(batches), Due(True, True, t.suite is not None)
                )
                break
            t.state.epoch, t.state.epoch_step = epoch + 1, 0
            if cfg.scheduler_configs.interval == "epoch":
                t.scheduler.step(epoch + 1)
            if cfg.scheduler_configs.verbose:
                log.info("epoch %d: learning rate now %.3e", epoch + 1, t.optimizer.param_groups[0]["lr"])
            end_of_period(t, epoch + 1, 0, epoch + 1, _due_after_epoch(t, epoch + 1, len(batches)))
    return _summary(t)


def _position(t: Trainer, sampler: DistributedSampler) -> float:
    """The fractional epoch of the resumed checkpoint (what its evaluation folder is named after)."""
    s = t.state
    if s.epoch_step == 0:
        return float(s.epoch)
    return s.epoch + s.epoch_step / len(epoch_batches(sampler, t.cfg.batch_size, s.epoch))


def pending_eval(t: Trainer, sampler: DistributedSampler, run_dir: Path) -> float | None:
    """The fractional epoch of the closed-loop evaluation the resumed checkpoint was written for, when that
    evaluation never finished (a kill during it: its folder in `run_dir` has no results.json), else None.
    A resumed run runs it first, so the curve has no hole; the final one of a complete run is all it runs."""
    from rt1_sim.eval.results import RESULTS_FILE  # the eval package imports the simulator

    s = t.state
    if s.epoch_step == 0:
        length = len(epoch_batches(sampler, t.cfg.batch_size, s.epoch - 1)) if s.epoch > 0 else 0
        due = s.epoch > 0 and _due_after_epoch(t, s.epoch, length).evaluate
    else:  # every eval_every_steps, or where max_steps ended the training
        due = _step_eval_due(t, s.epoch_step) or (t.suite is not None and _max_steps_reached(t))
    position = _position(t, sampler)
    if due and not _broadcast((eval_folder(run_dir, position) / RESULTS_FILE).is_file(), t.job):
        return position
    return None


def _due_after_epoch(t: Trainer, epochs_done: int, epoch_steps: int) -> Due:
    """What is due after `epochs_done` whole epochs of `epoch_steps` steps (and, when max_steps ends the run
    here, everything)."""
    cfg, stopping = t.cfg, _max_steps_reached(t)
    last = epochs_done == cfg.epochs
    validating = epochs_done % cfg.val_interval == 0 or last or stopping
    periodic_eval = cfg.eval_every_epochs > 0 and epochs_done % cfg.eval_every_epochs == 0
    evaluating = t.suite is not None and (last or stopping or periodic_eval) or _step_eval_due(t, epoch_steps)
    periodic = bool(cfg.checkpoint_every_steps) and t.state.step % cfg.checkpoint_every_steps == 0
    return Due(validate=validating, save=validating or evaluating or periodic, evaluate=evaluating)


def _log_start(t: Trainer) -> None:
    cfg, job = t.cfg, t.job
    n_params = sum(p.numel() for p in t.raw.parameters())
    log.info(
        "RT-1 preset %s: %.2fM parameters, %s, %d process(es) x batch %d, run folder %s",
        cfg.preset,
        n_params / 1e6,
        t.device,
        job.world_size,
        cfg.batch_size,
        t.run_dir,
    )
    if cfg.world_size != job.world_size:
        log.info(
            "config world_size %d ignored: launched with %d process(es) (torchrun --nproc_per_node sets it)",
            cfg.world_size,
            job.world_size,
        )


def _summary(t: Trainer) -> dict[str, Any]:
    summary = {
        "run_dir": str(t.run_dir),
        "steps": t.state.step,
        "epochs": t.cfg.epochs,
        "seconds": t.clock(),
        **t.last["train"],
        **{k: v for k, v in t.last["val"].items() if k.count("/") == 1},
        **t.last["eval"],
    }
    if t.state.best_val_loss < math.inf:
        summary["best_val_loss"] = t.state.best_val_loss
    return summary


class _Window:
    """Running sums of the train metrics between two log rows, kept on the device (no sync per step)."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(
            5, dtype=torch.float64, device=device
        )  # loss (per step), hits, tokens, samples, state loss (per step)
        self.steps = 0
        self.start = time.perf_counter()
        self.has_aux = False

    def add(
        self, loss: torch.Tensor, hits: torch.Tensor, tokens: int, samples: int, aux: torch.Tensor | None
    ) -> None:
        self.sums[0] += loss.detach().double()
        if aux is not None:
            self.sums[4] += aux.detach().double()
            self.has_aux = True
        self.sums[1] += hits.sum()
        self.sums[2] += tokens
        self.sums[3] += samples
        self.steps += 1

    def collect(self, job: Distributed) -> dict[str, float]:
        """Mean loss and token accuracy since the last call (all ranks), samples/s of the whole job."""
        if job.enabled:
            dist.all_reduce(self.sums)
        loss, hits, tokens, samples, aux = self.sums.tolist()
        out = {
            "train/loss": loss / (self.steps * job.world_size),
            "train/token_acc": hits / max(tokens, 1.0),
            "train/samples_per_s": samples / (time.perf_counter() - self.start),
        }
        if self.has_aux:
            out["train/state_loss"] = aux / (self.steps * job.world_size)
        self.sums.zero_()
        self.steps = 0
        self.start = time.perf_counter()
        return out


# ---------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="training config JSON (IO's train_config.json keys are valid; see train_configs/)",
    )
    add_override_argument(parser, "epochs=2, network_configs.num_layers=2")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in log_dir/run_name instead of refusing a folder that holds one (a new run "
        "needs an empty folder; resume: true continues in the checkpoint's folder)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the config, join the process group, train; rank 0 prints the summary as one JSON line."""
    job = launch_environment()
    try:
        cfg = load_config(TrainConfig, args.config, args.overrides)
        device = select_device(cfg.device, job)
        init_process_group(job, device)
        if not job.is_main:
            logging.getLogger().setLevel(logging.WARNING)
        summary = train(cfg, device, job, args.config, overwrite=args.overwrite)
    finally:
        distributed.destroy_process_group()
    if job.is_main:
        print(json.dumps(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m rt1_sim.train` (what torchrun launches)."""
    from rt1_sim.cli import run_command

    parser = argparse.ArgumentParser(prog="python -m rt1_sim.train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_command("rt1-sim train", run, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
