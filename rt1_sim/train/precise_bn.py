"""Precise BatchNorm statistics for the policy a checkpoint holds.

Training normalises every BatchNorm layer with the statistics of its batch and keeps an exponential moving
average (momentum 0.1) of them for inference. A batch of 16 history windows holds 16 scenes, so those batch
statistics are noisy, and the average trails weights that Adam moves at every step. `precise_batchnorm`
recomputes them with the network fixed: the plain average over many training batches, each normalised as in
training (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021, call this PreciseBN). For the multi-task
policy it was not enough: with full frames, statistics averaged over all six families left its x/y commands at
chance on its own `pick` windows. Batch statistics partly hid a second mismatch, the scale of the frames
(`TrainConfig.inference_crop`). `TrainConfig.freeze_batchnorm_at_step` then trains on with these statistics
fixed (docs/multitask_runs.md).

It draws no number from torch's global generator and changes no weight: only the BatchNorm buffers of the
module it is given. A training run calibrates a copy of its network for each checkpoint and keeps its own
moving averages, so a resumed run continues bit-exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from rt1_sim.data.windows import WindowConcat, collate_windows
from rt1_sim.model.rt1 import RT1
from rt1_sim.preprocess import images_to_tensor


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def calibration_windows(num_windows: int, available: int, seed: int) -> list[int]:
    """`num_windows` distinct window indices out of `available` (all of them when there are fewer), drawn by
    a generator of their own seeded by `seed`."""
    if num_windows >= available:
        return list(range(available))
    return sorted(np.random.default_rng(seed).choice(available, num_windows, replace=False).tolist())


@torch.no_grad()
def precise_batchnorm(
    model: RT1,
    windows: WindowConcat,
    batches: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> int:
    """Set every BatchNorm buffer of `model` to the average of its batch statistics over `batches` batches
    of `batch_size` windows of `windows` (augmentation as the dataset has it), each batch encoded as training
    encodes it (valid frames only, every camera together). Windows are drawn without replacement by a
    generator seeded by `seed`. Leaves `model` in eval mode; returns the number of frames seen."""
    norms = batchnorm_layers(model)
    if not norms or batches < 1:
        return 0
    chosen = calibration_windows(batches * batch_size, len(windows), seed)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.eval()  # dropout and stochastic depth off: nothing else draws random numbers or changes
    for m in norms:
        m.train()
    frames = 0
    try:
        for start in range(0, len(chosen), batch_size):
            batch = collate_windows([windows[i] for i in chosen[start : start + batch_size]])
            valid = batch["valid"].to(device)
            images = images_to_tensor(batch["images"], device)  # (B, T, V, 3, H, W)
            with autocast():
                model.encode_window(images, batch["instruction"].to(device), valid)
            frames += int(valid.sum())
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return frames
