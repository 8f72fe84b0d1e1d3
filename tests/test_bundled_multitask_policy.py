"""The bundled multi-task RT-1 checkpoint (assets/checkpoints/rt1_multitask_cpu.pt): present, small, made by
the recipe train_configs/multitask_cpu.json, what `--policy auto` runs on PandaTabletop-v0, and acting as it
did when it was shipped on one `seen` scene per task family. CI never retrains it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from envs.tabletop import PandaTabletopEnv
from envs.tasks import TASKS
from rt1_sim.checkpoint import load_checkpoint
from rt1_sim.eval import resolve_policy
from rt1_sim.model.action_tokenizer import action_table_rows
from rt1_sim.model.presets import PRESETS, NetworkConfig
from rt1_sim.policy import RT1Policy
from rt1_sim.resources import EVAL_CONFIGS, TRAIN_CONFIGS, bundled_checkpoint, resource_path
from rt1_sim.rollout import rollout

MULTITASK_ENV_ID = "PandaTabletop-v0"
BUNDLED_CHECKPOINT = bundled_checkpoint(MULTITASK_ENV_ID)
RECIPE = resource_path(TRAIN_CONFIGS, "multitask_cpu.json")
STEPS = 3


def seen_seeds() -> dict[str, int]:
    """The benchmark's first `seen` scene of each family (what `rt1-sim benchmark` gives that cell)."""
    manifest = json.loads(resource_path(EVAL_CONFIGS, "multitask", "manifest.json").read_text())
    seen = json.loads(resource_path(EVAL_CONFIGS, "multitask", "seen.json").read_text())
    stride = manifest["family_seed_stride"]
    return {family: seen["seed_start"] + k * stride for k, family in enumerate(manifest["families"])}


# The first STEPS actions on each family's first `seen` scene, recorded when the checkpoint was shipped
# (`python -P tests/test_bundled_multitask_policy.py` prints them), with each scene's instruction.
SEEN_SEEDS = seen_seeds()
EXPECTED_INSTRUCTIONS = {
    "pick": "grab the orange brick",
    "move_near": "move the orange brick near the blue cylinder",
    "place_in": "drop the purple cylinder in the red bowl",
    "stack": "set the green cube on the orange brick",
    "push": "slide the purple brick to the front",
    "drawer": "push the drawer closed",
}
EXPECTED_ACTIONS: dict[str, list[list[float]]] = {
    "pick": [
        [-0.04, -0.04, -0.04, 0.0, 0.0, -0.25, -1.0, 0.0],
        [-0.04, -0.04, -0.04, 0.0, 0.0, -0.25, -1.0, 0.0],
        [-0.04, 0.04, -0.04, 0.0, 0.0, -0.25, -1.0, 0.0],
    ],
    "move_near": [
        [-0.04, -0.04, -0.04, 0.0, 0.0, 0.0, -1.0, 0.0],
        [-0.04, -0.04, -0.04, 0.0, 0.0, -0.25, -1.0, 0.0],
        [-0.007874, -0.013543, -0.04, 0.0, 0.0, -0.25, -1.0, 0.0],
    ],
    "place_in": [
        [0.04, 0.04, -0.04, 0.0, 0.0, 0.0, -1.0, 0.0],
        [0.04, 0.04, -0.04, 0.0, 0.0, 0.0, -1.0, 0.0],
        [0.013858, 0.04, -0.04, 0.0, 0.0, 0.0, -1.0, 0.0],
    ],
    "stack": [
        [0.04, 0.04, -0.04, 0.0, 0.0, -0.25, -1.0, 0.0],
        [0.04, 0.04, -0.04, 0.0, 0.0, -0.25, -1.0, 0.0],
        [-0.005669, -0.007874, -0.04, 0.0, 0.0, -0.25, -1.0, 0.0],
    ],
    "push": [
        [-0.04, 0.04, -0.04, 0.0, 0.0, 0.0, 1.0, 0.0],
        [-0.04, 0.04, -0.04, 0.0, 0.0, 0.0, 1.0, 0.0],
        [-0.04, 0.04, -0.04, 0.0, 0.0, 0.0, 1.0, 0.0],
    ],
    "drawer": [
        [-0.007874, 0.04, -0.04, 0.0, 0.0, 0.0, 1.0, 0.0],
        [-0.00315, 0.04, -0.04, 0.0, 0.0, -0.049213, 1.0, 0.0],
        [0.000945, 0.000315, -0.008504, 0.0, 0.0, 0.0, 1.0, 0.0],
    ],
}


