"""Shared fixtures: tiny datasets made by the tests themselves."""

from __future__ import annotations

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
