"""`rt1-sim train` and `python -m rt1_sim.train` (what torchrun launches): load the config, pick the device,
join the process group, train, print the summary."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from rt1_sim import distributed
from rt1_sim.config import TrainConfig
from rt1_sim.config_loader import add_override_argument, load_config
from rt1_sim.distributed import Distributed, launch_environment
from rt1_sim.errors import ConfigError
from rt1_sim.train.loop import train


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

    parser = argparse.ArgumentParser(prog="python -m rt1_sim.train", description="train RT-1 on a dataset")
    add_arguments(parser)
    return run_command("rt1-sim train", run, parser.parse_args(argv))
