"""The output-folder rule shared by collect, train and eval (rt1_sim/outputs.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from rt1_sim.errors import OutputError
from rt1_sim.outputs import (
    LOCK_FILE,
    FileLock,
    check_unlocked,
    check_writable,
    lock_folder,
    make_folder,
    prepare_folder,
)

OURS = ("results.json", "videos", "checkpoint_last.pt")


def test_new_or_empty_folders_are_accepted_and_nothing_is_written(tmp_path: Path) -> None:
    assert prepare_folder(tmp_path / "new" / "run", "--out", OURS, overwrite=False) == []
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    assert prepare_folder(tmp_path / "empty", "--out", OURS, overwrite=False) == []
    assert list(tmp_path.iterdir()) == [tmp_path / "empty"]  # the write probe left nothing behind
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_used_folder_is_refused_unless_overwrite_and_never_loses_foreign_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "videos").mkdir(parents=True)
    (run / "results.json").write_text("{}")
    (run / ".checkpoint_last.k2j4.tmp.pt").write_text("a killed atomic write")
    with pytest.raises(OutputError, match=r"--out .*run: already holds .*--overwrite"):
        prepare_folder(run, "--out", OURS, overwrite=False)
    remove = prepare_folder(run, "--out", OURS, overwrite=True)
    assert sorted(p.name for p in remove) == [".checkpoint_last.k2j4.tmp.pt", "results.json", "videos"]
    make_folder(run, "--out", remove)
    assert run.is_dir() and not list(run.iterdir())
    (run / "notes.txt").write_text("a user's file")
    with pytest.raises(OutputError, match="does not write here \\(notes.txt\\)"):
        prepare_folder(run, "--out", OURS, overwrite=True)


def test_paths_that_cannot_be_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputError, match="afile: is a file"):
        check_writable(afile, "--out")
    with pytest.raises(OutputError, match="cannot be created: .*afile is a file"):
        check_writable(afile / "sub", "--out")
    monkeypatch.setattr("rt1_sim.outputs.os.access", lambda *_: False)  # as on a read-only file system
    with pytest.raises(OutputError, match="not writable \\(read-only file system or permissions\\)"):
        check_writable(tmp_path / "ro", "--record")


def test_a_folder_another_run_holds_is_refused_naming_its_pid_until_that_process_dies(
    tmp_path: Path, folder_holder: Callable
) -> None:
    run = tmp_path / "run"
    holder = folder_holder(run)
    busy = f"--out {run}: another rt1-sim run \\(PID {holder.pid}\\) is writing into this folder"
    with pytest.raises(OutputError, match=busy):
        check_unlocked(run, "--out")
    with pytest.raises(OutputError, match=busy):
        lock_folder(run, "--out")
    assert prepare_folder(run, "--out", OURS, overwrite=False) == []  # the lock file is not a run's content
    holder.kill()  # killed, not ended: the kernel drops its lock
    holder.wait()
    check_unlocked(run, "--out")
    assert (run / LOCK_FILE).exists()  # a killed run's lock file stays; it is reused
    with lock_folder(run, "--out") as lock:
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
        assert not FileLock(run / LOCK_FILE).acquire()  # one holder at a time, in this process too
        assert prepare_folder(run, "--out", OURS, overwrite=True) == []  # --overwrite never removes it
    assert not lock.held and not (run / LOCK_FILE).exists()  # a run that ends removes its lock file
    with FileLock(tmp_path / "kept.lock", keep=True) as kept:
        assert kept.acquire(wait=True) and kept.holder() == os.getpid()
    assert (tmp_path / "kept.lock").exists()
