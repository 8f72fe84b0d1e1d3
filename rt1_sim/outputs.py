"""Output folders of collect, train and eval: one policy, checked before anything is written.

A command writes into a folder that is new or empty. A folder that already holds files is refused unless the
command is told `--overwrite` (then the files the same command writes are removed first) or the command
resumes what the folder holds (collect with the same settings, train with `resume: true`). Files rt1-sim did
not write are never removed: a folder holding any is refused even with `--overwrite`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from rt1_sim.errors import OutputError


def check_writable(path: str | Path, what: str) -> Path:
    """Refuse an output folder that cannot be created or written: an existing file on its path, or a read-only
    or unwritable parent (a probe file is created there and removed at once). The message names `what` (the
    option) and the path."""
    path = Path(path)
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        where = "is a file" if ancestor == path else f"cannot be created: {ancestor} is a file"
        raise OutputError(f"{what} {path}: {where}; choose a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: {ancestor} is not writable (read-only file system or permissions)")
    try:  # what os.access cannot know (e.g. root on a file system that refuses writes): try, leave nothing
        fd, probe = tempfile.mkstemp(dir=ancestor, prefix=".rt1-sim-write-check-")
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot write in {ancestor} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def prepare_folder(path: str | Path, what: str, ours: Iterable[str], overwrite: bool) -> list[Path]:
    """Check that `path` may receive a new run; return what `--overwrite` will remove (nothing is removed
    here).

    `ours` names the entries this command writes. A non-empty folder is refused without `overwrite`, and with
    it when it holds anything else (a folder of other files is never cleared)."""
    path = check_writable(path, what)
    if not path.is_dir():
        return []
    present = sorted(path.iterdir())
    if not present:
        return []
    names = [p.name for p in present]
    if not overwrite:
        raise OutputError(
            f"{what} {path}: already holds {_listing(names)}; choose a new folder, or pass --overwrite to "
            "replace that run"
        )
    foreign = [n for n in names if not _is_ours(n, set(ours))]
    if foreign:
        raise OutputError(
            f"{what} {path}: holds files rt1-sim does not write here ({_listing(foreign)}); --overwrite "
            "only replaces a run's own files: choose a new folder"
        )
    return present


def make_folder(path: str | Path, what: str, remove: Iterable[Path] = ()) -> Path:
    """Remove `remove` (from `prepare_folder`) and create `path`; an OSError becomes a UserError naming it."""
    path = Path(path)
    try:
        for p in remove:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot write there ({e.strerror or e})") from None
    return path


def _is_ours(name: str, ours: set[str]) -> bool:
    """One of `ours`, or the temporary file of an atomic write of one (".checkpoint_last.x1y2.tmp.pt", left
    by a killed run)."""
    if name in ours:
        return True
    stems = {Path(o).stem for o in ours}
    return name.startswith(".") and ".tmp" in name and name[1:].split(".")[0] in stems


def _listing(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
