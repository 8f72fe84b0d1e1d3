"""The loop, as `train` reads: `build` everything from the config, `resume` from a checkpoint if asked,
then for every epoch `train_step` over its batches and, at the end of the epoch (or when `max_steps` stops
it early), one `end_of_period`: validate, save checkpoint_best when the validation loss improved, save
checkpoint_last, evaluate it closed-loop. Inside an epoch `mid_epoch_period` writes periodic checkpoints
and, every `eval_every_steps` steps of the epoch, evaluates checkpoint_last too."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from rt1_sim.config import TrainConfig
from rt1_sim.distributed import Distributed
from rt1_sim.run_layout import BEST_CHECKPOINT, LAST_CHECKPOINT, RESULTS_FILE, eval_folder
from rt1_sim.train.checkpoints import resume, save
from rt1_sim.train.data import epoch_batches, make_loader, resolve_data_path, to_device
from rt1_sim.train.metrics import MetricWindow, show_metrics
from rt1_sim.train.run_folder import broadcast, nothing_left, preflight, run_folder_open
from rt1_sim.train.trainer import Trainer, build
from rt1_sim.train.validation import token_hits, validate

log = logging.getLogger(__name__)


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
        raise nothing_left(cfg, checked.state, eval_folder(checked.run_dir, _position(t, sampler)))
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


def train_epoch(t: Trainer, epoch: int, batches: list[list[int]]) -> int:
    """Train `epoch` from batch `t.state.epoch_step` on; returns the batches done (fewer than all when
    max_steps stops it). Logs a train metrics row every log_every_steps; periodic checkpoints and evaluations
    inside the epoch are `mid_epoch_period`'s."""
    cfg, state = t.cfg, t.state
    t.data.train.set_epoch(epoch)
    t.train_mode()
    window = MetricWindow(t.device)
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
            t.freeze_batchnorm_if_due()
            logits, loss, aux, aux_keypoints = train_step(t, batch)
            state.step += 1
            done += 1
            lr = t.optimizer.param_groups[0]["lr"]  # the rate this step used
            if cfg.scheduler_configs.interval == "step":
                t.scheduler.step(epoch + done / len(batches))
            hits, steps = token_hits(t.raw.tokenizer, logits.detach(), batch["tokens"], batch["valid"])
            window.add(loss, hits, steps * hits.numel(), len(batch["valid"]), aux, aux_keypoints)
            bar.update(1)
            stopping = _max_steps_reached(t)
            # A row at every checkpoint too: a run resumed from it starts a new window, and its first row
            # then averages the same steps as the run that was not stopped.
            saving = done < len(batches) and _mid_epoch_save_due(t, done)
            if state.step % cfg.log_every_steps == 0 or done == len(batches) or stopping or saving:
                t.last["train"] = {**window.collect(t.job), "train/lr": lr}
                show_metrics(bar, t.last["train"])
                t.log_metrics(epoch + done / len(batches), t.last["train"])
            if stopping:
                break
            if done < len(batches):  # the end of the epoch has its own end_of_period
                window.start += mid_epoch_period(t, epoch, done, len(batches))  # samples/s: training only
    return done


def train_step(
    t: Trainer, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """One optimizer step on a batch: forward under autocast, backward (scaled for fp16), clip, step.
    Returns (logits (B, T, A, vocab), action loss, state loss | None, keypoint loss | None); the step
    minimises the action loss plus the weighted state loss (with a state head) and keypoint loss (with
    keypoint maps)."""
    inputs = (batch["images"], batch["instruction"], batch["valid"])
    aux_state = aux_keypoints = None
    with t.autocast():
        if not t.auxiliary:
            logits, loss = t.model(*inputs, None, batch["tokens"])
            total = loss
        else:
            logits, loss, aux_state, aux_keypoints = t.model(*inputs, batch["tokens"], batch)
            total = loss
            if aux_state is not None:
                total = total + t.state_weight() * aux_state
            if aux_keypoints is not None:
                total = total + t.cfg.keypoint_weight * aux_keypoints
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(total).backward()
    t.scaler.unscale_(t.optimizer)  # clip the true gradients
    if t.cfg.grad_clip_norm > 0:
        torch.nn.utils.clip_grad_norm_(t.parameters(), t.cfg.grad_clip_norm)
    t.scaler.step(t.optimizer)
    t.scaler.update()
    return logits, loss, aux_state, aux_keypoints


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


def _max_steps_reached(t: Trainer) -> bool:
    return t.cfg.max_steps is not None and t.state.step >= t.cfg.max_steps


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


def validate_and_log(t: Trainer, epoch: float) -> bool:
    """Validate (all ranks), log; True when the validation loss is the best so far."""
    if t.data.val is None:
        return False
    blank = torch.as_tensor(t.data.instruction_encoder(""), dtype=torch.float32)
    network = t.policy_network()  # what checkpoint_last holds: PreciseBN statistics where the run uses them
    metrics, part_losses = validate(network, t.data.val, t.cfg, t.device, t.job, t.autocast, blank, t.head)
    if network is t.raw and t.raw.training:
        t.train_mode()  # validate restored training mode everywhere, frozen BatchNorm layers included
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
    s = t.state
    if s.epoch_step == 0:
        length = len(epoch_batches(sampler, t.cfg.batch_size, s.epoch - 1)) if s.epoch > 0 else 0
        due = s.epoch > 0 and _due_after_epoch(t, s.epoch, length).evaluate
    else:  # every eval_every_steps, or where max_steps ended the training
        due = _step_eval_due(t, s.epoch_step) or (t.suite is not None and _max_steps_reached(t))
    position = _position(t, sampler)
    if due and not broadcast((eval_folder(run_dir, position) / RESULTS_FILE).is_file(), t.job):
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
