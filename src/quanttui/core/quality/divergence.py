"""Distribution comparison between a reference server A and another server B, per position.

Each position is the distribution over the next token after one token-id prefix, as llama-server
reports it with `n_probs: K` and raw probabilities: A's and B's top-K lists, plus the exact
probability of the teacher-forced next token on each side.

KLD@K is the KL divergence KL(A‖B) of the two distributions after merging every token outside a
set S into one tail bucket, where S holds A's top-K tokens and the forced token, restricted to the
tokens whose probability both servers reported (a token of A's top-K missing from B's list goes to
the tail, since p_B of it is unknown). Merging outcomes can only lower a KL divergence (log-sum
inequality), so KLD@K never over-reads the full-vocabulary KLD; the tail mass of A says how much
was merged. Same-top-1, Δp and the percentiles follow llama-perplexity's `--kl-divergence` output
(tools/perplexity/perplexity.cpp). Their uncertainty does not: positions of one prompt are not
independent (the continuation's context is shared), so every mean carries a 95% interval with
prompts as the unit of replication (`cluster_mean`, `cluster_share`; docs/metrics.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from quanttui.core.run.stats import t_quantile

# Below this, a tail mass is rounding noise in the reported probabilities (float32 softmax).
_TAIL_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class PositionDist:
    """One position as one server reported it: the next token's distribution."""

    token_id: int  # the teacher-forced next token
    logprob: float  # raw log-probability of token_id (exact, even outside the top-K)
    top: tuple[tuple[int, float], ...]  # (token id, log-probability), most likely first

    @property
    def top1(self) -> int:
        return self.top[0][0] if self.top else self.token_id


@dataclass(frozen=True, slots=True)
class PositionCompare:
    same_top1: bool
    p_ref: float  # p_A(forced token)
    p_other: float  # p_B(forced token)
    kld: float  # KLD@K, ≥ 0
    tail_ref: float  # A's probability mass merged into the tail bucket
    nll_ref: float  # −log p_A(forced token)
    nll_other: float

    @property
    def delta_p(self) -> float:
        return self.p_other - self.p_ref


def compare_position(ref: PositionDist, other: PositionDist, k: int | None = None
                     ) -> PositionCompare:
    """KLD@K, same-top-1 and Δp for one position. `k` truncates A's list (default: all of it)."""
    if ref.token_id != other.token_id:
        raise ValueError(f"positions forced different tokens: {ref.token_id} vs {other.token_id}")
    known_ref = dict(ref.top)
    known_ref[ref.token_id] = ref.logprob
    known_other = dict(other.top)
    known_other[other.token_id] = other.logprob
    chosen = [t for t, _ in (ref.top if k is None else ref.top[:k])]
    if ref.token_id not in chosen:
        chosen.append(ref.token_id)
    kld = 0.0
    mass_ref = mass_other = 0.0
    for t in chosen:
        lo = known_other.get(t)
        if lo is None:
            continue  # p_B unknown: this token stays in the tail bucket
        la = known_ref[t]
        pa = math.exp(la)
        kld += pa * (la - lo)
        mass_ref += pa
        mass_other += math.exp(lo)
    tail_ref = max(0.0, 1.0 - mass_ref)
    if tail_ref > _TAIL_EPS:
        tail_other = max(1.0 - mass_other, 1e-12)
        kld += tail_ref * math.log(tail_ref / tail_other)
    return PositionCompare(
        same_top1=ref.top1 == other.top1,
        p_ref=math.exp(ref.logprob),
        p_other=math.exp(other.logprob),
        kld=max(kld, 0.0),  # rounding can leave −1e-9 where the two agree
        tail_ref=tail_ref,
        nll_ref=-ref.logprob,
        nll_other=-other.logprob,
    )


# ------------------------------------------------------------------ statistics


@dataclass(frozen=True, slots=True)
class MeanUnc:
    value: float
    unc: float


