"""Checkpoints: atomic write, weights_only round trip, one clear error per kind of damage."""

from __future__ import annotations

import pytest
import torch

from rt1_sim.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rt1_sim.model import build_model, checkpoint_state


def test_round_trip_rebuilds_the_same_model(tiny_model, tmp_path):
    model = tiny_model(using_proprioception=True)
    model.set_proprio_normalization(torch.arange(17.0), torch.full((17,), 2.0))
    path = tmp_path / "run" / "checkpoint.pt"
    save_checkpoint(path, {**checkpoint_state(model, default_instruction="lift"), "step": 7})
    state = load_checkpoint(path)  # weights_only=True inside
    assert state["step"] == 7 and state["model_config"]["default_instruction"] == "lift"
    rebuilt = build_model(state["model_config"])
    rebuilt.load_state_dict(state["model"])
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # emitted while importing torch's compiler
def test_compiled_models_are_saved_without_the_wrapper_prefix(tiny_model):
    model = tiny_model()
    state = checkpoint_state(torch.compile(model))
    assert set(state["model"]) == set(model.state_dict())


def test_overwrite_replaces_the_file(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model": {}, "model_config": {}, "action_table": [], "epoch": 1})
    save_checkpoint(path, {"model": {}, "model_config": {}, "action_table": [], "epoch": 2})
    assert load_checkpoint(path)["epoch"] == 2


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.pt: no such file"):
        load_checkpoint(tmp_path / "nothere.pt")


def test_truncated_file_is_named(tiny_model, tmp_path):
    path = tmp_path / "truncated.pt"
    save_checkpoint(path, checkpoint_state(tiny_model()))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: not a readable checkpoint"):
        load_checkpoint(path)


def test_foreign_files_and_missing_keys_are_named(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.txt"):
        load_checkpoint(text)
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(2), tensor)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tensor)
    partial = tmp_path / "partial.pt"
    torch.save({"model": {}}, partial)
    with pytest.raises(
        CheckpointError, match=r"partial\.pt: missing key\(s\) \['model_config', 'action_table'\]"
    ):
        load_checkpoint(partial)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"model": {}, "model_config": object(), "action_table": []}, path)
    with pytest.raises(CheckpointError, match="pickled.pt"):
        load_checkpoint(path)
