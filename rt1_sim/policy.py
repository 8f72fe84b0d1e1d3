"""The one Policy protocol every controller implements: scripted expert, random policy and RT-1.

`reset(instruction)` at the start of each episode (the env's instruction string, from `info["instruction"]`;
policies that need no language ignore it), `act(obs) -> action` every control step, numpy in and numpy out:
the env's observation dict in, a flat float32 action of `envs.spaces.ACTION_SIZE` values out.

`RT1Policy` imports torch and the model only when one is built, so that collection and the rollout loop, which
import this module, never load torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from envs.spaces import ACTION_HIGH, ACTION_LOW, ACTION_SLICES

if TYPE_CHECKING:
    import torch

    from rt1_sim.model.instruction import InstructionEncoder
    from rt1_sim.model.rt1 import RT1


@runtime_checkable
class Policy(Protocol):
    """Anything that can drive the env for one episode at a time."""

    def reset(self, instruction: str | None = None) -> None:
        """Forget everything about the previous episode; `instruction` is the new episode's task."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Return the flat action (float32, ACTION_SIZE) for the current observation."""


class RandomPolicy:
    """Uniform random actions inside the action table's bounds, never asking to terminate: the floor."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._rng = np.random.default_rng(seed)

    def reset(self, instruction: str | None = None) -> None:
        pass

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action = self._rng.uniform(ACTION_LOW, ACTION_HIGH).astype(np.float32)
        action[ACTION_SLICES["terminate_episode"]] = 0.0
        return action


def make_expert(env: Any, noise: float = 0.0, seed: int = 0) -> Policy:
    """The env's scripted expert (reads privileged state from `env`; for PandaTabletop-v0 `task="mix"`, the
    current episode's family's expert): envs.make_expert decides, so rt1_sim never names a task."""
    import envs

    return envs.make_expert(env, noise=noise, seed=seed)


@dataclass
class _History:
    """Streaming state of N envs: the last T frames' image tokens (computed once per frame), proprioception,
    which of the T slots hold a real frame (right-aligned, oldest first), and each env's FiLM context."""

    tokens: torch.Tensor  # (N, T, V * n, D)
    proprio: torch.Tensor | None  # (N, T, PROPRIO_SIZE)
    valid: torch.Tensor  # (N, T) bool
    context: torch.Tensor  # (N, E)


