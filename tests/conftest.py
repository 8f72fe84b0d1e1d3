"""Shared fixtures: tiny datasets made by the tests themselves."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rt1_sim.collect import CollectConfig, collect, collect_datasets


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four scripted-expert episodes (both cameras, default image size), collected once per test session."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    collect(root, 4, CollectConfig(seed=0), workers=1, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_tabletop_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-task root: PandaTabletop-v0 with task "mix", two 32x32 episodes per family, one Panda_<family>
    dataset folder each (collected once per test session)."""
    root = tmp_path_factory.mktemp("data") / "tabletop"
    cfg = CollectConfig(
        seed=0, env_id="PandaTabletop-v0", env_options={"task": "mix", "image_size": [32, 32]}
    )
    collect_datasets(root, 2, cfg, workers=1, progress=False)
    return root


# Another process that holds an output folder (rt1_sim.outputs.lock_folder) until it is killed.
_HOLDER = (
    "import sys, time; from rt1_sim.outputs import lock_folder; lock = lock_folder(sys.argv[1], '--out'); "
    "print('held', flush=True); time.sleep(600)"
)


@pytest.fixture()
def folder_holder() -> Iterator[Callable[[Path], subprocess.Popen]]:
    """`hold(folder)` starts a process that creates `folder` and holds its lock, as a running rt1-sim command
    does; it returns once the lock is held. Every such process is killed at the end of the test."""
    procs: list[subprocess.Popen] = []

    def hold(folder: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()
