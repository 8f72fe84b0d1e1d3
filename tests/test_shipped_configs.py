"""Every shipped config loads, and every suite's seeds stay clear of the seeds the shipped recipes collect."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt1_sim.config import MULTITASK_ENV_ID, EvalConfig, TrainConfig
from rt1_sim.config_loader import load_config

REPO = Path(__file__).resolve().parent.parent
TRAIN_CONFIGS = sorted((REPO / "train_configs").glob("*.json"))
EVAL_SUITES = sorted((REPO / "eval_configs").glob("*.json")) + sorted(
    p for p in (REPO / "eval_configs" / "multitask").glob("*.json") if p.name != "manifest.json"
)
# The README's collection commands: first seed and episodes (per family for a multi-task env).
COLLECTED_SEEDS = range(0, 20_400)  # panda_pick (0..999), panda_pick_varied (0..1599), multitask (0..807 per
# family, failed attempts included), panda_pick_default (20000..20399)


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: p.name)
def test_training_configs_load(path: Path) -> None:
    cfg = load_config(TrainConfig, path)
    if cfg.eval_config is not None:
        suite = load_config(EvalConfig, REPO / cfg.eval_config)
        assert suite.env_id == (MULTITASK_ENV_ID if "multitask" in path.name else "PandaPick-v0")


@pytest.mark.parametrize("path", EVAL_SUITES, ids=lambda p: p.name)
def test_suites_load_and_never_use_a_collection_seed(path: Path) -> None:
    suite = load_config(EvalConfig, path)
    assert min(suite.seeds) >= COLLECTED_SEEDS.stop


@pytest.mark.parametrize("name", ["multitask_cpu.json"])
def test_the_multitask_recipe_trains_with_the_sentence_encoder_and_watches_every_family(name: str) -> None:
    cfg = load_config(TrainConfig, REPO / "train_configs" / name)
    assert cfg.instruction_encoder == "use" and tuple(cfg.cam_view) == ("front", "wrist")
    assert cfg.data_path == "data/multitask" and cfg.checkpoint_every_steps > 0
    # target, goal and gripper maps: what took a 700-scene pick probe from 3 to 11 successes of 30
    assert cfg.network.keypoint_maps == 3 and cfg.keypoint_weight > 0
    suite = load_config(EvalConfig, REPO / cfg.eval_config)
    assert suite.env_options.get("task", "mix") == "mix" and suite.policy.instruction == "given"
    validation = set(suite.seeds)
    for path in EVAL_SUITES:
        other = load_config(EvalConfig, path)
        if other.name != suite.name:
            assert validation.isdisjoint(other.seeds), path.name  # monitoring never sees a reported scene
