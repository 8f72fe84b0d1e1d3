"""Atomic file writes: readers (and a crash) see the old file or the new one, never a part of one.

Every writer of the project (checkpoints, results, dataset_info.json, videos, plots) goes through here: the
new content goes to a temporary file in the same folder, is flushed to disk, and replaces the target with
`os.replace` (atomic on POSIX and Windows); then the folder entry itself is synced where the platform allows.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from rt1_sim.errors import OutputError

# The errors of a full disk or an exhausted quota: the user's to fix (free space), never a bug.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def default_file_mode() -> int:
    """0o666 less the process umask: the mode `open()` gives a new file (mkstemp's 0o600 would hide results,
    datasets and checkpoints from the user's group)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (the folder entry); not possible on every platform, where it is skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def disk_full_as_error(path: str | Path) -> Iterator[None]:
    """While writing `path` (a file or the folder a run writes into): a full disk or quota becomes one
    OutputError naming it, also when a writer raised another error while handling it (torch.save's zip
    writer fails on closing a file whose write failed); every other error propagates as it is."""
    try:
        yield
    except Exception as e:
        cause = _disk_full(e)
        if cause is None:
            raise
        raise OutputError(f"{path}: cannot write it: {os.strerror(cause.errno)}; free some space") from None


def _disk_full(error: BaseException | None) -> OSError | None:
    """The full-disk OSError that `error` is, or that it was raised while handling; None if there is none."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return error
        error = error.__context__
    return None


@contextlib.contextmanager
def atomic_path(path: str | Path, tmp_prefix: str = ".") -> Iterator[Path]:
    """Yield a temporary path next to `path` with the same suffix (tools such as ffmpeg choose the format by
    it); when the block ends normally the file is synced and renamed onto `path`, otherwise removed. The
    temporary name starts with `tmp_prefix` (a folder's cleaner may look for it)."""
    path = Path(path)
    with disk_full_as_error(path):
        fd, name = tempfile.mkstemp(
            dir=path.parent, prefix=f"{tmp_prefix}{path.stem}.", suffix=f".tmp{path.suffix}"
        )
    os.close(fd)
    tmp = Path(name)
    try:
        with disk_full_as_error(path):  # the temporary file is removed below: nothing half-written stays
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], tmp_prefix: str = ".") -> None:
    """Call `write(f)` on a binary file that atomically becomes `path` when it returns."""
    with atomic_path(path, tmp_prefix) as tmp, open(tmp, "wb") as f:
        write(f)


def atomic_write_text(path: str | Path, text: str, tmp_prefix: str = ".") -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), tmp_prefix)


def complete_mp4(path: Path) -> bool:
    """Whether `path` is a whole MP4: its top-level boxes fill the file exactly and include the `moov` index,
    which ffmpeg writes when it closes the file (a cut file lacks it or ends inside a box)."""
    size, offset, boxes = path.stat().st_size, 0, set()
    with open(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(16)
            if len(header) < 8:
                return False
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if length == 1 and len(header) == 16:  # a 64-bit size follows the type
                length = int.from_bytes(header[8:16], "big")
            if length < 8:  # 0 ("to the end of the file") is only ever an unfinished box here
                return False
            boxes.add(kind)
            offset += length
    return offset == size and b"moov" in boxes
