"""Shared fixtures: tiny datasets made by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt1_sim.collect import CollectConfig, collect


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four scripted-expert episodes (both cameras, default image size), collected once per test session."""
    root = tmp_path_factory.mktemp("data") / "tiny"
    collect(root, 4, CollectConfig(seed=0), workers=1, progress=False)
    return root
