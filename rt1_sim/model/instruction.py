"""Instruction encoders: a task string -> the `language_embedding_size` vector that conditions the FiLMs.

RT-1 used a 512-d Universal Sentence Encoder embedding; nothing may be downloaded here, so the default is a
deterministic, download-free embedding: a unit vector drawn from a generator seeded by the sha256 of the
normalised string (different instructions get near-orthogonal vectors; a single-task run gets one fixed
vector). IO's behaviour, a constant zero vector, is the "zeros" encoder. Any callable with a `size` attribute
that maps a string to a float32 vector of that size can be plugged into `RT1Policy` (a sentence encoder, for
instance); the training Dataset must then use the same one.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, runtime_checkable

import numpy as np


def normalize_instruction(instruction: str) -> str:
    """Canonical form: underscores as spaces (datasets write `pick_up_the_red_cube`), lowercase."""
    return " ".join(instruction.replace("_", " ").lower().split())


@runtime_checkable
class InstructionEncoder(Protocol):
    """Maps an instruction to a float32 vector of `size` values."""

    size: int

    def __call__(self, instruction: str) -> np.ndarray: ...


class HashInstructionEncoder:
    """Unit vector seeded by sha256(normalised instruction): the same in every run, machine and process."""

    name = "hash"

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, instruction: str) -> np.ndarray:
        digest = hashlib.sha256(normalize_instruction(instruction).encode("utf-8")).digest()
        vector = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(self.size)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


class ZeroInstructionEncoder:
    """IO's choice: the same zero vector for every instruction (FiLM layers then learn constant affines)."""

    name = "zeros"

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, instruction: str) -> np.ndarray:
        return np.zeros(self.size, np.float32)


INSTRUCTION_ENCODERS: dict[str, type[HashInstructionEncoder] | type[ZeroInstructionEncoder]] = {
    "hash": HashInstructionEncoder,
    "zeros": ZeroInstructionEncoder,
}


def make_instruction_encoder(name: str, size: int) -> InstructionEncoder:
    """A built-in encoder by name ("hash" or "zeros")."""
    if name not in INSTRUCTION_ENCODERS:
        raise ValueError(
            f"unknown instruction encoder {name!r}; built-in ones are {sorted(INSTRUCTION_ENCODERS)}"
        )
    return INSTRUCTION_ENCODERS[name](size)


def encoder_settings(encoder: InstructionEncoder) -> dict[str, Any]:
    """Plain dict that `make_instruction_encoder(**settings)` turns back into the encoder (checkpoints)."""
    name = getattr(encoder, "name", None)
    if name not in INSTRUCTION_ENCODERS:
        raise ValueError(
            f"instruction encoder {type(encoder).__name__} is not a built-in one "
            f"({sorted(INSTRUCTION_ENCODERS)}) and cannot be recorded in a checkpoint; pass it when loading"
        )
    return {"name": name, "size": encoder.size}
