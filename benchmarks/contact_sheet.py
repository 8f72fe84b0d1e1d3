"""A PNG contact sheet of PandaTabletop-v0: one front-camera frame per family, mid-episode, captioned with the
episode's instruction.

    python benchmarks/contact_sheet.py [--out assets/tabletop_contact_sheet.png] [--size 192] [--seed 0]

Tile i runs its family's scripted expert from `reset(seed + i)` and keeps the frame halfway through the
episode.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw

import envs
from envs.objects import FAMILIES
from rt1_sim.cli import positive_int

CAPTION_HEIGHT = 44  # pixels under each tile
# `rt1-sim bench` leaves this script out: it draws assets/tabletop_contact_sheet.png and prints no JSON.
BENCH_SKIP = "draws a picture, measures nothing: python benchmarks/contact_sheet.py"


def mid_episode_frame(family: str, seed: int, size: int) -> tuple[np.ndarray, str]:
    """(front image (size, size, 3) uint8 halfway through the expert's episode, instruction)."""
    env = gym.make("PandaTabletop-v0", task=family, image_size=(size, size))
    expert = envs.make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset(info["instruction"])
    frames, done = [obs["front"]], False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        frames.append(obs["front"])
        done = terminated or truncated
    env.close()
    return frames[len(frames) // 2], info["instruction"]


def contact_sheet(seed: int, size: int, columns: int = 3) -> Image.Image:
    rows = -(-len(FAMILIES) // columns)
    sheet = Image.new("RGB", (columns * size, rows * (size + CAPTION_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, family in enumerate(FAMILIES):
        frame, instruction = mid_episode_frame(family, seed + i, size)  # a different scene per tile
        x, y = (i % columns) * size, (i // columns) * (size + CAPTION_HEIGHT)
        sheet.paste(Image.fromarray(frame), (x, y))
        draw.text((x + 4, y + size + 2), family, fill="black")
        for j, line in enumerate(textwrap.wrap(f'"{instruction}"', width=size // 6)):
            draw.text((x + 4, y + size + 15 + 12 * j), line, fill=(60, 60, 60))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("assets/tabletop_contact_sheet.png"))
    parser.add_argument(
        "--size", type=positive_int, default=192, help="tile size in pixels (rendered at this size)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    contact_sheet(args.seed, args.size).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
