"""Statistics of evaluation reports: Wilson intervals, rate blocks, success per variation (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

BREAKDOWN_BINS = 3  # equal-width bins over the suite's range, for continuous variations (position, size)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial success rate.

    Unlike the normal approximation it stays inside [0, 1] and is not degenerate at 0/n or n/n, which is where
    policy success rates often sit (the scripted expert at 100%, a random policy at 0%).
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be in [0, {trials}], got {successes}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)  # 1.96 for 95%
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1.0 - p) / trials + z * z / (4 * trials * trials)) / denom
    # At 0/n and n/n the bound is exactly 0 or 1 (the formula leaves a rounding residue such as 2.8e-17).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def rate_block(successes: int, episodes: int) -> dict[str, Any]:
    """{episodes, successes, success_rate, ci95_low, ci95_high} with the Wilson 95% interval."""
    low, high = wilson_interval(successes, episodes)
    return {
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes,
        "ci95_low": low,
        "ci95_high": high,
    }


def bin_of(value: float, low: float, high: float, bins: int = BREAKDOWN_BINS) -> tuple[int, str]:
    """(index, "[a, b]") of the one of `bins` equal-width bins of [low, high] that holds `value` (clamped);
    (0, "a") when the range is a point."""
    if high <= low:
        return 0, f"{low:.3f}"
    i = min(max(int((value - low) / (high - low) * bins), 0), bins - 1)
    step = (high - low) / bins
    return i, f"[{low + i * step:.3f}, {low + (i + 1) * step:.3f}]"


def breakdown(
    rows: Sequence[Mapping[str, Any]], names: Sequence[str], ranges: Mapping[str, tuple[float, float]]
) -> dict[str, Any]:
    """Success per variation `names` (the keys of the env's `variation()`), in value order: a variation with a
    range in `ranges` (the env's `variation_ranges()`) is binned over it, any other is grouped by value.
    Variations that are lists (e.g. the names of every object in the scene) describe a scene, not a group:
    skipped."""
    out: dict[str, Any] = {}
    for name in names:
        having = [r for r in rows if name in r]  # a mix suite's families have different variation keys
        if any(isinstance(r[name], (list, tuple, dict)) for r in having):
            continue
        groups: dict[tuple[Any, str], list[bool]] = {}
        for r in having:
            key = bin_of(r[name], *ranges[name]) if name in ranges else (r[name], str(r[name]))
            groups.setdefault(key, []).append(r["success"])
        out[name] = {label: rate_block(sum(s), len(s)) for (_, label), s in sorted(groups.items())}
    return out
