"""The worker pool shared by collection and evaluation: N spawned processes, or this process when N is 1.

Each worker process builds its own env (and policy) once in `initializer`; `imap(fn, items)` yields results in
item order whatever the number of workers, which is what makes datasets and results independent of it.

`concurrent.futures.ProcessPoolExecutor`, not `multiprocessing.Pool`: a Pool restarts a worker whose
initializer raises or that is killed and then waits forever for the lost task (printing the worker's traceback
at every restart); the executor reports both as BrokenProcessPool, which ends the run with one UserError.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from rt1_sim.errors import UserError

T = TypeVar("T")
R = TypeVar("R")
Imap = Callable[[Callable[[T], R], Iterable[T]], Iterator[R]]


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
    or its initializer raised) raises one UserError; the workers are stopped on exit."""
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
        workers, mp_context=mp.get_context("spawn"), initializer=initializer, initargs=initargs
    )

    def imap(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        try:
            yield from executor.map(fn, items)
        except BrokenProcessPool:
            raise UserError(
                "a worker process died (killed, out of memory, or it failed to start: see its message "
                "above); what was finished is kept, re-run the same command to continue"
            ) from None

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
