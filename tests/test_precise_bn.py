"""PreciseBN: a checkpoint's policy gets BatchNorm statistics averaged over training batches; training itself
is untouched (same weights, same moving averages, same random numbers), and a resumed run stays bit-exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rt1_sim.config import TrainConfig
from rt1_sim.config_loader import load_config
from rt1_sim.data.windows import collate_windows
from rt1_sim.distributed import Distributed
from rt1_sim.errors import ConfigError
from rt1_sim.model.rt1 import RT1
from rt1_sim.policy import RT1Policy
from rt1_sim.preprocess import images_to_tensor
from rt1_sim.run_layout import LAST_CHECKPOINT
from rt1_sim.train import train
from rt1_sim.train.data import build_data
from rt1_sim.train.precise_bn import batchnorm_layers, precise_batchnorm


def _config(data: Path, log_dir: Path, **overrides: object) -> dict:
    config = {
        "data_path": str(data),
        "log_dir": str(log_dir),
        "preset": "micro",
        "device": "cpu",
        "batch_size": 4,
        "epochs": 1,
        "lr": 3e-3,
        "progress": False,
        "num_val_episode": 1,
        "deterministic": True,
        "instruction_encoder": "hash",
        "network_configs": {"image_height": 32, "image_width": 32, "crop_size": 28, "dropout_rate": 0.1},
    }
    config.update(overrides)
    return config


def _train(path: Path, *overrides: str) -> dict:
    cfg = load_config(TrainConfig, path, overrides)
    return train(cfg, torch.device("cpu"), Distributed(), config_path=path)


def test_statistics_over_one_batch_make_eval_mode_equal_batch_mode(tiny_tabletop_root: Path, tmp_path: Path):
    """Calibrated over exactly one batch, the eval-mode network gives what batch statistics give for that
    batch; the weights, training mode and torch's random numbers are untouched."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_config(tiny_tabletop_root, tmp_path)))
    cfg = load_config(TrainConfig, path)
    data = build_data(cfg, "test", Distributed())
    torch.manual_seed(0)
    model = RT1(cfg.network, cfg.cam_view, cfg.time_sequence_length, tokenizer=data.train.tokenizer)
    # Make the stored moving averages wrong on purpose, as a trailing average of other weights would be.
    for norm in batchnorm_layers(model):
        norm.running_mean.fill_(3.0)
        norm.running_var.fill_(0.01)
    weights = {k: v.clone() for k, v in model.named_parameters()}
    windows = list(range(8))
    batch = collate_windows([data.train[i] for i in windows])
    images, valid = images_to_tensor(batch["images"], torch.device("cpu")), batch["valid"]

    model.eval()
    with torch.no_grad():
        stale = model.encode_window(images, batch["instruction"], valid)
        for norm in batchnorm_layers(model):
            norm.train()
        batch_mode = model.encode_window(images, batch["instruction"], valid)
    model.train()
    for norm in batchnorm_layers(model):  # encode_window's calls above moved the averages: wrong again
        norm.running_mean.fill_(3.0)
        norm.running_var.fill_(0.01)

    rng = torch.get_rng_state()
    frames = precise_batchnorm(model, data.train, 1, len(data.train), 0, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng)
    assert frames == sum(int(data.train[i]["valid"].sum()) for i in range(len(data.train)))
    assert not model.training
    for name, value in model.named_parameters():
        assert torch.equal(value, weights[name]), name

    # The one batch of every window; compare on the chosen 8 (eval mode is per sample).
    with torch.no_grad():
        calibrated = model.encode_window(images, batch["instruction"], valid)
        everything = collate_windows([data.train[i] for i in range(len(data.train))])
        for norm in batchnorm_layers(model):
            norm.train()
        reference = model.encode_window(
            images_to_tensor(everything["images"], torch.device("cpu")),
            everything["instruction"],
            everything["valid"],
        )[windows]
    model.eval()
    real = valid  # padding steps are zeros either way
    assert torch.allclose(calibrated[real], reference[real], rtol=2e-2, atol=2e-3)
    assert not torch.allclose(stale[real], batch_mode[real], rtol=2e-2, atol=2e-3)


