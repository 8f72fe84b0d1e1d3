"""The `Trainer`: everything the loop works with (data, model, optimizer, scheduler, scaler, counters), and
`build`, which makes it from a config."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rt1_sim.config import EvalConfig, TrainConfig
from rt1_sim.distributed import Distributed
from rt1_sim.errors import ConfigError
from rt1_sim.model.auxiliary import RT1WithAuxiliaryLosses
from rt1_sim.model.rt1 import RT1
from rt1_sim.model.state_head import StateHead
from rt1_sim.train.data import Data, build_data
from rt1_sim.train.metrics import MetricsLog
from rt1_sim.train.precise_bn import batchnorm_layers, precise_batchnorm

log = logging.getLogger(__name__)


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

    @property
    def auxiliary(self) -> bool:
        """Whether `model` is RT1WithAuxiliaryLosses (a state head, keypoint maps, or both)."""
        return self.head is not None or self.raw.keypoints is not None

    state: TrainState = field(default_factory=TrainState)
    run_dir: Path | None = None
    metrics_log: MetricsLog | None = None  # rank 0 only
    started: float = field(default_factory=time.perf_counter)
    last: dict[str, dict[str, float]] = field(default_factory=lambda: {"train": {}, "val": {}, "eval": {}})
    calibrated: tuple[int, RT1] | None = None  # (step, policy network) of `policy_network`
    batchnorm_frozen: bool = False  # freeze_batchnorm_at_step has passed: `raw` holds the frozen statistics

    def policy_network(self) -> RT1:
        """The network as a policy: `raw` itself, or with precise_bn_batches a copy of it with PreciseBN
        statistics (made once per step, seeded by the seed and the step, drawing nothing from torch's
        generators; `raw` keeps its moving averages). Once BatchNorm is frozen, `raw` is the policy."""
        batches = self.cfg.precise_bn_batches
        if not batches or self.batchnorm_frozen:
            return self.raw
        if self.calibrated is None or self.calibrated[0] != self.state.step:
            seed = (self.cfg.seed * 1_000_003 + self.state.step) % 2**63
            policy = copy.deepcopy(self.raw)
            windows = self.data.train
            training_epoch = windows.datasets[0].epoch
            # Windows cropped as in the epoch of the next step, which a checkpoint records: after an epoch's
            # last step, a resumed run (its data already on the next epoch) calibrates the same windows.
            windows.set_epoch(self.state.epoch)
            try:
                precise_batchnorm(
                    policy, windows, batches, self.cfg.batch_size, seed, self.device, self.autocast
                )
            finally:
                windows.set_epoch(training_epoch)
            self.calibrated = (self.state.step, policy)
        return self.calibrated[1]

    def freeze_batchnorm_if_due(self) -> None:
        """At step freeze_batchnorm_at_step: give `raw` the PreciseBN statistics of this step (those its
        checkpoint holds) and hold its BatchNorm layers in eval mode from now on."""
        if self.batchnorm_frozen or self.state.step != self.cfg.freeze_batchnorm_at_step:
            return
        statistics = batchnorm_layers(self.policy_network())
        for frozen, calibrated in zip(batchnorm_layers(self.raw), statistics, strict=True):
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                getattr(frozen, name).copy_(getattr(calibrated, name))
        self.batchnorm_frozen = True
        self.calibrated = None
        self.train_mode()
        log.info(
            "step %d: BatchNorm statistics frozen at their PreciseBN values (%d batches) from now on",
            self.state.step,
            self.cfg.precise_bn_batches,
        )

    def train_mode(self) -> None:
        """`model` in training mode, with its BatchNorm layers in eval mode once they are frozen."""
        self.model.train()
        if self.batchnorm_frozen:
            for m in batchnorm_layers(self.raw):
                m.eval()

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
    raw.inference_crop = cfg.inference_crop  # what its checkpoints tell a policy; validation crops the same
    raw = raw.to(device)
    if cfg.imagenet_weights and not cfg.resume:
        try:
            raw.image_encoder.load_imagenet_weights(cfg.imagenet_weights)
        except (OSError, RuntimeError, ValueError) as e:
            raise ConfigError(f"{source}: imagenet_weights {e}") from None
    head, model = None, raw  # a run without the state head draws no random numbers for one
    if cfg.aux_state_weight > 0:
        head = StateHead(raw.tokens_per_frame, cfg.network.token_embedding_size_per_image).to(device)
    if head is not None or raw.keypoints is not None:
        model = RT1WithAuxiliaryLosses(raw, head)
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
