"""Small statistics for evaluation reports (pure functions, stdlib only)."""

from __future__ import annotations

import math
from statistics import NormalDist


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
    # Clamp rounding residue so that 0/n gives exactly 0 and n/n exactly 1.
    return max(0.0, centre - half), min(1.0, centre + half)
