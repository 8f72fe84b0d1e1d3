"""Training throughput of `rt1-sim train`'s step against encoding every target's window separately, and the
data loader's rate beside the model's.

A *sample* is one training target: the action of one valid timestep. Both procedures see the same batches of
history windows (episodes of `--episode-length` frames, so early windows are left-padded as in real data):
- ours (rt1_sim.train): each window's valid frames are encoded once and the loss covers every valid timestep:
  a window of n valid frames trains n targets for n frame encodings.
- naive: every target gets its own window (the frames up to it, left-padded) and only its last step is in the
  loss; n targets cost 1 + 2 + ... + n frame encodings. Fed in batches of `--batch-size` windows.
Each optimizer step runs forward, backward, gradient clipping and AdamW on the same model and batch size. The
loader (WindowDataset with augmentation + collate, what the training loop iterates) is timed on its own:
`loader_windows_per_s` / `windows_per_s` above 1 means the loader keeps up with the model.

Both frame sources of training are timed on the same batches, alternating batch by batch (a load on the
machine hits both alike): frames in memory (`frame_cache: memory`) and the same frames read through the
memory-mapped cache (`frame_cache: memmap`, rt1_sim.data.frame_cache; the file written here, so in the page
cache as on any run after the first epoch). Frames are random (a synthetic FrameCache): timing does not depend
on content.

    python benchmarks/train_throughput.py [--preset cpu] [--image-size 64] [--batch-size 16] [--steps 8]
        [--json]
    python benchmarks/train_throughput.py --loader-only --steps 100 --episodes 120
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from envs.spaces import ACTION_HIGH, ACTION_LOW, CAMERA_NAMES
from rt1_sim.cli import positive_int
from rt1_sim.data.frame_cache import FrameStore
from rt1_sim.data.windows import STATE_SIZE, FrameCache, RandomCrop, WindowDataset, collate_windows
from rt1_sim.model.action_tokenizer import ActionTokenizer
from rt1_sim.model.instruction import HashInstructionEncoder
from rt1_sim.model.presets import PRESETS, get_preset
from rt1_sim.model.rt1 import RT1, action_loss
from rt1_sim.preprocess import images_to_tensor


def synthetic_dataset(
    args: argparse.Namespace, height: int, width: int, crop: int, folder: Path
) -> tuple[WindowDataset, WindowDataset]:
    """Training WindowDatasets over random episodes of `episode_length` frames: frames in memory, and the same
    frames saved as a frame cache in `folder` and read back through np.memmap."""
    rng = np.random.default_rng(args.seed)
    n = args.episodes * args.episode_length
    frames = {v: rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8) for v in CAMERA_NAMES}
    cache = FrameCache(
        views=CAMERA_NAMES,
        frames=frames,
        actions=rng.uniform(ACTION_LOW, ACTION_HIGH, (n, len(ACTION_LOW))).astype(np.float32),
        starts=np.arange(0, n + 1, args.episode_length, dtype=np.int64),
        instructions=["pick up the red cube"] * args.episodes,
        episodes=list(range(args.episodes)),
        states=rng.uniform(-0.3, 0.7, (n, STATE_SIZE)).astype(np.float32),
        hands=np.tile(np.float32([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0]), (n, 1)),  # hand above, pointing down
    )
    for view, array in frames.items():
        np.save(folder / f"{view}.npy", array)
    store = FrameStore(
        folder, CAMERA_NAMES, cache.starts, cache.actions, cache.instructions, cache.states, cache.hands
    )
    common = {
        "time_sequence_length": args.time_sequence_length,
        "predicting_next_ts": False,
        "tokenizer": ActionTokenizer(get_preset(args.preset).vocab_size),
        "instruction_encoder": HashInstructionEncoder(get_preset(args.preset).language_embedding_size),
        "augment": RandomCrop((height, width), crop),
        "seed": args.seed,
    }
    return WindowDataset(cache, **common), WindowDataset(store.select(cache.episodes), **common)


def per_target_windows(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every valid timestep s of every window as its own window: frames ..s right-aligned and left-padded."""
    images, valid, tokens = batch["images"], batch["valid"], batch["tokens"]
    t = valid.shape[1]
    out: dict[str, list[torch.Tensor]] = {"images": [], "valid": [], "tokens": [], "instruction": []}
    for s in range(t):
        rows = valid[:, s]
        if not rows.any():
            continue
        shift = t - 1 - s
        sub_images = torch.zeros_like(images[rows])
        sub_images[:, shift:] = images[rows, : s + 1]
        sub_valid = torch.zeros_like(valid[rows])
        sub_valid[:, shift:] = valid[rows, : s + 1]
        out["images"].append(sub_images)
        out["valid"].append(sub_valid)
        out["tokens"].append(tokens[rows, s])  # (M, A): the last step's target only
        out["instruction"].append(batch["instruction"][rows])
    return {k: torch.cat(v) for k, v in out.items()}


