"""Training checkpoints: what `save` writes (the model's state plus optimizer, scheduler, counters, every
rank's RNG streams and the resolved config) and what `resume` restores, so that a resumed run continues
bit-exactly."""

from __future__ import annotations

import logging
import math
import zlib
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm

from rt1_sim.checkpoint import CheckpointError, check_action_table, save_checkpoint
from rt1_sim.config_loader import config_to_dict
from rt1_sim.distributed import Distributed
from rt1_sim.model.instruction import encoder_settings, recorded_encoder
from rt1_sim.model.presets import NetworkConfig
from rt1_sim.model.rt1 import checkpoint_state, model_config
from rt1_sim.train.run_folder import load_resume_state
from rt1_sim.train.trainer import Trainer, TrainState

log = logging.getLogger(__name__)


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
    if isinstance(saved.get("network"), dict):
        # A network field added after the checkpoint was written has the value that builds the network it was
        # (efficientnet_family "b", keypoint_maps 0): the field's default.
        saved["network"] = {**NetworkConfig().to_dict(), **saved["network"]}
    keys = ("network", "cam_view", "time_sequence_length", "using_proprioception", "instruction_encoder")
    diff = [k for k in keys if saved.get(k) != expected[k]]
    if diff:
        details = "; ".join(
            f"{k}: {saved.get(k)} in the checkpoint, {expected[k]} in the config" for k in diff
        )
        raise CheckpointError(f"checkpoint {path}: another model than the config's ({details})")


def batchnorm_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The BatchNorm buffers (running mean and variance, batches tracked) of `model`'s state_dict."""
    return {
        f"{name}.{key}": value.clone()
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm)
        for key, value in m.named_buffers(recurse=False)
    }


def data_fingerprint(t: Trainer) -> list[list[int]]:
    """[windows, CRC-32 of the action rows] of each training dataset folder: what fixes the order and the
    targets of the batches. A folder collected again on a machine whose physics rounds differently can hold
    a few other episodes under the same name."""
    return [
        [len(part), zlib.crc32(np.ascontiguousarray(part.cache.actions, np.float32).tobytes())]
        for part in t.data.train.datasets
    ]


def save(t: Trainer, name: str, epoch: int, epoch_step: int) -> None:
    """Write a training checkpoint (a collective under DDP: every rank calls it, rank 0 writes)."""
    rng = rng_states(t.job, t.device)
    if not t.job.is_main:
        return
    policy = t.policy_network()
    state = checkpoint_state(policy, encoder_settings(t.data.instruction_encoder), t.data.default_instruction)
    if policy is not t.raw:  # PreciseBN statistics for the policy; training's own moving averages to resume
        state["batchnorm_ema"] = batchnorm_buffers(t.raw)
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
        data_fingerprint=data_fingerprint(t),
    )
    if t.scaler.is_enabled():
        state["grad_scaler"] = t.scaler.state_dict()
    if t.head is not None:
        state["state_head"] = t.head.state_dict()
    save_checkpoint(t.run_dir / name, state)


def resume(t: Trainer, state: dict[str, Any] | None = None) -> None:
    """Restore weights, optimizer, scheduler, scaler, RNG streams and counters from resume_from_checkpoint
    (`state`: that checkpoint, already loaded and checked by `preflight`)."""
    path = t.cfg.resume_from_checkpoint
    if state is None:
        state = load_resume_state(t.cfg, t.device, t.source)
    check_compatible(state, model_config(t.raw, encoder_settings(t.data.instruction_encoder)), path)
    try:
        # The moving averages training kept, where the policy's BatchNorm statistics were recomputed (a run
        # whose BatchNorm is frozen writes none: its "model" holds the statistics it trains with).
        t.raw.load_state_dict({**state["model"], **state.get("batchnorm_ema", {})})
        if t.head is not None:
            t.head.load_state_dict(state["state_head"])
        t.optimizer.load_state_dict(state["optimizer"])
        t.scheduler.load_state_dict(state["scheduler"])
        if t.scaler.is_enabled() and "grad_scaler" in state:
            t.scaler.load_state_dict(state["grad_scaler"])
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot restore the training state ({e})") from e
    restore_rng(state["rng"], t.job, t.device)
    recorded = state.get("data_fingerprint")  # absent in checkpoints written before it existed
    if recorded is not None and [list(r) for r in recorded] != data_fingerprint(t):
        log.warning(
            "resume from %s: the training data is not what the checkpoint was trained on (windows and "
            "action CRC-32 per dataset folder: %s then, %s now); the run continues from its weights and "
            "optimizer, but its remaining batches are not those of the original run",
            path,
            recorded,
            data_fingerprint(t),
        )
    at = t.cfg.freeze_batchnorm_at_step  # `load_resume_state` checked it against the checkpoint's
    t.batchnorm_frozen = at is not None and state["step"] > at  # its "model" holds the frozen statistics
    t.state = TrainState(
        step=state["step"],
        epoch=state["epoch"],
        epoch_step=state["epoch_step"],
        best_val_loss=state.get("best_val_loss", math.inf),
        seconds_before=state.get("seconds", 0.0),
    )
    crop = state["model_config"].get("inference_crop", "none")
    if crop != t.cfg.inference_crop and t.state.best_val_loss < math.inf:
        log.info(
            "inference_crop %s, %s before: validation now sees other frames, so checkpoint_best starts over",
            t.cfg.inference_crop,
            crop,
        )
        t.state.best_val_loss = math.inf
    s = t.state
    log.info(
        "resumed from %s after step %d: continuing at step %d (epoch %d, batch %d)",
        path,
        s.step,
        s.step + 1,
        s.epoch + 1,
        s.epoch_step + 1,
    )
