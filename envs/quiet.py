"""Silence what PyBullet prints from C (`pybullet build time: ...` at import on stderr, `argv[0]=` at connect
on stdout): those lines go to the file descriptors, past Python's sys.stdout/sys.stderr, so the descriptors
themselves are pointed at /dev/null for the duration."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator


def _flush_c_stdio() -> None:
    """Flush C's stdio buffers (printf to a pipe is block-buffered: it would otherwise appear later)."""
    # no C library to load (e.g. Windows): nothing to flush
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def quiet_c_output() -> Iterator[None]:
    """Send whatever C code prints to fds 1 and 2 inside the block to /dev/null; Python's streams are flushed
    first so nothing of theirs is lost, and errors raised inside still propagate."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.flush()
    try:
        saved = [os.dup(fd) for fd in (1, 2)]
    except OSError:  # no such descriptors (a detached process): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(devnull, fd)
        yield
    finally:
        _flush_c_stdio()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