class RT1Policy:
    """RT-1 as a Policy, streaming: each `act` encodes only the newest frame (all cameras and envs in one
    batch), appends its tokens to a cache of the last `time_sequence_length` frames and runs the transformer
    once over that window, which gives every action dimension at once. Early in an episode the window is
    left-padded and the padding masked, exactly as in training: the result equals `model(window)` on the
    padded window.

    `act(obs)` takes one env's observation dict (returns (ACTION_SIZE,)) or, for N envs at once, a list of
    dicts or a dict of stacked arrays (returns (N, ACTION_SIZE)). Camera frames of another size than the
    network's are resized to it as the frame cache resized the training frames (`resize_images`): a policy
    trained at 64x64 on a dataset recorded at 96x96 sees in an env rendering 96x96 exactly what it trained on.
    The batch size is fixed by the first `act` after a full `reset()`; `reset(instruction, env_index=i)`
    restarts one env of a running batch.
    """

    def __init__(
        self,
        model: RT1,
        instruction_encoder: InstructionEncoder | None = None,
        default_instruction: str = "",
        torch_compile: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        """`model` stays on the device the caller put it on and is switched to eval mode. Inference options
        (benchmarks/inference_latency.py measures them; see the README):
        - `torch_compile`: torch.compile the image encoder and the transformer in place, with inductor's
          freezing (BatchNorm folded into the convolutions, weights as constants): faster, same actions, but
          the model must not be trained afterwards, and the first calls take a while.
        - `autocast_dtype` (e.g. torch.bfloat16): autocast; faster with AMX, but changes some actions."""
        from rt1_sim.model.instruction import HashInstructionEncoder, cached_encoder

        self.model = model.eval()
        self.device = next(model.parameters()).device
        size = model.config.language_embedding_size
        # Memoised: each distinct instruction is embedded once, not at every reset. (`is None`, not `or`: a
        # memoised encoder that has embedded nothing yet has length 0, and is falsy.)
        if instruction_encoder is None:
            instruction_encoder = HashInstructionEncoder(size)
        self.instruction_encoder = cached_encoder(instruction_encoder)
        if self.instruction_encoder.size != size:
            raise ValueError(
                f"instruction encoder gives {self.instruction_encoder.size} values, model takes {size}"
            )
        self.torch_compile = torch_compile
        if torch_compile:
            model.image_encoder.compile()
            model.transformer.compile()
        self.autocast_dtype = autocast_dtype
        self.instruction = default_instruction
        self._context = self._embed(default_instruction)  # (E,) used by envs that start with reset()
        self._history: _History | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        instruction_encoder: InstructionEncoder | None = None,
        **kwargs: Any,
    ) -> RT1Policy:
        """Rebuild model, action tokenizer and instruction encoder from a checkpoint ("model", "model_config",
        "action_table", "action_tokenizer" when present); every failure is a CheckpointError naming the file.
        Extra kwargs go to the constructor."""
        from rt1_sim.checkpoint import MODEL_KEYS, CheckpointError, checkpoint_tokenizer, load_checkpoint
        from rt1_sim.model.instruction import checkpoint_encoder
        from rt1_sim.model.rt1 import build_model

        state = load_checkpoint(path, required=MODEL_KEYS, map_location=device)
        tokenizer = checkpoint_tokenizer(state, path)
        config = state["model_config"]
        try:
            model = build_model(config, tokenizer)
            model.load_state_dict(state["model"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(
                f"checkpoint {path}: cannot rebuild the model ({type(e).__name__}: {e})"
            ) from e
        try:  # the recorded encoder, or the one passed if it is the same
            instruction_encoder = checkpoint_encoder(config, instruction_encoder)
        except ValueError as e:
            raise CheckpointError(f"checkpoint {path}: {e}") from e
        return cls(model.to(device), instruction_encoder, config.get("default_instruction", ""), **kwargs)

    def _embed(self, instruction: str) -> torch.Tensor:
        import torch

        return torch.as_tensor(self.instruction_encoder(instruction), dtype=torch.float32, device=self.device)

    def reset(self, instruction: str | None = None, env_index: int | None = None) -> None:
        """Start new episode(s) with `instruction` (None keeps the previous one). Without `env_index`: every
        env, and the next `act` chooses the batch size again; with it: only that env of the running batch."""
        if env_index is None:
            if instruction is not None:
                self.instruction, self._context = instruction, self._embed(instruction)
            self._history = None
            return
        if self._history is None:
            raise ValueError("reset(env_index=...) restarts one env of a running batch; call act() first")
        import torch

        h = self._history
        with torch.inference_mode():  # the history tensors are inference tensors (made in `act`)
            h.valid[env_index] = False
            h.tokens[env_index] = 0.0
            if h.proprio is not None:
                h.proprio[env_index] = 0.0
            if instruction is not None:
                h.context[env_index] = self._embed(instruction)

    def start(self, instructions: Sequence[str]) -> None:
        """Start a batch of len(instructions) envs, env i told instructions[i] (what `reset` and the first
        `act` do for envs that share one instruction)."""
        import torch

        self._history = self._new_history(len(instructions))
        with torch.inference_mode():
            self._history.context = torch.stack([self._embed(text) for text in instructions])

    def retain(self, rows: Sequence[int]) -> None:
        """Keep only these envs of the running batch (their histories in this order): envs whose episodes are
        over and get no new one leave the batch, so the next `act` computes only what is still needed."""
        import torch

        h = self._history
        if h is None:
            raise ValueError("retain() keeps envs of a running batch; call act() or start() first")
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.device)
        with torch.inference_mode():
            self._history = _History(
                tokens=h.tokens[index],
                proprio=h.proprio[index] if h.proprio is not None else None,
                valid=h.valid[index],
                context=h.context[index],
            )

    def act(self, obs: dict[str, np.ndarray] | Sequence[dict[str, np.ndarray]]) -> np.ndarray:
        """Flat float32 action (ACTION_SIZE,) for one observation dict, (N, ACTION_SIZE) for N envs."""
        return self.act_with_logits(obs)[0]

    def act_with_logits(
        self, obs: dict[str, np.ndarray] | Sequence[dict[str, np.ndarray]]
    ) -> tuple[np.ndarray, torch.Tensor]:
        """`act`, also returning the newest step's logits (N, ACTION_SIZE, vocab) (float32, on the device)."""
        import contextlib

        import torch

        from rt1_sim.preprocess import observation_to_tensors, stack_observations

        model = self.model
        batched = not isinstance(obs, Mapping) or np.ndim(obs[model.cam_view[0]]) == 4
        if not isinstance(obs, Mapping):
            obs = stack_observations(obs)
        elif not batched:
            obs = {key: np.asarray(value)[None] for key, value in obs.items()}
        size = (model.config.image_height, model.config.image_width)  # frames of another size are resized
        crop = model.config.crop_size if model.inference_crop == "center" else None
        images, proprio = observation_to_tensors(
            obs, model.cam_view, self.device, model.using_proprioception, image_size=size, crop_size=crop
        )
        n = images.shape[0]  # images (N, V, 3, H, W)
        h = self._history
        if h is None:
            h = self._history = self._new_history(n)
        elif h.valid.shape[0] != n:
            raise ValueError(
                f"act() got {n} observations, the running batch has {h.valid.shape[0]}; reset() first"
            )
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        freezing = contextlib.nullcontext()
        if self.torch_compile:
            import torch._inductor.config

            # Freezing is set around the calls (they compile lazily), not process-wide, where it would also
            # freeze any model being trained; given as torch.compile(options=...) it measured slower.
            freezing = torch._inductor.config.patch(freezing=True)
        with torch.inference_mode(), autocast, freezing:
            new = model.encode_frames(images, h.context).float()  # (N, V * n, D): the only image encoding
            # Slide the window by one frame: the oldest slot drops out, the newest goes to T-1.
            h.tokens = torch.cat([h.tokens[:, 1:], new[:, None]], dim=1)  # (N, T, V * n, D)
            h.valid = torch.cat([h.valid[:, 1:], h.valid.new_ones(n, 1)], dim=1)  # (N, T)
            if h.proprio is not None:
                h.proprio = torch.cat([h.proprio[:, 1:], proprio[:, None]], dim=1)  # (N, T, P)
            valid = None if bool(h.valid.all()) else h.valid  # a full window needs no padding mask
            logits = model.forward_tokens(h.tokens, valid, h.proprio, last_step_only=True)[:, 0].float()
        # The model's own tokenizer: decoded with the vocabulary the network was built with.
        actions = model.tokenizer.logits_to_actions(logits).cpu().numpy()  # (N, ACTION_SIZE)
        return (actions if batched else actions[0]), logits

    def _new_history(self, n: int) -> _History:
        import torch

        model, t = self.model, self.model.time_sequence_length
        width = model.config.token_embedding_size_per_image
        proprio = None
        if model.using_proprioception:
            from rt1_sim.preprocess import PROPRIO_SIZE

            proprio = torch.zeros(n, t, PROPRIO_SIZE, device=self.device)
        return _History(
            tokens=torch.zeros(n, t, model.tokens_per_frame, width, device=self.device),
            proprio=proprio,
            valid=torch.zeros(n, t, dtype=torch.bool, device=self.device),
            context=self._context.expand(n, -1).clone(),
        )


class SharedBatch:
    """A VectorPolicy (rt1_sim.rollout) over one batched policy (RT1Policy): every slot with an episode under
    way is one env of its batch, so one `act` is one forward pass for all of them. A slot that begins a new
    episode restarts its env (`reset(instruction, env_index)`); a slot that ends with none to follow leaves
    the batch (`retain`)."""

    def __init__(self, policy: RT1Policy) -> None:
        self.policy = policy
        self.rows: list[int] | None = None  # the slot of each env of the batch, in batch order
        self.begun: dict[int, str] = {}  # slot -> instruction of an episode begun since the last act

    def begin(self, slot: int, seed: int, instruction: str) -> None:
        self.begun[slot] = instruction

    def end(self, slot: int) -> None:
        pass  # the slot's env leaves the batch at the next act unless a new episode begins in it

    def act(self, obs: Mapping[int, dict[str, np.ndarray]]) -> dict[int, np.ndarray]:
        slots = sorted(obs)
        if self.rows is None or set(slots) <= set(self.begun):  # every episode is new: a new batch
            self.policy.start([self.begun[slot] for slot in slots])
            self.rows = slots
        else:
            for slot, instruction in self.begun.items():
                self.policy.reset(instruction, env_index=self.rows.index(slot))
            if slots != self.rows:
                self.policy.retain([self.rows.index(slot) for slot in slots])
                self.rows = slots
        self.begun.clear()
        actions = self.policy.act([obs[slot] for slot in slots])
        return {slot: action for slot, action in zip(slots, actions)}


class TellInstead:
    """A VectorPolicy that tells `policy` `told[seed]` instead of each episode's own instruction (the
    language ablations of `rt1-sim benchmark`)."""

    def __init__(self, policy: Any, told: Mapping[int, str]) -> None:
        self.policy, self.told = policy, told

    def begin(self, slot: int, seed: int, instruction: str) -> None:
        self.policy.begin(slot, seed, self.told[seed])

    def act(self, obs: Mapping[int, dict[str, np.ndarray]]) -> dict[int, np.ndarray]:
        return self.policy.act(obs)

    def end(self, slot: int) -> None:
        self.policy.end(slot)