def mean_and_uncertainty(values: Sequence[float]) -> MeanUnc:
    """llama-perplexity's `mean_and_uncertainty`: sqrt((E[x²] − E[x]²)/(n − 1)), 0 for n ≤ 10."""
    n = len(values)
    if n < 1:
        return MeanUnc(0.0, 0.0)
    f = math.fsum(values) / n
    df = math.fsum(v * v for v in values) / n - f * f
    return MeanUnc(f, math.sqrt(df / (n - 1)) if df > 0 and n > 10 else 0.0)


def share_and_uncertainty(k: int, n: int) -> MeanUnc:
    """A share k/n with ±sqrt(p(1−p)/(n−1)), as llama-perplexity prints "Same top p"."""
    if n <= 0:
        return MeanUnc(0.0, 0.0)
    p = k / n
    return MeanUnc(p, math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else 0.0)


LEVEL = 0.95  # every interval of this module


@dataclass(frozen=True, slots=True)
class MeanCI:
    """A mean over positions with its 95% interval, prompts the unit of replication.

    `unc` is the standard error over prompts (cluster-robust), 0 below 2 prompts; `low`/`high`
    are None below 2 prompts, and in run files written before the intervals existed."""

    value: float
    unc: float
    low: float | None = None
    high: float | None = None


def ci_text(m: MeanCI, fmt: str) -> str:
    """"0.0400 [0.0200, 0.0700]" (the 95% interval; say so beside it); the value alone where
    there is no interval (one prompt, or an older run file)."""
    if m.low is None or m.high is None:
        return format(m.value, fmt)
    return f"{m.value:{fmt}} [{m.low:{fmt}}, {m.high:{fmt}}]"


def _cluster_se(sizes: Sequence[int], means: Sequence[float], value: float) -> float:
    """CR1 standard error of the position-weighted mean Σ n_g ȳ_g / N over G prompts:
    sqrt(G/(G−1) · Σ (n_g (ȳ_g − ȳ))²) / N. With equal n_g it is s/√G of the prompt means."""
    g, total = len(sizes), sum(sizes)
    resid = math.fsum((n * (m - value)) ** 2 for n, m in zip(sizes, means, strict=True))
    return math.sqrt(g / (g - 1) * resid) / total


