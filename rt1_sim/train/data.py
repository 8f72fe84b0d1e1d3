"""The training data: every dataset folder of `data_path` split into train / validation episodes (IO's seeded
split), decoded once into frame caches and cut into history windows; each epoch's batches and its loader."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler

from rt1_sim.config import TrainConfig
from rt1_sim.data.episodes import DatasetError, expand_dataset_roots
from rt1_sim.data.frame_cache import frame_loader
from rt1_sim.data.keypoints import dataset_geometry
from rt1_sim.data.sources import list_episodes
from rt1_sim.data.windows import (
    CenterCrop,
    RandomCrop,
    WindowConcat,
    collate_windows,
    concat_windows,
    split_episodes,
)
from rt1_sim.distributed import Distributed
from rt1_sim.errors import ConfigError
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.instruction import InstructionEncoder, make_instruction_encoder
from rt1_sim.preprocess import images_to_tensor

log = logging.getLogger(__name__)


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
    # Keypoint maps are trained on the positions the cameras of each folder's dataset saw.
    labels = val_labels = None
    if network.keypoint_maps:
        labels = [(dataset_geometry(f), network.keypoint_maps) for f in folders]
        val_labels = [label for label, (_, val_ids) in zip(labels, splits) if val_ids]
    train = concat_windows(train_caches, keypoints=labels, augment=augment, **common)
    # Validation sees what the policy will: the centred crop where the checkpoints tell it to crop.
    crop = CenterCrop(network.crop_size) if cfg.inference_crop == "center" else None
    val = concat_windows(val_caches, keypoints=val_labels, augment=crop, **common) if val_caches else None
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
