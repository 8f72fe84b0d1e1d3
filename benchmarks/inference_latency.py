"""Per-control-step latency of RT1Policy (per-frame token cache, one transformer pass) against IO's evaluator
procedure, on the same weights, with a check that both choose the same actions.

- cached: `RT1Policy.act(obs)`: encodes the newest frame (all cameras in one batch), runs the transformer once
  over the cached window and reads all action dimensions from that pass.
- naive (IO's evaluator, IO_evaluator.py `inference`): every control step starts from an empty network state
  and calls the network once per history slot i = 0..T-1; call i encodes frame i (every camera) and runs the
  transformer once per action dimension (T x 8 = 48 passes for T = 6); the last call's action is used.
- naive_window (a kinder reading of the same procedure): all T frames re-encoded in one batch, then one
  transformer pass per action dimension (8 passes).
The naive procedures run as IO runs them (fp32, torch.no_grad); the cached one with the chosen inference
options. Weights are random, with BatchNorm statistics taken from random frames so that activations have a
normal scale. Timed steps start once the history window is full; earlier calls (and compilation) are warm-up.

    python benchmarks/inference_latency.py [--preset cpu|paper|micro] [--cameras 2] [--steps 5]
        [--no-compile] [--bf16] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import numpy as np
import torch

from envs.spaces import ACTION_SIZE, CAMERA_NAMES, PROPRIO_SIZES
from rt1_sim.cli import positive_int
from rt1_sim.model.presets import PRESETS, get_preset
from rt1_sim.model.rt1 import RT1
from rt1_sim.policy import RT1Policy
from rt1_sim.preprocess import observation_to_tensors, stack_observations


def random_episode(steps: int, cameras: tuple[str, ...], height: int, width: int, seed: int) -> list[dict]:
    """Observations with random images (and proprioception, unused here) for `steps` control steps."""
    rng = np.random.default_rng(seed)
    episode = []
    for _ in range(steps):
        obs = {c: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for c in cameras}
        obs.update({k: rng.standard_normal(n).astype(np.float32) for k, n in PROPRIO_SIZES.items()})
        episode.append(obs)
    return episode


def io_evaluator_step(model: RT1, frames: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """IO's procedure for one step: frames (T, V, 3, H, W), context (1, E) -> tokens (ACTION_SIZE,)."""
    t = model.time_sequence_length
    state = frames.new_zeros(1, t, model.tokens_per_frame, model.config.token_embedding_size_per_image)
    for i in range(t):  # one network call per history slot, from an empty state
        state[:, i] = model.encode_frames(frames[i : i + 1], context)
        tokens = []
        for k in range(ACTION_SIZE):  # one transformer pass per action dimension
            logits = model.forward_tokens(state)  # (1, T, A, vocab); slots after i are still zeros
            tokens.append(model.tokenizer.logits_to_tokens(logits[0, i])[k])
    return torch.stack(tokens)


