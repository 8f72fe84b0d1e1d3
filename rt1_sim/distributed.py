"""This process's place in a torchrun / torch.distributed.launch job, read from the launcher's environment.

Training and evaluation both use it; torch is imported only to join or leave a process group, so evaluating
the scripted or random policy never loads it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Distributed:
    """Rank and sizes of the job (one process: rank 0 of 1); `local_*` count the processes of this machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launch_environment() -> Distributed:
    """RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE as torchrun (or `launch --use_env`) sets them."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return Distributed(rank, world, local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def init_process_group(job: Distributed, backend: str) -> Any:
    """Join the job's process group (env:// rendezvous, as torchrun sets it up) unless already joined; returns
    `torch.distributed`, or None for a single process."""
    if not job.enabled:
        return None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend, rank=job.rank, world_size=job.world_size)
    return dist


def destroy_process_group() -> None:
    """Leave the process group if one was joined (never imports torch itself)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
