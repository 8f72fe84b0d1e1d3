"""Training step cost of the options a run may turn on, side by side on the same batches: the eager step of
`rt1-sim train` (the baseline), the same step under `torch.compile`, and the step with the training-only state
head (`aux_state_weight`, rt1_sim/model/state_head.py).

Each variant has its own copy of the same initial model and its own AdamW; they take turns batch by batch
(the order rotates), so a change in the machine's load hits all alike. A sample is one training target (the
action of one valid timestep), as in benchmarks/train_throughput.py; batches are random frames (timing does
not depend on content), history windows of `--time-sequence-length` left-padded near episode starts.

    python benchmarks/train_step_options.py [--preset cpu] [--image-size 96] [--batch-size 16] [--steps 6]
        [--variants eager compiled state_head] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable

import numpy as np
import torch

from envs.spaces import ACTION_HIGH, ACTION_LOW, CAMERA_NAMES
from rt1_sim.cli import positive_int
from rt1_sim.data.windows import STATE_SIZE, FrameCache, RandomCrop, WindowDataset, collate_windows
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.auxiliary import RT1WithAuxiliaryLosses
from rt1_sim.model.instruction import HashInstructionEncoder
from rt1_sim.model.presets import PRESETS, get_preset
from rt1_sim.model.rt1 import RT1
from rt1_sim.model.state_head import StateHead
from rt1_sim.preprocess import images_to_tensor

VARIANTS = ("eager", "compiled", "state_head")


def batches(args: argparse.Namespace, config) -> list[dict[str, torch.Tensor]]:
    """Collated training batches over random episodes of 14 frames, with states to predict."""
    rng = np.random.default_rng(args.seed)
    episodes, length = 40, 14
    n = episodes * length
    size = (config.image_height, config.image_width)
    cache = FrameCache(
        views=CAMERA_NAMES,
        frames={v: rng.integers(0, 256, (n, *size, 3), dtype=np.uint8) for v in CAMERA_NAMES},
        actions=rng.uniform(ACTION_LOW, ACTION_HIGH, (n, len(ACTION_LOW))).astype(np.float32),
        starts=np.arange(0, n + 1, length, dtype=np.int64),
        instructions=["pick up the red cube"] * episodes,
        episodes=list(range(episodes)),
        states=rng.uniform(-0.3, 0.7, (n, STATE_SIZE)).astype(np.float32),
    )
    dataset = WindowDataset(
        cache,
        args.time_sequence_length,
        False,
        ActionTokenizer(config.vocab_size),
        HashInstructionEncoder(config.language_embedding_size),
        augment=RandomCrop(size, config.crop_size),
        seed=args.seed,
    )
    order = rng.permutation(len(dataset))
    b = args.batch_size
    return [
        collate_windows([dataset[i] for i in order[k * b : (k + 1) * b]])
        for k in range(args.warmup + args.steps)
    ]


def make_step(name: str, base: RT1) -> Callable[[dict[str, torch.Tensor]], None]:
    """One optimizer step of variant `name` on its own copy of `base`."""
    model = copy.deepcopy(base).train()
    if name == "state_head":
        torch.manual_seed(0)
        head = StateHead(model.tokens_per_frame, model.config.token_embedding_size_per_image)
        wrapped = RT1WithAuxiliaryLosses(model, head)
        params = list(model.parameters()) + list(head.parameters())
    else:
        wrapped = torch.compile(model) if name == "compiled" else model
        params = list(model.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step(batch: dict[str, torch.Tensor]) -> None:
        images = images_to_tensor(batch["images"])
        inputs = (images, batch["instruction"], batch["valid"])
        if name == "state_head":
            _, loss, aux, _ = wrapped(*inputs, batch["tokens"], batch)
            loss = loss + aux
        else:
            _, loss = wrapped(*inputs, None, batch["tokens"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    return step


def measure(args: argparse.Namespace) -> dict:
    config = get_preset(args.preset)
    if args.image_size is not None:
        crop = round(args.image_size * config.crop_size / config.image_height)
        config = get_preset(
            args.preset, image_height=args.image_size, image_width=args.image_size, crop_size=crop
        )
    torch.manual_seed(args.seed)
    base = RT1(config, CAMERA_NAMES, args.time_sequence_length)
    data = batches(args, config)
    steps = {name: make_step(name, base) for name in args.variants}
    seconds, targets = dict.fromkeys(steps, 0.0), dict.fromkeys(steps, 0)
    for k, batch in enumerate(data):
        names = list(steps)
        for name in names[k % len(names) :] + names[: k % len(names)]:  # rotate who goes first
            started = time.perf_counter()
            steps[name](batch)
            if k >= args.warmup:  # the compiled variant compiles during the warm-up steps
                seconds[name] += time.perf_counter() - started
                targets[name] += int(batch["valid"].sum())
    rates = {name: targets[name] / seconds[name] for name in steps}
    first = args.variants[0]
    return {
        "preset": args.preset,
        "image_size": [config.image_height, config.image_width],
        "time_sequence_length": args.time_sequence_length,
        "batch_size": args.batch_size,
        "timed_steps": args.steps,
        "threads": torch.get_num_threads(),
        "samples_per_s": {name: round(rate, 2) for name, rate in rates.items()},
        f"ratio_to_{first}": {name: round(rate / rates[first], 3) for name, rate in rates.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument(
        "--image-size", type=positive_int, default=None, help="square image side (default: the preset's)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--time-sequence-length", type=positive_int, default=6)
    parser.add_argument("--steps", type=positive_int, default=6, help="timed optimizer steps of each variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first steps (compilation)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error("--steps and --batch-size must be >= 1, --warmup >= 0")
    if (args.warmup + args.steps) * args.batch_size > 40 * 14:
        parser.error("--batch-size x (--warmup + --steps) must be at most 560 windows")
    result = measure(args)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['preset']} at {result['image_size'][0]}x{result['image_size'][1]}, "
        f"T={result['time_sequence_length']}, batch {result['batch_size']}, {result['threads']} threads"
    )
    ratios = result[f"ratio_to_{args.variants[0]}"]
    for name, rate in result["samples_per_s"].items():
        print(f"  {name:<11} {rate:8.1f} samples/s   {ratios[name]:.3f}x")


if __name__ == "__main__":
    main()