def first_actions(policy: RT1Policy, family: str, steps: int = STEPS) -> tuple[str, list[np.ndarray]]:
    """The policy driving `family`'s first `seen` scene for `steps` steps (the evaluation's rollout loop):
    (instruction, actions)."""
    env = PandaTabletopEnv(task=family)
    actions: list[np.ndarray] = []
    try:
        episode = rollout(
            env, policy, SEEN_SEEDS[family], steps, lambda _obs, _info, a: a is not None and actions.append(a)
        )
    finally:
        env.close()
    return episode.instruction, actions


@pytest.fixture(scope="module")
def policy() -> RT1Policy:
    return RT1Policy.from_checkpoint(BUNDLED_CHECKPOINT)


def test_bundled_multitask_checkpoint_is_the_shipped_recipe() -> None:
    assert BUNDLED_CHECKPOINT.stat().st_size < 50 * 2**20
    state = load_checkpoint(BUNDLED_CHECKPOINT)  # weights_only=True
    config = state["model_config"]
    recipe = json.loads(RECIPE.read_text())
    expected_network = NetworkConfig.from_dict(recipe["network_configs"], base=PRESETS[recipe["preset"]])
    assert NetworkConfig.from_dict(config["network"], base=NetworkConfig()) == expected_network
    assert expected_network.keypoint_maps == 3  # the recipe the README describes
    assert config["cam_view"] == recipe["cam_view"]
    assert config["time_sequence_length"] == recipe["time_sequence_length"]
    assert state["action_table"] == action_table_rows()
    assert {"optimizer", "scheduler", "rng", "step"} <= set(state)  # the run's checkpoint_last: resumable
    trained = state["config"]  # the resolved training config: the recipe, key for key
    resolved = ("resume", "resume_from_checkpoint", "data_path", "network_configs")
    assert {key: trained[key] for key in recipe if key not in resolved} == {
        key: value for key, value in recipe.items() if key not in resolved
    }
    assert {key: trained["network_configs"][key] for key in recipe["network_configs"]} == recipe[
        "network_configs"
    ]
    # data_path resolved to the collection's per-family folders
    assert trained["data_path"] == [f"{recipe['data_path']}/Panda_{family}" for family in sorted(TASKS)]


def test_policy_auto_runs_the_bundled_multitask_checkpoint() -> None:
    choice = resolve_policy("auto", MULTITASK_ENV_ID)
    assert choice.kind == "rt1" and choice.checkpoint == BUNDLED_CHECKPOINT


@pytest.mark.parametrize("family", list(SEEN_SEEDS))
def test_bundled_multitask_policy_acts_as_when_it_was_shipped(policy: RT1Policy, family: str) -> None:
    assert set(SEEN_SEEDS) == set(TASKS)
    instruction, actions = first_actions(policy, family)
    assert instruction == EXPECTED_INSTRUCTIONS[family]  # the scene is the one recorded
    # Compared as action tokens (what the network chose): equal up to one bin.
    tokenizer = policy.model.tokenizer
    tokens_off = np.abs(
        tokenizer.tokenize(np.stack(actions)) - tokenizer.tokenize(np.asarray(EXPECTED_ACTIONS[family]))
    )
    assert tokens_off.max() <= 1, np.stack(actions)


if __name__ == "__main__":
    shipped = RT1Policy.from_checkpoint(BUNDLED_CHECKPOINT)
    recorded = {name: first_actions(shipped, name) for name in SEEN_SEEDS}
    print("EXPECTED_INSTRUCTIONS = {")
    for name, (text, _) in recorded.items():
        print(f"    {name!r}: {text!r},")
    print("}")
    print("EXPECTED_ACTIONS: dict[str, list[list[float]]] = {")
    for name, (_, acts) in recorded.items():
        print(f"    {name!r}: [")
        for act in acts:
            print("        " + repr([round(float(x), 6) for x in act]) + ",")
        print("    ],")
    print("}")