def optimizer_step(model: RT1, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def network_config(args: argparse.Namespace):
    """The preset, at `--image-size` when given (the random crop keeps the preset's fraction of the side)."""
    config = get_preset(args.preset)
    if args.image_size is None:
        return config
    crop = round(args.image_size * config.crop_size / config.image_height)
    return get_preset(args.preset, image_height=args.image_size, image_width=args.image_size, crop_size=crop)


def measure(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    config = network_config(args)
    model = RT1(config, CAMERA_NAMES, args.time_sequence_length).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    tmp = tempfile.TemporaryDirectory()  # the frame cache's files (np.memmap keeps them mapped until exit)
    dataset, mapped = synthetic_dataset(
        args, config.image_height, config.image_width, config.crop_size, Path(tmp.name)
    )
    sources = {"memory": dataset, "memmap": mapped}
    order = np.random.default_rng(args.seed).permutation(len(dataset))
    b = args.batch_size
    batches = [order[i * b : (i + 1) * b].tolist() for i in range(args.warmup + args.steps)]

    # The loader alone: item fetching (slicing + random crop) and collation, as the training loop does it;
    # both frame sources batch by batch, in turns (which goes first alternates). No batch is kept: one path
    # keeping its batches would leave the other to fault in fresh memory for every one of its own.
    loader_s = dict.fromkeys(sources, 0.0)
    for k, batch in enumerate(batches):
        for name in sorted(sources, reverse=k % 2 == 1):
            started = time.perf_counter()
            collate_windows([sources[name][i] for i in batch])
            loader_s[name] += time.perf_counter() - started
    loader_rate = {name: sum(map(len, batches)) / seconds for name, seconds in loader_s.items()}
    if args.loader_only:
        return {
            "preset": args.preset,
            "batch_size": b,
            "batches": len(batches),
            "threads": torch.get_num_threads(),
            "loader_windows_per_s": round(loader_rate["memory"], 1),
            "memmap_loader_windows_per_s": round(loader_rate["memmap"], 1),
            "memmap_loader_ratio": round(loader_rate["memmap"] / loader_rate["memory"], 3),
        }

    # Ours: one window per row, loss on every valid timestep (the loader's work included in the timing); the
    # two frame sources take turns step by step on the same batches.
    targets, ours_s = dict.fromkeys(sources, 0), dict.fromkeys(sources, 0.0)
    for k, batch in enumerate(batches):
        for name in sorted(sources, reverse=k % 2 == 1):
            started = time.perf_counter()
            items = collate_windows([sources[name][i] for i in batch])
            images = images_to_tensor(items["images"])
            _, loss = model(images, items["instruction"], items["valid"], None, items["tokens"])
            optimizer_step(model, optimizer, loss)
            if k >= args.warmup:
                ours_s[name] += time.perf_counter() - started
                targets[name] += int(items["valid"].sum())
    samples_per_s = targets["memory"] / ours_s["memory"]
    memmap_samples_per_s = targets["memmap"] / ours_s["memmap"]
    windows_per_s = args.steps * b / ours_s["memory"]
    loader_windows_per_s = loader_rate["memory"]

    # Naive: the same targets, one window each, fed `batch_size` windows per step.
    loaded = [collate_windows([dataset[i] for i in batch]) for batch in batches]
    naive_targets, naive_s = 0, 0.0
    for k, items in enumerate(loaded):
        expanded = per_target_windows(items)
        for i in range(0, len(expanded["valid"]), b):
            chunk = {key: value[i : i + b] for key, value in expanded.items()}
            t0 = time.perf_counter()
            images = images_to_tensor(chunk["images"])
            logits, _ = model(images, chunk["instruction"], chunk["valid"])
            loss = action_loss(logits[:, -1:], chunk["tokens"][:, None])
            optimizer_step(model, optimizer, loss)
            if k >= args.warmup:
                naive_s += time.perf_counter() - t0
                naive_targets += len(chunk["valid"])
    naive_samples_per_s = naive_targets / naive_s
    return {
        "preset": args.preset,
        "image_size": [config.image_height, config.image_width],
        "params": sum(p.numel() for p in model.parameters()),
        "cameras": len(CAMERA_NAMES),
        "time_sequence_length": args.time_sequence_length,
        "batch_size": b,
        "timed_steps": args.steps,
        "threads": torch.get_num_threads(),
        "windows_per_s": round(windows_per_s, 2),
        "samples_per_s": round(samples_per_s, 2),
        "naive_samples_per_s": round(naive_samples_per_s, 2),
        "ratio": round(samples_per_s / naive_samples_per_s, 2),
        "loader_windows_per_s": round(loader_windows_per_s, 1),
        "memmap_samples_per_s": round(memmap_samples_per_s, 2),
        "memmap_to_memory_ratio": round(memmap_samples_per_s / samples_per_s, 3),
        "memmap_loader_windows_per_s": round(loader_rate["memmap"], 1),
        "loader_to_model_ratio": round(loader_windows_per_s / windows_per_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help="square image side for the network (default: the preset's); frames are made at that size",
    )
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--time-sequence-length", type=positive_int, default=6)
    parser.add_argument("--steps", type=positive_int, default=8, help="timed optimizer steps of ours")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--episodes", type=positive_int, default=40, help="synthetic episodes")
    parser.add_argument(
        "--episode-length", type=positive_int, default=14, help="frames per synthetic episode"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--loader-only",
        action="store_true",
        help="time the loader alone, frames in memory against memory-mapped (no model steps)",
    )
    args = parser.parse_args()
    if (args.warmup + args.steps) * args.batch_size > args.episodes * args.episode_length:
        parser.error("not enough synthetic windows: raise --episodes")
    result = measure(args)
    if args.json or args.loader_only:
        print(json.dumps(result))
        return
    print(
        f"{result['preset']} at {result['image_size'][0]}x{result['image_size'][1]}: "
        f"{result['params'] / 1e6:.2f}M parameters, {result['cameras']} cameras, "
        f"T={result['time_sequence_length']}, batch {result['batch_size']}, {result['threads']} threads"
    )
    print(
        f"  ours (every valid step in the loss)  {result['samples_per_s']:8.1f} samples/s "
        f"({result['windows_per_s']:.1f} windows/s)"
    )
    print(
        f"  ours, frames memory-mapped (memmap)  {result['memmap_samples_per_s']:8.1f} samples/s   "
        f"{result['memmap_to_memory_ratio']:.3f}x the in-memory rate"
    )
    print(
        f"  naive (one window per target)        {result['naive_samples_per_s']:8.1f} samples/s   "
        f"{result['ratio']:.2f}x"
    )
    print(
        f"  loader alone                         {result['loader_windows_per_s']:8.1f} windows/s   "
        f"{result['loader_to_model_ratio']:.1f}x the model's rate"
    )
    print(f"  loader alone, memmap                 {result['memmap_loader_windows_per_s']:8.1f} windows/s")


if __name__ == "__main__":
    main()
