"""The worker pool shared by collection and evaluation: N spawned processes, or this process when N is 1.

Each worker process builds its own env (and policy) once in `initializer`; `imap(fn, items)` yields results in
item order whatever the number of workers, which is what makes datasets and results independent of it.

`concurrent.futures.ProcessPoolExecutor`, not `multiprocessing.Pool`: a Pool restarts a worker whose
initializer raises or that is killed and then waits forever for the lost task (printing the worker's traceback
at every restart); the executor reports both as BrokenProcessPool, which ends the run with one UserError.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from rt1_sim.errors import UserError

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for this process when its parent dies
T = TypeVar("T")
R = TypeVar("R")
Imap = Callable[[Callable[[T], R], Iterable[T]], Iterator[R]]


WORKER_DIED = "a worker process died (killed, out of memory, or it failed to start: see its message above)"


class WorkerDied(UserError):
    """A worker process died. The pool cannot tell what a re-run should be: each command says it
    (`advice`)."""

    def advice(self, how: str) -> WorkerDied:
        """This error with what to do next appended (`raise e.advice(...) from None`)."""
        return WorkerDied(f"{self}; {how}")


@contextlib.contextmanager
def worker_pool(
    workers: int,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    teardown: Callable[[], None],
    local_initargs: tuple[Any, ...] | None = None,
) -> Iterator[Imap]:
    """Yield an ordered `imap(fn, items)`. With `workers` > 1 the items run in spawned processes which each
    call `initializer(*initargs)` first (fn and its arguments must pickle); with 1 they run here, after
    `initializer(*local_initargs)` (default: `initargs`; here unpicklable objects such as an already loaded
    policy may be passed), and `teardown()` releases what it built. A worker that dies (killed, out of memory,
    or its initializer raised) raises one WorkerDied (a UserError); the workers are stopped on exit."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        initializer(*(initargs if local_initargs is None else local_initargs))
        try:
            yield map
        finally:
            teardown()
        return
    executor = ProcessPoolExecutor(
        workers,
        mp_context=mp.get_context("spawn"),
        initializer=_start_worker,
        # pickled here, unpickled after prctl: unpickling imports the initializer's modules (torch, ...)
        initargs=(os.getpid(), pickle.dumps((initializer, initargs))),
    )

    def imap(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        try:
            yield from executor.map(fn, items)
        except BrokenProcessPool:
            raise WorkerDied(WORKER_DIED) from None

    try:
        yield imap
    finally:
        _terminate(executor)


def _terminate(executor: ProcessPoolExecutor) -> None:
    """Stop the workers now: pending items are dropped, a worker in the middle of one is not waited for."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    executor.shutdown(wait=True)


def worker_count(requested: int, items: int, what: str) -> int:
    """`requested` workers, but no more than there are `items` to share or CPU cores to run them on (each
    worker takes a whole core); says so when it caps."""
    from rt1_sim.distributed import available_cores

    count = max(1, min(requested, items, available_cores()))
    if count < requested:
        log.info(
            "%s: %d workers instead of %d (%d %s, %d cores)",
            what,
            count,
            requested,
            items,
            what,
            available_cores(),
        )
    return count


def _start_worker(parent: int, payload: bytes) -> None:
    """First thing in a worker process, before any heavy import: die with the parent (killed with -9, it
    would leave its workers running on their own), then the pool's initializer (`payload`: pickled with its
    arguments)."""
    with contextlib.suppress(OSError, AttributeError):  # Linux: the kernel signals us when the parent dies
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)
    if not sys.platform.startswith("linux"):  # elsewhere: look every second
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    initializer, initargs = pickle.loads(payload)
    initializer(*initargs)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)
