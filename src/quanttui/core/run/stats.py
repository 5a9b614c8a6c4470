"""Run statistics: distributions, and paired differences between two servers.

Percentiles use linear interpolation between order statistics (numpy's default), so numbers
match what users get from numpy or pandas on the exported CSV. The paired difference is B − A per
prompt with a paired Student-t 95% interval (mean ± t(0.975, n−1)·s/√n). A percentile bootstrap
of the mean is far too narrow at the 3–12 prompts people run (with no true difference its "95%"
interval excludes 0 in about a quarter of runs at n = 3); the t interval holds its coverage
there when per-prompt differences are roughly normal, which speeds and latencies averaged over
repetitions are (tests/test_stats_metrics.py checks coverage by simulation).
"""

from __future__ import annotations

import functools
import math
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


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
           + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student's t distribution function."""
    tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (bisection on `t_cdf`;
    remembered: intervals ask for a few (p, df) over and over)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError("t_quantile needs 0 < p < 1 and df > 0")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def mean_interval(values: Sequence[float], level: float = 0.95
                  ) -> tuple[float, float] | None:
    """Student-t interval of the mean; None below 2 values."""
    n = len(values)
    if n < 2:
        return None
    m = fmean(values)
    half = t_quantile(0.5 + level / 2.0, n - 1) * stdev(values) / math.sqrt(n)
    return m - half, m + half


@functools.cache
def _z(level: float) -> float:
    """The two-sided normal quantile of `level` (t with 10⁹ degrees of freedom)."""
    return t_quantile(0.5 + level / 2.0, 1e9)


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (good coverage at small n, never outside 0..1,
    and not a point at 0/n or n/n)."""
    if n <= 0:
        return 0.0, 1.0
    z = _z(level)
    p = k / n
    den = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def paired_proportion_interval(both: int, only_a: int, only_b: int, neither: int,
                               level: float = 0.95) -> tuple[float, float] | None:
    """Interval of p_b − p_a for paired yes/no outcomes: Bonett and Price's (2012) adjusted
    Wald interval. Only the discordant pairs carry the difference: with p̃a = (only_a + 1) /
    (N + 2) and p̃b = (only_b + 1) / (N + 2), it is p̃b − p̃a ± z·√((p̃a + p̃b − (p̃b − p̃a)²)
    / (N + 2)); the added pair keeps it from collapsing when every pair agrees (±0.20 at 12).

    Not Newcombe's method 10, even with his corrected correlation φ*: when few pairs disagree
    and all one way (a quant losing items the reference got right), its coverage falls to
    0.915 (N = 20, accuracy 0.5, 10% of pairs discordant) and 0.92 (N = 50, 5%), because in
    samples with no discordant pair φ* stays near 0.9 and the interval is ±0.09 at N = 20
    where the data allow up to 16% discordance (continuity-corrected margins, method 11, only
    widen it to ±0.10). By exact enumeration this one covers ≥ 0.963 at N = 10–50,
    accuracies 0.05–0.9 and 2–10% discordant pairs (split evenly, 3:1 or all one way), and
    ≥ 0.96 at N = 6 and 12 for accuracies 0.1–0.9 and correlations 0–0.9
    (tests/test_stats_coverage.py). None for no pairs."""
    n = both + only_a + only_b + neither
    if n == 0:
        return None
    pa, pb = (only_a + 1) / (n + 2), (only_b + 1) / (n + 2)
    d = pb - pa
    half = _z(level) * math.sqrt((pa + pb - d * d) / (n + 2))
    return max(-1.0, d - half), min(1.0, d + half)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value of "p_a = p_b" for paired yes/no outcomes: the
    discordant pairs split Binomial(only_a + only_b, ½) under it (concordant pairs carry no
    information on the difference). Twice the smaller tail, at most 1; 1 with no discordant
    pair."""
    m, k = only_a + only_b, min(only_a, only_b)
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(k + 1)) / (1 << m)
    return min(1.0, 2 * tail)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """Holm's step-down: which of a family of hypotheses to reject so that the chance of any
    false rejection stays ≤ `alpha` whatever the dependence between the tests. The smallest
    p-value is compared with alpha/m, the next with alpha/(m−1), ...; the first that fails
    stops the rejections."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    out = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        out[i] = True
    return out


@dataclass(frozen=True, slots=True)
class PairedDiff:
    """B − A over the keys (prompts) both servers have a value for."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float | None  # paired Student-t 95%; None below 2 pairs
    ci_high: float | None
    win_rate_b: float  # per-prompt win rate: share of pairs where B's value is higher (ties ½)
    ratio: float | None  # mean_b / mean_a
    # how the pairs were made (core.run.pairing): "interleaved" (same blocks of time),
    # "via <server>" (each relative to a third server in its own block), "across blocks"
    # (the interval widened by ± floor × mean_a, for drift between blocks)
    basis: str = "interleaved"
    floor: float = 0.0

    @property
    def ratio_ci(self) -> tuple[float, float] | None:
        """The interval of `ratio` = 1 + mean_diff / mean_a, taken through the difference's."""
        if self.ci_low is None or self.ci_high is None or not self.mean_a:
            return None
        return 1.0 + self.ci_low / self.mean_a, 1.0 + self.ci_high / self.mean_a

    @property
    def measurable(self) -> bool:
        """Whether the interval excludes 0: otherwise the data can't tell the two apart."""
        return (self.ci_low is not None and self.ci_high is not None
                and (self.ci_low > 0 or self.ci_high < 0))


def decided(d: PairedDiff | None, half_width: float, level: float = 0.99) -> bool:
    """Enough data to say something about B / A: its 95% interval is narrower than
    ± `half_width` (then "no difference larger than that"), or a stricter `level` interval
    excludes 1. Stricter, because a run that looks again after every repetition would find a
    95% interval excluding 1 by luck more often than one time in twenty. A pair measured apart
    in time carries the drift floor in its interval (core.run.pairing), which no repetition
    narrows: it is decided within ± (half_width + floor), and the stricter interval keeps the
    floor beside it."""
    ci = d.ratio_ci if d is not None else None
    if d is None or ci is None or d.ci_low is None or d.ci_high is None or d.n < 2:
        return False
    if (ci[1] - ci[0]) / 2 <= half_width + d.floor:
        return True
    pad = d.floor * abs(d.mean_a)
    half = ((d.ci_high - d.ci_low) / 2 - pad) * (t_quantile(0.5 + level / 2, d.n - 1)
                                                 / t_quantile(0.975, d.n - 1)) + pad
    return d.mean_diff - half > 0 or d.mean_diff + half < 0


def paired_difference(a: Mapping[str, float], b: Mapping[str, float]) -> PairedDiff | None:
    keys = [k for k in a if k in b]
    if not keys:
        return None
    diffs = [b[k] - a[k] for k in keys]
    n = len(diffs)
    mean_a = fmean(a[k] for k in keys)
    mean_b = fmean(b[k] for k in keys)
    wins = sum(1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in diffs)
    ci = mean_interval(diffs)
    lo, hi = ci if ci is not None else (None, None)
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
