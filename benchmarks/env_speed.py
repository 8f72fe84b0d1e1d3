"""Env steps/s with both cameras rendered, side by side with panda-gym's PandaPickAndPlace-v3 (when installed).

Both run in this process, one after the other, with the same image size and random actions; panda-gym renders its
single camera through `render()` after each step (its `render_mode="rgb_array"`, TinyRenderer), ours renders two
cameras inside `step()`. Ratio = ours / panda-gym. `--env PandaTabletop-v0 --task mix` measures the multi-task env
(episodes end on the time limit or a random terminate flag, and every reset builds a new family's scene).

    python benchmarks/env_speed.py [--env PandaPick-v0] [--task mix] [--image-size 96 96] [--steps 300] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time

import gymnasium as gym
import numpy as np

import envs  # noqa: F401


def _steps_per_s(env: gym.Env, steps: int, render: bool, seed: int = 0) -> float:
    env.reset(seed=seed)
    env.action_space.seed(seed)
    for _ in range(10):  # warm up
        env.step(env.action_space.sample())
    start, done = time.perf_counter(), 0
    while done < steps:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if render:
            env.render()
        done += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, nargs=2, default=[96, 96], metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--env", default="PandaPick-v0", choices=["PandaPick-v0", "PandaTabletop-v0"])
    parser.add_argument("--task", default="mix", help="PandaTabletop-v0's task family (or mix)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    height, width = args.image_size

    options = {"task": args.task} if args.env == "PandaTabletop-v0" else {}
    ours = gym.make(args.env, image_size=(height, width), terminate_on_action=False, **options)
    label = args.env + (f" task={args.task}" if options else "")
    result = {"env": label, "image_size": [height, width], "cameras": 2, "steps": args.steps,
              "steps_per_s": _steps_per_s(ours, args.steps, render=False)}
    ours.close()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # panda-gym prints on import
            import panda_gym  # noqa: F401
        theirs = gym.make("PandaPickAndPlace-v3", render_mode="rgb_array", render_width=width,
                          render_height=height)
        result["panda_gym_steps_per_s"] = _steps_per_s(theirs, args.steps, render=True)
        result["panda_gym_cameras"] = 1
        result["ratio"] = result["steps_per_s"] / result["panda_gym_steps_per_s"]
        theirs.close()
    except ImportError:
        result["panda_gym_steps_per_s"] = result["ratio"] = None
    if args.json:
        print(json.dumps(result))
        return
    print(f"{label}, 2 cameras at {height}x{width}: {result['steps_per_s']:.1f} steps/s")
    if result["ratio"] is None:
        print("panda-gym not installed (pip install panda-gym): no side-by-side ratio")
    else:
        print(f"panda-gym PandaPickAndPlace-v3, 1 camera at {height}x{width}: "
              f"{result['panda_gym_steps_per_s']:.1f} steps/s")
        print(f"ratio (ours / panda-gym): {result['ratio']:.2f}x")


if __name__ == "__main__":
    main()
