"""RT-1: FiLM-EfficientNet image tokens (+ proprioception tokens) -> causal transformer -> action logits.

Per timestep the transformer sees [camera 0 tokens][camera 1 tokens]...[proprio tokens][action tokens]. Each
camera keeps its own tokens (IO summed the token sets of its per-camera encoders, which throws away which view
a token came from; here one shared encoder tokenises every view and the position embedding tells them apart,
at the price of a longer sequence). Windows are right-aligned: the newest frame is always timestep T-1, and
earlier, not-yet-seen steps are padding, marked invalid by a (B, T) mask: valid tokens never attend to them
and the loss ignores them.

`encode_frames` (one frame per sample, all cameras in one batch) and `forward_tokens` (the transformer over a
window of already-encoded frames) are the two halves of `forward`; the streaming policy caches the former.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from envs.spaces import ACTION_SIZE, CAMERA_NAMES, PROPRIO_SIZES
from rt1_sim.model.action_tokenizer import ActionTokenizer, action_table_rows
from rt1_sim.model.film_efficientnet import FiLMEfficientNet
from rt1_sim.model.keypoints import KeypointReadout
from rt1_sim.model.presets import INFERENCE_CROPS, NetworkConfig
from rt1_sim.model.token_learner import TokenLearner
from rt1_sim.model.transformer import Transformer, action_read_positions, rt1_attention_mask
from rt1_sim.preprocess import PROPRIO_SIZE


class ProprioTokenizer(nn.Module):
    """Proprioception (B, T, PROPRIO_SIZE) -> one token per PROPRIO_SIZES entry (B, T, K, D), from inputs
    standardised with dataset statistics (buffers, saved with the weights; identity until set)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.sizes = tuple(PROPRIO_SIZES.values())
        self.embed = nn.ModuleList(nn.Linear(size, width) for size in self.sizes)
        self.register_buffer("mean", torch.zeros(PROPRIO_SIZE))
        self.register_buffer("std", torch.ones(PROPRIO_SIZE))

    def forward(self, proprio: torch.Tensor) -> torch.Tensor:
        parts = ((proprio - self.mean) / self.std).split(self.sizes, dim=-1)  # K x (B, T, size)
        tokens = [embed(p) for embed, p in zip(self.embed, parts, strict=True)]  # K x (B, T, D)
        return torch.stack(tokens, dim=2)  # (B, T, K, D)


