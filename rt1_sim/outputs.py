"""Output folders of collect, train and eval: one policy, checked before anything is written.

A command writes into a folder that is new or empty. A folder that already holds files is refused unless the
command is told `--overwrite` (then the files the same command writes are removed first) or the command
resumes what the folder holds (collect with the same settings, train with `resume: true`). Files rt1-sim did
not write are never removed: a folder holding any is refused even with `--overwrite`.

One run at a time writes into a folder: a run holds an exclusive `fcntl.flock` on the folder's LOCK_FILE for
as long as it writes there (`lock_folder`), and a second run is refused with the PID of the first. The kernel
drops the lock when the holding process ends, however it ends, so a killed run never leaves its folder locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from rt1_sim.errors import OutputError

# Inside an output folder while a run writes there (removed when it ends; one a killed run left is reused). No
# folder check counts it as content, and --overwrite never removes it.
LOCK_FILE = ".rt1-sim.lock"


def check_writable(path: str | Path, what: str) -> Path:
    """Refuse an output folder that cannot be created or written: an existing file on its path, or a read-only
    or unwritable parent (a probe file is created there and removed at once). The message names `what` (the
    option) and the path."""
    path = Path(path)
    ancestor = path
    try:
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
    except OSError as e:  # a name longer than the file system allows (ENAMETOOLONG), a folder we may not read
        raise OutputError(f"{what} {path}: not a usable folder path ({e.strerror or e})") from None
    if not ancestor.is_dir():
        where = "is a file" if ancestor == path else f"cannot be created: {ancestor} is a file"
        raise OutputError(f"{what} {path}: {where}; choose a folder")
    _check_name_lengths(path, ancestor, what)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path}: {ancestor} is not writable (read-only file system or permissions)")
    try:  # what os.access cannot know (e.g. root on a file system that refuses writes): try, leave nothing
        fd, probe = tempfile.mkstemp(dir=ancestor, prefix=".rt1-sim-write-check-")
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot write in {ancestor} ({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _check_name_lengths(path: Path, ancestor: Path, what: str) -> None:
    """The folders still to create under `ancestor` must have names the file system takes (NAME_MAX bytes,
    255 on most): mkdir would otherwise create the first ones, then fail."""
    try:
        longest = os.pathconf(ancestor, "PC_NAME_MAX")
    except (OSError, ValueError):  # not every platform says
        return
    for part in path.relative_to(ancestor).parts:
        if len(os.fsencode(part)) > longest:
            raise OutputError(
                f"{what} {path}: the name {part[:40]!r}... is {len(os.fsencode(part))} bytes long; the file "
                f"system takes at most {longest}"
            )


def prepare_folder(path: str | Path, what: str, ours: Iterable[str], overwrite: bool) -> list[Path]:
    """Check that `path` may receive a new run; return what `--overwrite` will remove (nothing is removed
    here).

    `ours` names the entries this command writes. A non-empty folder is refused without `overwrite`, and with
    it when it holds anything else (a folder of other files is never cleared)."""
    path = check_writable(path, what)
    if not path.is_dir():
        return []
    present = sorted(p for p in path.iterdir() if p.name != LOCK_FILE)
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


class FileLock:
    """An exclusive `fcntl.flock` on one file. `acquire` takes it (waiting for it, or not) and writes this
    process's PID into the file; the kernel drops it when the process ends however it ends (a kill included);
    `release` drops it and removes the file, unless `keep`. A use is `with lock:` after a successful acquire.

    The file is removed only while still locked, and `acquire` checks that the file it locked is still the one
    at `path` (else it locks the new one): two processes never both hold a lock on `path`."""

    def __init__(self, path: str | Path, keep: bool = False) -> None:
        self.path = Path(path)
        self.keep = keep
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait: bool = False) -> bool:
        """Take the lock, creating the file; False when another process holds it and not `wait`. An OSError
        (the file cannot be created) propagates."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: this lock is already held")
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                current = os.stat(self.path)
            except BlockingIOError:
                os.close(fd)
                return False
            except FileNotFoundError:  # the holder removed it after our open: lock the next one
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            mine = os.fstat(fd)
            if (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino):
                break
            os.close(fd)  # replaced after our open by a process that has since locked the new file
        self._fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv)}) + "\n").encode())
        return True

    def holder(self) -> int | None:
        """The PID the holder wrote into the file (None: unknown, e.g. not written yet)."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        pid = data.get("pid") if isinstance(data, dict) else None
        return pid if isinstance(pid, int) else None

    def release(self) -> None:
        """Drop the lock (and remove the file unless `keep`); nothing if it is not held."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if not self.keep:
                self.path.unlink(missing_ok=True)  # while still locked: nobody holds a removed file
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()


def _busy(path: Path, what: str, pid: int | None) -> OutputError:
    who = f"PID {pid}" if pid is not None else "PID unknown"
    return OutputError(
        f"{what} {path}: another rt1-sim run ({who}) is writing into this folder; wait for it to end, or "
        "choose another folder"
    )


def check_unlocked(path: str | Path, what: str) -> None:
    """Refuse `path` while another process holds its lock (`lock_folder`); writes nothing (a shared lock on an
    existing lock file is taken and dropped at once), so a command may call it with its first checks."""
    path = Path(path)
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDONLY)
    except OSError:  # no lock file: no run holds the folder
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(path, what, FileLock(path / LOCK_FILE).holder()) from None
    finally:
        os.close(fd)


def lock_folder(path: str | Path, what: str) -> FileLock:
    """Hold the output folder `path` for this run: create it and take its lock without waiting; an
    OutputError naming the folder and the holder's PID when another live process holds it. Call it once every
    check has passed, check the folder again while holding it (the other run may have finished meanwhile),
    and keep it until the run ends (`with lock_folder(...):`)."""
    path = Path(path)
    lock = FileLock(path / LOCK_FILE)
    try:
        path.mkdir(parents=True, exist_ok=True)
        taken = lock.acquire(wait=False)
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot write there ({e.strerror or e})") from None
    if not taken:
        raise _busy(path, what, lock.holder())
    return lock


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
