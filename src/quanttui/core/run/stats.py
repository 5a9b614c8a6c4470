"""Run statistics: distributions, and paired differences between two servers.

Percentiles use linear interpolation between order statistics (numpy's default), so numbers
match what users get from numpy or pandas on the exported CSV. The paired difference is B − A per
prompt, with a percentile bootstrap 95% interval; resampling is seeded so a report re-rendered
from the same records shows the same interval.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean, stdev


@dataclass(frozen=True, slots=True)
class Summary:
    n: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """q in 0..100 over already-sorted values, linear interpolation."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return sorted_values[lo]
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> Summary | None:
    """None for no values: "n/a" is shown, never 0."""
    vals = sorted(v for v in values if v is not None and math.isfinite(v))
    if not vals:
        return None
    return Summary(
        n=len(vals),
        mean=fmean(vals),
        std=stdev(vals) if len(vals) > 1 else 0.0,
        min=vals[0],
        p50=percentile(vals, 50),
        p90=percentile(vals, 90),
        p95=percentile(vals, 95),
        p99=percentile(vals, 99),
        max=vals[-1],
    )


@dataclass(frozen=True, slots=True)
class PairedDiff:
    """B − A over the keys (prompts) both servers have a value for."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float | None  # bootstrap 95%; None below 2 pairs
    ci_high: float | None
    win_rate_b: float  # share of pairs where B's value is higher (ties count half)
    ratio: float | None  # mean_b / mean_a


def paired_difference(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> PairedDiff | None:
    keys = [k for k in a if k in b]
    if not keys:
        return None
    diffs = [b[k] - a[k] for k in keys]
    n = len(diffs)
    mean_a = fmean(a[k] for k in keys)
    mean_b = fmean(b[k] for k in keys)
    wins = sum(1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in diffs)
    lo = hi = None
    if n >= 2:
        rng = random.Random(seed)
        means = sorted(fmean(rng.choices(diffs, k=n)) for _ in range(n_boot))
        lo = percentile(means, 2.5)
        hi = percentile(means, 97.5)
    return PairedDiff(
        n=n,
        mean_a=mean_a,
        mean_b=mean_b,
        mean_diff=fmean(diffs),
        ci_low=lo,
        ci_high=hi,
        win_rate_b=wins / n,
        ratio=(mean_b / mean_a) if mean_a else None,
    )
