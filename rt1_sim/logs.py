"""Logging set-up shared by every command: one format, messages to stderr and to the run folder's log file."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Messages of `level` and above to stderr, in LOG_FORMAT (a no-op when logging is already configured)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


@contextlib.contextmanager
def log_to_file(path: str | Path | None, mode: str = "a") -> Iterator[None]:
    """Also send every message to `path` (mode "a" appends, "w" starts afresh) while the block runs; None: no
    file (e.g. on ranks other than 0)."""
    if path is None:
        yield
        return
    handler = logging.FileHandler(path, mode=mode)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