class RT1(nn.Module):
    """The RT-1 network: `forward(images, instruction, valid, proprio, target_tokens) -> (logits, loss)`."""

    def __init__(
        self,
        config: NetworkConfig,
        cam_view: Sequence[str] = CAMERA_NAMES,
        time_sequence_length: int = 6,
        using_proprioception: bool = False,
        tokenizer: ActionTokenizer | None = None,
    ) -> None:
        """`tokenizer` (default: built from `config.vocab_size` and the action table) turns the logits into
        actions and the targets into tokens; its vocabulary must be the network's."""
        super().__init__()
        if isinstance(cam_view, str) or not cam_view or len(set(cam_view)) != len(cam_view):
            raise ValueError(f"cam_view must be a non-empty list of distinct camera names, got {cam_view!r}")
        if time_sequence_length < 1:
            raise ValueError(f"time_sequence_length must be positive, got {time_sequence_length}")
        self.config = config
        self.cam_view = tuple(cam_view)
        self.time_sequence_length = time_sequence_length
        self.using_proprioception = using_proprioception
        # How a policy prepares each camera frame after resizing it to the network's size: "center" crops
        # config.crop_size and resizes back, the scale of training's random crops
        # (TrainConfig.inference_crop); "none" feeds the full frame. Recorded in model_config; the network
        # itself never crops.
        self.inference_crop = "none"
        self.tokenizer = tokenizer if tokenizer is not None else ActionTokenizer(config.vocab_size)
        if self.tokenizer.vocab_size != config.vocab_size:
            raise ValueError(
                f"action tokenizer has {self.tokenizer.vocab_size} tokens, the network {config.vocab_size}"
            )
        width = config.token_embedding_size_per_image

        self.image_encoder = FiLMEfficientNet(config)
        self.token_learner = (
            TokenLearner(
                width, config.token_learner_num_tokens, config.token_learner_hidden_size, config.dropout_rate
            )
            if config.use_token_learner
            else None
        )
        self.proprio_tokenizer = ProprioTokenizer(width) if using_proprioception else None
        # Built only when asked for: a network without keypoint maps draws the same random numbers as before.
        self.keypoints = (
            KeypointReadout(
                width, config.language_embedding_size, config.keypoint_maps, config.feature_map_size
            )
            if config.keypoint_maps
            else None
        )

        self.tokens_per_frame = len(self.cam_view) * config.tokens_per_image  # image tokens of one timestep
        self.context_tokens = self.tokens_per_frame + (len(PROPRIO_SIZES) if using_proprioception else 0)
        self.action_tokens = ACTION_SIZE
        steps, context, actions = time_sequence_length, self.context_tokens, self.action_tokens
        self.transformer = Transformer(
            input_size=width,
            d_model=config.feed_forward_size,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            head_size=config.layer_size,
            vocab_size=config.vocab_size,
            max_length=steps * (context + actions),
            dropout=config.dropout_rate,
        )
        # FiLM context = (instruction embedding - shift) * gain: the identity unless training standardised it
        # (`set_instruction_normalization`); saved with the weights, so a policy sees what training saw.
        self.register_buffer("instruction_shift", torch.zeros(config.language_embedding_size))
        self.register_buffer("instruction_gain", torch.ones(()))
        self.register_buffer("attention_mask", rt1_attention_mask(steps, context, actions), persistent=False)
        self.register_buffer(
            "read_positions", action_read_positions(steps, context, actions), persistent=False
        )

    def set_proprio_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Standardise proprioception with dataset statistics (PROPRIO_SIZE each); std is floored at 1e-6."""
        if self.proprio_tokenizer is None:
            raise ValueError("this model was built with using_proprioception=False")
        self.proprio_tokenizer.mean.copy_(torch.as_tensor(mean))
        self.proprio_tokenizer.std.copy_(torch.as_tensor(std).clamp(min=1e-6))

    def set_instruction_normalization(self, embeddings: torch.Tensor) -> None:
        """Centre the FiLM context on the mean of `embeddings` (K, E), the training set's distinct
        instructions, and scale it to unit root-mean-square norm: the size of a raw unit-norm sentence
        embedding. Sentence embeddings of related instructions share most of their direction (Universal
        Sentence Encoder cosines 0.55-0.8 here); centred, the part that tells them apart is what FiLM sees.
        The scale matters: at unit variance per dimension instead (norm 22 for USE), a cpu-preset policy
        trained for an epoch on the six tabletop families gave the same image tokens for every scene, its FiLM
        scales grown to 1.5-3 on average. One distinct instruction: centring only."""
        shift = embeddings.mean(0)
        norm = float((embeddings - shift).pow(2).sum(1).mean()) ** 0.5
        self.instruction_shift.copy_(shift)
        self.instruction_gain.fill_(1.0 / norm if norm > 1e-8 else 1.0)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """As nn.Module's; weights saved before instruction normalisation existed load with the identity."""
        state = dict(state_dict)
        state.setdefault("instruction_shift", torch.zeros_like(self.instruction_shift))
        state.setdefault("instruction_gain", torch.ones_like(self.instruction_gain))
        return super().load_state_dict(state, strict=strict, assign=assign)

    def encode_frames(
        self, images: torch.Tensor, instruction: torch.Tensor, return_maps: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """One frame per sample: images (N, V, 3, H, W) in [0, 1], instruction (N, E) -> tokens (N, V * n, D),
        camera-major (each camera's TokenLearner tokens, then its keypoint tokens). Every camera of every
        sample goes through the encoder as one batch. `return_maps` (a network with keypoint maps): also the
        maps' logits (N, V, K, h * w)."""
        n, v = images.shape[:2]
        expected = (len(self.cam_view), 3, self.config.image_height, self.config.image_width)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"images have shape {tuple(images.shape)}, expected (N, {', '.join(map(str, expected))}): "
                f"cameras {list(self.cam_view)} at the network's image size"
            )
        # Every view of a sample gets the sample's FiLM context.
        instruction = (instruction - self.instruction_shift) * self.instruction_gain
        context = instruction.repeat_interleave(v, dim=0)  # (N * V, E)
        features = self.image_encoder(images.flatten(0, 1), context)  # (N * V, D, h, w)
        tokens = features.flatten(2).transpose(1, 2)  # (N * V, h * w, D)
        keypoints = maps = None
        if self.keypoints is not None:
            keypoints, maps = self.keypoints(tokens, context)  # (N * V, K, D), (N * V, K, h * w)
        if self.token_learner is not None:
            tokens = self.token_learner(tokens)  # (N * V, n, D)
        if keypoints is not None:
            tokens = torch.cat([tokens, keypoints], dim=1)
        tokens = tokens.reshape(n, v * tokens.shape[1], -1)  # (N, V * n, D)
        if not return_maps:
            return tokens
        if maps is None:
            raise ValueError("this network has no keypoint maps (network config keypoint_maps is 0)")
        return tokens, maps.unflatten(0, (n, v))

    def _attention_mask(self, valid: torch.Tensor | None) -> torch.Tensor:
        """(1, L, L) paper mask, or (B, L, L) with keys of invalid timesteps removed. An invalid query attends
        to itself only: its output is never used, and an all-masked row would make NaNs."""
        if valid is None:
            return self.attention_mask[None]
        step = self.context_tokens + self.action_tokens
        token_valid = valid.repeat_interleave(step, dim=1)  # (B, L)
        allowed = self.attention_mask[None] & token_valid[:, None, :]  # (B, L, L)
        eye = torch.eye(allowed.shape[-1], dtype=torch.bool, device=valid.device)
        return allowed | (eye[None] & ~token_valid[:, :, None])

    def forward_tokens(
        self,
        frame_tokens: torch.Tensor,
        valid: torch.Tensor | None = None,
        proprio: torch.Tensor | None = None,
        last_step_only: bool = False,
    ) -> torch.Tensor:
        """frame_tokens (B, T, V * n, D) from `encode_frames`, valid (B, T) bool, proprio (B, T, PROPRIO_SIZE)
        -> logits (B, T, A, vocab), or (B, 1, A, vocab) for the newest step only when `last_step_only`."""
        b, t = frame_tokens.shape[:2]
        if t != self.time_sequence_length:
            raise ValueError(
                f"window has {t} timesteps, the model takes {self.time_sequence_length} (pad it)"
            )
        if (proprio is not None) != self.using_proprioception:
            raise ValueError(f"proprio must be given iff using_proprioception ({self.using_proprioception})")
        context = frame_tokens
        if self.proprio_tokenizer is not None:
            context = torch.cat([frame_tokens, self.proprio_tokenizer(proprio)], dim=2)  # (B, T, C, D)
        # Action-token inputs are zeros: actions are read out, never fed back (as in RT-1).
        actions = context.new_zeros(b, t, self.action_tokens, context.shape[-1])  # (B, T, A, D)
        sequence = torch.cat([context, actions], dim=2).flatten(1, 2)  # (B, T * (C + A), D)
        positions = self.read_positions[-self.action_tokens :] if last_step_only else self.read_positions
        logits = self.transformer(sequence, self._attention_mask(valid), positions)  # (B, T' * A, vocab)
        return logits.view(b, -1, self.action_tokens, logits.shape[-1])  # (B, T', A, vocab)

    def forward(
        self,
        images: torch.Tensor,
        instruction: torch.Tensor,
        valid: torch.Tensor | None = None,
        proprio: torch.Tensor | None = None,
        target_tokens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """images (B, T, V, 3, H, W) float in [0, 1], instruction (B, E), valid (B, T) bool (default: all),
        proprio (B, T, PROPRIO_SIZE), target_tokens (B, T, A) long -> (logits (B, T, A, vocab), loss | None).

        Only valid frames are encoded (padding neither costs compute nor enters BatchNorm statistics)."""
        logits = self.forward_tokens(self.encode_window(images, instruction, valid), valid, proprio)
        loss = action_loss(logits, target_tokens, valid) if target_tokens is not None else None
        return logits, loss

    def encode_window(
        self,
        images: torch.Tensor,
        instruction: torch.Tensor,
        valid: torch.Tensor | None = None,
        return_maps: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """images (B, T, V, 3, H, W), instruction (B, E), valid (B, T) -> frame tokens (B, T, V * n, D), zeros
        at invalid steps (which are not encoded); with `return_maps`, also the keypoint maps' logits
        (B, T, V, K, h * w), zeros at invalid steps."""
        b, t = images.shape[:2]
        frames = images.flatten(0, 1)  # (B * T, V, 3, H, W)
        context = instruction.repeat_interleave(t, dim=0)  # (B * T, E)
        keep = None if valid is None or bool(valid.all()) else valid.flatten()  # (B * T,)
        if keep is not None:
            frames, context = frames[keep], context[keep]
        encoded = self.encode_frames(frames, context, return_maps)  # (M, V * n, D)[, (M, V, K, P)]
        outputs = encoded if return_maps else (encoded,)
        if keep is not None:
            outputs = tuple(x.new_zeros(b * t, *x.shape[1:]).index_put((keep,), x) for x in outputs)
        outputs = tuple(x.view(b, t, *x.shape[1:]) for x in outputs)
        return outputs if return_maps else outputs[0]


def action_loss(
    logits: torch.Tensor, target_tokens: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy over the action tokens of every valid timestep.

    logits (B, T, A, vocab), target_tokens (B, T, A) long, valid (B, T) bool (None: every timestep)."""
    if valid is not None:
        logits, target_tokens = logits[valid], target_tokens[valid]  # (M, A, vocab), (M, A)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target_tokens.reshape(-1))


def model_config(
    model: RT1, instruction_encoder: Mapping[str, Any] | None = None, default_instruction: str = ""
) -> dict[str, Any]:
    """Plain dict that rebuilds `model` (with `build_model`) and its policy: network sizes, cameras, history
    length, proprioception, instruction encoder settings (`encoder_settings(...)`), default instruction."""
    return {
        "network": model.config.to_dict(),
        "cam_view": list(model.cam_view),
        "time_sequence_length": model.time_sequence_length,
        "using_proprioception": model.using_proprioception,
        "instruction_encoder": dict(
            instruction_encoder or {"name": "hash", "size": model.config.language_embedding_size}
        ),
        "default_instruction": default_instruction,
        "inference_crop": model.inference_crop,
    }


def build_model(config: Mapping[str, Any], tokenizer: ActionTokenizer | None = None) -> RT1:
    """An untrained RT1 from a `model_config` dict (a checkpoint's "model_config"), with `tokenizer` (default:
    built from the network's vocab_size)."""
    missing = [
        k for k in ("network", "cam_view", "time_sequence_length", "using_proprioception") if k not in config
    ]
    if missing:
        raise ValueError(f"model_config lacks {missing}")
    crop = config.get("inference_crop", "none")  # checkpoints written before it existed: the full frame
    if crop not in INFERENCE_CROPS:
        raise ValueError(f"model_config inference_crop must be one of {INFERENCE_CROPS}, got {crop!r}")
    model = RT1(
        NetworkConfig.from_dict(config["network"], source="model_config['network']"),
        cam_view=config["cam_view"],
        time_sequence_length=config["time_sequence_length"],
        using_proprioception=config["using_proprioception"],
        tokenizer=tokenizer,
    )
    model.inference_crop = crop
    return model


def checkpoint_state(
    model: nn.Module, instruction_encoder: Mapping[str, Any] | None = None, default_instruction: str = ""
) -> dict[str, Any]:
    """The model part of a checkpoint: {"model", "model_config", "action_table", "action_tokenizer"}; training
    adds its own keys. Weights come from the uncompiled module (no `_orig_mod.` prefixes)."""
    raw = getattr(model, "_orig_mod", model)
    if not isinstance(raw, RT1):
        raise TypeError(f"expected an RT1 model, got {type(raw).__name__}")
    return {
        "model": raw.state_dict(),
        "model_config": model_config(raw, instruction_encoder, default_instruction),
        "action_table": action_table_rows(),
        "action_tokenizer": raw.tokenizer.to_dict(),
    }