def window_step(model: RT1, frames: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """All T frames re-encoded at once, then one transformer pass per action dimension -> (ACTION_SIZE,)."""
    window = model.encode_frames(frames, context.expand(frames.shape[0], -1))[None]  # (1, T, V * n, D)
    tokens = [
        model.tokenizer.logits_to_tokens(model.forward_tokens(window)[0, -1])[k] for k in range(ACTION_SIZE)
    ]
    return torch.stack(tokens)


def measure(args: argparse.Namespace) -> dict:
    """Run one random episode through the cached policy and both naive procedures; the JSON result."""
    torch.manual_seed(args.seed)
    config = get_preset(args.preset)
    cameras = CAMERA_NAMES[: args.cameras]
    model = RT1(config, cam_view=cameras, time_sequence_length=args.time_sequence_length).eval()
    t = model.time_sequence_length
    h, w = config.image_height, config.image_width
    episode = random_episode(t + args.steps, cameras, h, w, args.seed)
    calibration, _ = observation_to_tensors(stack_observations(episode[:4]), cameras)  # (4, V, 3, H, W)
    contexts = torch.zeros(calibration.shape[0] * len(cameras), config.language_embedding_size)
    model.image_encoder.calibrate_batchnorm(calibration.flatten(0, 1), contexts)
    naive_model = copy.deepcopy(model)  # the same weights, left as IO would run them
    policy = RT1Policy(
        model,
        torch_compile=args.compile,
        autocast_dtype=torch.bfloat16 if args.bf16 else None,
    )
    instruction = "pick up the red cube"
    policy.reset(instruction)
    # The same instruction embedding for the naive procedures.
    context = torch.as_tensor(policy.instruction_encoder(instruction))[None]  # (1, E)

    def naive_inputs(step: int) -> torch.Tensor:
        window = stack_observations(episode[step - t + 1 : step + 1])
        return observation_to_tensors(window, cameras)[0]  # (T, V, 3, H, W)

    cached_ms, naive_ms, window_ms, identical, warmup_s = [], [], [], True, 0.0
    for step in range(len(episode)):
        t0 = time.perf_counter()
        action = policy.act(episode[step])
        elapsed = time.perf_counter() - t0
        timed = step >= t  # warm-up: the padded steps and the first full window (compilation, allocations)
        warmup_s += 0.0 if timed else elapsed
        if step < t - 1:
            continue  # the naive procedures are compared on full windows only
        with torch.no_grad():
            t1 = time.perf_counter()
            io_tokens = io_evaluator_step(naive_model, naive_inputs(step), context)
            t2 = time.perf_counter()
            window_tokens = window_step(naive_model, naive_inputs(step), context)
            t3 = time.perf_counter()
        for tokens in (io_tokens, window_tokens):
            identical &= bool(np.array_equal(naive_model.tokenizer.detokenize(tokens).numpy(), action))
        if timed:
            cached_ms.append(1e3 * elapsed)
            naive_ms.append(1e3 * (t2 - t1))
            window_ms.append(1e3 * (t3 - t2))
    cached, naive, naive_window = (statistics.median(x) for x in (cached_ms, naive_ms, window_ms))
    return {
        "preset": args.preset,
        "params": sum(p.numel() for p in naive_model.parameters()),
        "cameras": len(cameras),
        "time_sequence_length": t,
        "image_size": [h, w],
        "timed_steps": args.steps,
        "settings": {
            "inference_mode": True,
            "torch_compile": args.compile,
            "bf16": args.bf16,
            "threads": torch.get_num_threads(),
        },
        "warmup_s": round(warmup_s, 2),
        "cached_ms": round(cached, 2),
        "naive_ms": round(naive, 2),
        "ratio": round(naive / cached, 2),
        "naive_window_ms": round(naive_window, 2),
        "ratio_window": round(naive_window / cached, 2),
        "actions_identical": identical,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--cameras", type=int, default=2, choices=range(1, len(CAMERA_NAMES) + 1))
    parser.add_argument("--time-sequence-length", type=positive_int, default=6)
    parser.add_argument(
        "--steps", type=positive_int, default=5, help="timed control steps (after the warm-up)"
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="torch.compile the cached policy (compilation is part of the warm-up)",
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the cached policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['preset']}: {result['params'] / 1e6:.2f}M parameters, {result['cameras']} camera(s), "
        f"T={result['time_sequence_length']}, {result['image_size'][0]}x{result['image_size'][1]}, "
        f"{result['settings']}"
    )
    print(f"  cached (RT1Policy)           {result['cached_ms']:9.1f} ms/step")
    print(f"  naive (IO evaluator)         {result['naive_ms']:9.1f} ms/step   {result['ratio']:.1f}x")
    window = f"{result['naive_window_ms']:9.1f} ms/step   {result['ratio_window']:.1f}x"
    print(f"  naive, one window re-encode  {window}")
    print(f"  actions identical: {result['actions_identical']}   (warm-up {result['warmup_s']} s)")


if __name__ == "__main__":
    main()
