"""The worker pool shared by collection and evaluation: N spawned processes, or this process when N is 1.

Each worker process builds its own env (and policy) once in `initializer`; `imap(fn, items)` yields results in
item order whatever the number of workers, which is what makes datasets and results independent of it.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

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
    """Yield an ordered `imap(fn, items)`. With `workers` > 1 the items run in a spawned pool whose processes
    each call `initializer(*initargs)` first (fn and its arguments must pickle); with 1 they run here, after
    `initializer(*local_initargs)` (default: `initargs`; here unpicklable objects such as an already loaded
    policy may be passed), and `teardown()` releases what it built. The pool is terminated on exit."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        initializer(*(initargs if local_initargs is None else local_initargs))
        try:
            yield map
        finally:
            teardown()
        return
    pool = mp.get_context("spawn").Pool(workers, initializer, initargs)
    try:
        yield pool.imap
    finally:
        pool.terminate()