def cluster_mean(sizes: Sequence[int], means: Sequence[float], *, skewed: bool = False
                 ) -> MeanCI:
    """The position-weighted mean of per-prompt means (`sizes` positions each) and its 95%
    interval: the cluster-robust (CR1) standard error with Student's t at G − 1 degrees of
    freedom, G the prompts with a position.

    `skewed` (a non-negative figure whose per-prompt means have a long right tail: KLD) starts
    it at 0 at the lowest and widens it to the union with Cox's interval for a lognormal mean,
    exp(x̄ + s²/2 ± t·sqrt(s²/G + s⁴/(2(G−1)))) over the logs of the per-prompt means. Why: t
    over right-skewed per-prompt means undercovers at the prompt counts people use (simulated,
    per-prompt means lognormal σ = 0.8: 0.85 at 6 prompts, 0.89 at 24), mostly by an upper end
    too low; Cox's interval
    holds 0.93–0.95 there and the union keeps t's coverage where the means are not lognormal
    (t's improves with G, Cox's would not: its centre is biased then). Per-prompt means below
    a tenth of their median are raised to it for the log scale only, so that one prompt the
    quant matches almost exactly does not inflate the log-scale variance (and the upper end)
    without bound. tests/test_stats_coverage.py checks the coverage through
    `distribution_stats`."""
    pairs = [(n, m) for n, m in zip(sizes, means, strict=True) if n > 0]
    g = len(pairs)
    if g == 0:
        return MeanCI(0.0, 0.0)
    ns, ms = [n for n, _ in pairs], [m for _, m in pairs]
    value = math.fsum(n * m for n, m in pairs) / sum(ns)
    if g < 2:
        return MeanCI(value, 0.0)
    se = _cluster_se(ns, ms, value)
    t = t_quantile(0.5 + LEVEL / 2, g - 1)
    low, high = value - t * se, value + t * se
    if skewed and min(ms) > 0:
        floor = 0.1 * sorted(ms)[g // 2]
        logs = [math.log(max(m, floor)) for m in ms]
        lm = math.fsum(logs) / g
        s2 = math.fsum((x - lm) ** 2 for x in logs) / (g - 1)
        half = t * math.sqrt(s2 / g + s2 * s2 / (2 * (g - 1)))
        centre = lm + s2 / 2
        low, high = min(low, math.exp(centre - half)), max(high, math.exp(centre + half))
    if skewed:
        low = max(low, 0.0)  # a non-negative figure's mean is too
    return MeanCI(value, se, low, high)


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def cluster_share(sizes: Sequence[int], hits: Sequence[int]) -> MeanCI:
    """The share Σ k_g / Σ n_g over prompts (`hits` of `sizes` positions each) and its 95%
    interval: Wilson's score interval on the effective sample size N/deff, deff the design
    effect (the cluster-robust variance over the binomial one, at least 1), with Student's t at
    G − 1 degrees of freedom for z (Korn & Graubard's approach for clustered proportions).

    Why not t over per-prompt shares: near 1, where same-top-1 lives (0.9 and up), prompt
    shares pile up at 1 and t collapses to a point (simulated: coverage 0.55–0.85 at a true
    0.97). Wilson stays inside [0, 1] and keeps a width at 0 of N and N of N; all prompts at 100%
    give deff 1, which can understate the spread when rare disagreements cluster in prompts
    not drawn."""
    pairs = [(n, k) for n, k in zip(sizes, hits, strict=True) if n > 0]
    g = len(pairs)
    if g == 0:
        return MeanCI(0.0, 0.0)
    total = sum(n for n, _ in pairs)
    p = sum(k for _, k in pairs) / total
    if g < 2:
        return MeanCI(p, 0.0)
    se = _cluster_se([n for n, _ in pairs], [k / n for n, k in pairs], p)
    binomial = p * (1 - p) / total
    deff = max(1.0, se * se / binomial) if binomial > 0 else 1.0
    low, high = _wilson(p, total / deff, t_quantile(0.5 + LEVEL / 2, g - 1))
    return MeanCI(p, se, low, high)


def lp_percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """llama-perplexity's percentile: linear interpolation at fraction·(n−1)."""
    if fraction <= 0:
        return sorted_values[0]
    if fraction >= 1:
        return sorted_values[-1]
    p = fraction * (len(sorted_values) - 1)
    ip = int(p)
    p -= ip
    return (1 - p) * sorted_values[ip] + p * sorted_values[min(ip + 1, len(sorted_values) - 1)]


def _median(sorted_values: Sequence[float]) -> float:
    n = len(sorted_values)
    return (0.5 * (sorted_values[n // 2] + sorted_values[n // 2 - 1]) if n % 2 == 0
            else sorted_values[n // 2])


KLD_PERCENTILES = (("max", 1.0), ("p99.9", 0.999), ("p99", 0.99), ("p95", 0.95),
                   ("p90", 0.90), ("median", 0.5), ("p10", 0.10), ("p5", 0.05), ("p1", 0.01),
                   ("p0.1", 0.001), ("min", 0.0))
DP_PERCENTILES = (("max", 1.0), ("p99.9", 0.999), ("p99", 0.99), ("p95", 0.95), ("p90", 0.90),
                  ("p75", 0.75), ("median", 0.5), ("p25", 0.25), ("p10", 0.10), ("p5", 0.05),
                  ("p1", 0.01), ("p0.1", 0.001), ("min", 0.0))


def _percentiles(values: Sequence[float], which: tuple[tuple[str, float], ...]
                 ) -> dict[str, float]:
    s = sorted(values)
    return {name: (_median(s) if name == "median" else lp_percentile(s, f)) for name, f in which}


@dataclass(frozen=True, slots=True)
class DistributionStats:
    """What llama-perplexity prints in its KL divergence and token probability blocks, with 95%
    intervals over prompts instead of its per-position standard errors.

    Δp values are fractions (llama-perplexity prints them ×100 as %). `kld` is KLD@K: `k` says
    where it is truncated, `tail_ref_mean` how much of A's mass went to the tail bucket. Means
    are over positions; `prompts` prompts gave `per_prompt_min`–`per_prompt_max` positions each
    (the first ones of each continuation: same-top-1 depends on how many, see `scope`).
    """

    n: int
    k: int | None
    prompts: int
    per_prompt_min: int
    per_prompt_max: int
    same_top1: MeanCI
    kld: MeanCI
    kld_percentiles: dict[str, float]
    delta_p: MeanCI
    delta_p_percentiles: dict[str, float]
    rms_delta_p: MeanCI
    ln_ppl_ratio: MeanCI  # mean ln(PPL(B)/PPL(A)) over the forced tokens
    ppl_ref: float
    ppl_other: float
    tail_ref_mean: float
    tail_ref_max: float

    @property
    def kld_label(self) -> str:
        return "KLD" if self.k is None else f"KLD@{self.k}"

    @property
    def scope(self) -> str:
        return positions_scope(self.n, self.prompts, self.per_prompt_max)


def positions_scope(n: int, prompts: int, per_max: int) -> str:
    """"over the first 16 positions of 6 prompts (96 positions)"; "≤16" when some prompt's
    continuation ended sooner (fewer than prompts × per_max positions)."""
    first = f"{per_max}" if n >= prompts * per_max else f"≤{per_max}"
    return (f"over the first {first} position{'s' if per_max != 1 else ''} of {prompts} "
            f"prompt{'s' if prompts != 1 else ''} ({n} positions)")


def _rms(mse: MeanCI) -> MeanCI:
    """RMS from the mean square: the interval's ends are square roots of the MSE's, and the
    standard error d sqrt(x) = dx / (2 sqrt(x)) as llama-perplexity."""
    rms = math.sqrt(mse.value)
    return MeanCI(rms, 0.5 / rms * mse.unc if rms > 0 else 0.0,
                  None if mse.low is None else math.sqrt(max(mse.low, 0.0)),
                  None if mse.high is None else math.sqrt(max(mse.high, 0.0)))


def distribution_stats(sequences: Sequence[tuple[str, Sequence[PositionCompare]]],
                       k: int | None = None) -> DistributionStats | None:
    """The figures over every position of `sequences` (prompt id, its positions: what
    `pair_runs` gives), the intervals over prompts. None for no positions: "n/a" is shown,
    never 0."""
    groups = [ps for _, ps in sequences if ps]
    positions = [p for ps in groups for p in ps]
    n = len(positions)
    if n == 0:
        return None
    sizes = [len(ps) for ps in groups]

    def over_prompts(f: Callable[[PositionCompare], float], skewed: bool = False) -> MeanCI:
        return cluster_mean(sizes, [math.fsum(f(p) for p in ps) / len(ps) for ps in groups],
                            skewed=skewed)

    klds = [p.kld for p in positions]
    dps = [p.delta_p for p in positions]
    nll_ref = [p.nll_ref for p in positions]
    nll_other = [p.nll_other for p in positions]
    tails = [p.tail_ref for p in positions]
    return DistributionStats(
        n=n,
        k=k,
        prompts=len(groups),
        per_prompt_min=min(sizes),
        per_prompt_max=max(sizes),
        same_top1=cluster_share(sizes, [sum(p.same_top1 for p in ps) for ps in groups]),
        kld=over_prompts(lambda p: p.kld, skewed=True),
        kld_percentiles=_percentiles(klds, KLD_PERCENTILES),
        delta_p=over_prompts(lambda p: p.delta_p),
        delta_p_percentiles=_percentiles(dps, DP_PERCENTILES),
        rms_delta_p=_rms(over_prompts(lambda p: p.delta_p ** 2, skewed=True)),
        ln_ppl_ratio=over_prompts(lambda p: p.nll_other - p.nll_ref),
        ppl_ref=math.exp(math.fsum(nll_ref) / n),
        ppl_other=math.exp(math.fsum(nll_other) / n),
        tail_ref_mean=math.fsum(tails) / n,
        tail_ref_max=max(tails),
    )
