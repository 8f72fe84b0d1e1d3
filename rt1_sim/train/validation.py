"""Validation: the token cross-entropy, per-dimension token accuracy and action error over every validation
window, per dataset folder, the state head's error, and the probes that ask whether the model reads its
instruction and looks at its cameras."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from envs.spaces import ACTION_SLICES, ACTION_TABLE, RESULTS_COLUMNS
from rt1_sim.config import TrainConfig
from rt1_sim.data.windows import WindowConcat
from rt1_sim.distributed import Distributed
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.keypoints import KEYPOINT_NAMES, expected_pixels
from rt1_sim.model.rt1 import RT1
from rt1_sim.model.state_head import STATE_NAMES, StateHead
from rt1_sim.train.data import make_loader, to_device


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
    views, maps = len(cfg.cam_view), cfg.network.keypoint_maps
    pixels = torch.zeros(2, views, maps, dtype=torch.float64, device=device)  # pixel error, labels
    for indices_in_batch, batch in zip(batches, make_loader(dataset, batches, cfg, device, cfg.seed)):
        batch = to_device(batch, device)
        with autocast():
            if maps:
                tokens, keypoint_maps = model.encode_window(
                    batch["images"], batch["instruction"], batch["valid"], return_maps=True
                )
                pixels += keypoint_errors(keypoint_maps, batch, cfg)
            else:
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
        if maps:
            dist.all_reduce(pixels)
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
    for v, view in enumerate(cfg.cam_view):
        for k, name in enumerate(KEYPOINT_NAMES[:maps]):
            if pixels[1, v, k] > 0:
                metrics[f"val/keypoint_error_px/{view}/{name}"] = (pixels[0, v, k] / pixels[1, v, k]).item()
    return metrics, [ce / max(n, 1.0) / a for ce, n in parts.tolist()]


def keypoint_errors(maps: torch.Tensor, batch: dict[str, torch.Tensor], cfg: TrainConfig) -> torch.Tensor:
    """(2, V, K): the summed pixel distance between each keypoint map's expected pixel (maps (B, T, V, K, P))
    and its label, and the number of labels, per camera and keypoint."""
    network = cfg.network
    predicted = expected_pixels(maps, (network.image_height, network.image_width), network.feature_map_size)
    mask = batch["keypoint_mask"] & batch["valid"][..., None, None]  # (B, T, V, K)
    error = (predicted - batch["keypoints"]).norm(dim=-1) * mask  # (B, T, V, K)
    return torch.stack([error.sum((0, 1)), mask.sum((0, 1))]).double()


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
