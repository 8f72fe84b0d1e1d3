"""Validation's probes (rt1_sim.train.validation.probe_losses): the loss with a blank instruction and with
another window's images equals the true-input loss exactly when the model ignores that input, and differs
when it uses it."""

from __future__ import annotations

import contextlib

import torch

from envs.spaces import ACTION_SIZE
from rt1_sim.model.film_efficientnet import FiLM
from rt1_sim.train.validation import probe_losses


def batch_for(model, size: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    t, v, cfg = model.time_sequence_length, len(model.cam_view), model.config
    valid = torch.ones(size, t, dtype=torch.bool)
    valid[0, :1] = False  # a left-padded window
    return {
        "images": torch.rand(size, t, v, 3, cfg.image_height, cfg.image_width, generator=g),
        "instruction": torch.randn(size, cfg.language_embedding_size, generator=g),
        "valid": valid,
        "tokens": torch.randint(0, cfg.vocab_size, (size, t, ACTION_SIZE), generator=g),
    }


def true_loss(model, batch) -> float:
    with torch.no_grad():
        logits, _ = model(batch["images"], batch["instruction"], batch["valid"])
    valid = batch["valid"]
    ce = torch.nn.functional.cross_entropy(
        logits[valid].flatten(0, 1), batch["tokens"][valid].flatten(), reduction="sum"
    )
    return float(ce)


def probes(model, batch) -> tuple[float, float, float]:
    blank = torch.zeros(model.config.language_embedding_size)
    with torch.no_grad():
        blank_ce, other_ce, steps = probe_losses(model, batch, blank, contextlib.nullcontext).tolist()
    return blank_ce, other_ce, steps


def test_a_model_that_reads_and_looks_loses_on_both_probes(tiny_model) -> None:
    model = tiny_model(time_sequence_length=3)
    batch = batch_for(model)
    loss = true_loss(model, batch)
    blank_ce, other_ce, steps = probes(model, batch)
    assert steps == int(batch["valid"].sum())
    assert abs(blank_ce - loss) > 1e-3 and abs(other_ce - loss) > 1e-3


def test_a_model_blind_to_its_instruction_or_cameras_is_caught(tiny_model) -> None:
    model = tiny_model(time_sequence_length=3)
    batch = batch_for(model)
    with torch.no_grad():  # FiLM back at its zero initialisation: the instruction no longer matters
        for film in model.modules():
            if isinstance(film, FiLM):
                for p in film.parameters():
                    p.zero_()
        frames = batch["images"].flatten(0, 2)  # BatchNorm statistics of these weights (as training gives)
        model.image_encoder.calibrate_batchnorm(
            frames, torch.randn(len(frames), model.config.language_embedding_size)
        )
    loss = true_loss(model, batch)
    blank_ce, other_ce, _ = probes(model, batch)
    assert abs(blank_ce - loss) < 1e-4 * loss and abs(other_ce - loss) > 1e-3
    with torch.no_grad():  # image tokens made constant: the cameras no longer matter
        model.image_encoder.to_tokens.weight.zero_()
    loss = true_loss(model, batch)
    _, other_ce, _ = probes(model, batch)
    assert abs(other_ce - loss) < 1e-4 * loss


def test_a_batch_of_one_has_no_other_images() -> None:
    from tests.model.conftest import make_tiny_model

    model = make_tiny_model(time_sequence_length=2)
    _, other_ce, steps = probes(model, batch_for(model, size=1))
    assert other_ce == 0.0 and steps == 0.0