def test_a_run_with_precise_bn_trains_the_same_weights_and_resumes_bit_exactly(
    tiny_tabletop_root: Path, tmp_path: Path
):
    """precise_bn_batches changes only the BatchNorm statistics of the policy in each checkpoint: every weight
    and training's own moving averages equal those of a run without it, a resumed run ends where an
    uninterrupted one does, and the policy loads the calibrated statistics."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_config(tiny_tabletop_root, tmp_path)))
    _train(path, "run_name=plain")
    _train(path, "run_name=whole", "precise_bn_batches=2")
    _train(path, "run_name=part", "precise_bn_batches=2", "max_steps=2")
    part = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    resume_from = f"resume_from_checkpoint={tmp_path / 'part' / LAST_CHECKPOINT}"
    _train(path, "resume=true", resume_from, "precise_bn_batches=2")

    plain = torch.load(tmp_path / "plain" / LAST_CHECKPOINT, weights_only=True)
    whole = torch.load(tmp_path / "whole" / LAST_CHECKPOINT, weights_only=True)
    again = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    assert plain["step"] == whole["step"] == again["step"] > 2 == part["step"]
    ema = whole["batchnorm_ema"]
    assert ema and "batchnorm_ema" not in plain
    for key, tensor in plain["model"].items():
        if key in ema:  # the run without PreciseBN holds training's moving averages
            assert torch.equal(tensor, ema[key]), key
            assert key.endswith("num_batches_tracked") or not torch.equal(tensor, whole["model"][key]), key
        else:
            assert torch.equal(tensor, whole["model"][key]), key
    for part_name in ("model", "batchnorm_ema"):
        for key, tensor in whole[part_name].items():
            assert torch.equal(tensor, again[part_name][key]), (part_name, key)
    policy = RT1Policy.from_checkpoint(tmp_path / "whole" / LAST_CHECKPOINT)
    loaded = policy.model.state_dict()
    for key in ema:
        assert torch.equal(loaded[key], whole["model"][key]), key


def test_frozen_batchnorm_trains_with_the_statistics_of_its_step(tiny_tabletop_root: Path, tmp_path: Path):
    """freeze_batchnorm_at_step N: from step N on the network normalises by the PreciseBN statistics of step N
    (what step N's checkpoint holds), which no later step moves; the weights then follow another path than
    with batch statistics, a resumed run (before or after step N) ends bit-exactly where an uninterrupted one
    does, and a resume that would rewrite the past is refused."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_config(tiny_tabletop_root, tmp_path, precise_bn_batches=2)))
    freeze = "freeze_batchnorm_at_step=2"
    _train(path, "run_name=free")
    _train(path, "run_name=whole", freeze)
    _train(path, "run_name=before", freeze, "max_steps=2")
    _train(path, "run_name=after", freeze, "max_steps=3")
    before = torch.load(tmp_path / "before" / LAST_CHECKPOINT, weights_only=True)
    after = torch.load(tmp_path / "after" / LAST_CHECKPOINT, weights_only=True)
    assert "batchnorm_ema" in before and "batchnorm_ema" not in after  # after step 2, "model" is what trains
    for name in ("before", "after"):
        checkpoint = f"resume_from_checkpoint={tmp_path / name / LAST_CHECKPOINT}"
        _train(path, "resume=true", checkpoint, freeze)

    free = torch.load(tmp_path / "free" / LAST_CHECKPOINT, weights_only=True)
    whole = torch.load(tmp_path / "whole" / LAST_CHECKPOINT, weights_only=True)
    assert whole["step"] == free["step"] > 3
    assert "batchnorm_ema" not in whole
    statistics = [k for k in whole["model"] if k.endswith(("running_mean", "running_var"))]
    assert statistics
    for key in statistics:  # step 2's PreciseBN statistics, untouched by the steps after it
        assert torch.equal(whole["model"][key], before["model"][key]), key
        assert torch.equal(whole["model"][key], after["model"][key]), key
    weights = [k for k, v in whole["model"].items() if v.is_floating_point() and k not in statistics]
    assert any(not torch.equal(whole["model"][k], free["model"][k]) for k in weights)
    for name in ("before", "after"):
        resumed = torch.load(tmp_path / name / LAST_CHECKPOINT, weights_only=True)
        assert resumed["step"] == whole["step"]
        for key, tensor in whole["model"].items():
            assert torch.equal(tensor, resumed["model"][key]), (name, key)

    _train(path, "run_name=free_part", "max_steps=3")
    refusals = (
        ("after", "freeze_batchnorm_at_step=null", "keeps freeze_batchnorm_at_step 2"),
        ("after", "freeze_batchnorm_at_step=3", "keeps freeze_batchnorm_at_step 2"),
        ("free_part", freeze, "set it to 3 or later"),
    )
    for name, setting, message in refusals:
        checkpoint = f"resume_from_checkpoint={tmp_path / name / LAST_CHECKPOINT}"
        with pytest.raises(ConfigError, match=message):
            _train(path, "resume=true", checkpoint, setting, "run_name=refused")
        assert not (tmp_path / "refused").exists()


def test_freezing_batchnorm_needs_precise_bn(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_config(tmp_path, tmp_path, freeze_batchnorm_at_step=5)))
    with pytest.raises(ConfigError, match="freeze_batchnorm_at_step needs precise_bn_batches"):
        load_config(TrainConfig, path)


def test_freezing_at_the_end_of_an_epoch_resumes_bit_exactly(tiny_tabletop_root: Path, tmp_path: Path):
    """Frozen at an epoch's last step, the statistics are those a run resumed from that step's checkpoint
    computes (its data already on the next epoch's crops)."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_config(tiny_tabletop_root, tmp_path, precise_bn_batches=2)))
    steps = _train(path, "run_name=one")["steps"]  # one epoch
    settings = ("epochs=2", f"freeze_batchnorm_at_step={steps}")
    _train(path, "run_name=whole", *settings)
    _train(path, "run_name=part", *settings, f"max_steps={steps}")
    part = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    assert (part["step"], part["epoch"], part["epoch_step"]) == (steps, 1, 0)
    checkpoint = f"resume_from_checkpoint={tmp_path / 'part' / LAST_CHECKPOINT}"
    _train(path, "resume=true", checkpoint, *settings, "max_steps=null")
    whole = torch.load(tmp_path / "whole" / LAST_CHECKPOINT, weights_only=True)
    again = torch.load(tmp_path / "part" / LAST_CHECKPOINT, weights_only=True)
    assert whole["step"] == again["step"] == 2 * steps
    for key, tensor in whole["model"].items():
        assert torch.equal(tensor, again["model"][key]), key
        if key.endswith("running_mean"):
            assert torch.equal(tensor, part["model"][key]), key  # step `steps`'s PreciseBN statistics
