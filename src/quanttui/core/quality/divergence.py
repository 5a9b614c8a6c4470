"""Distribution comparison between a reference server A and another server B, per position.

Each position is the distribution over the next token after one token-id prefix, as llama-server
reports it with `n_probs: K` and raw probabilities: A's and B's top-K lists, plus the exact
probability of the teacher-forced next token on each side.

KLD@K is the KL divergence KL(A‖B) of the two distributions after merging every token outside a
set S into one tail bucket, where S holds A's top-K tokens and the forced token, restricted to the
tokens whose probability both servers reported (a token of A's top-K missing from B's list goes to
the tail, since p_B of it is unknown). Merging outcomes can only lower a KL divergence (log-sum
inequality), so KLD@K never over-reads the full-vocabulary KLD; the tail mass of A says how much
was merged. Same-top-1, Δp and the statistics follow llama-perplexity's `--kl-divergence` output
(tools/perplexity/perplexity.cpp): the same uncertainty formulas and percentile interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
    """What llama-perplexity prints in its KL divergence and token probability blocks.

    Δp values are fractions (llama-perplexity prints them ×100 as %). `kld` is KLD@K: `k` says
    where it is truncated, `tail_ref_mean` how much of A's mass went to the tail bucket.
    """

    n: int
    k: int | None
    same_top1: MeanUnc
    kld: MeanUnc
    kld_percentiles: dict[str, float]
    delta_p: MeanUnc
    delta_p_percentiles: dict[str, float]
    rms_delta_p: MeanUnc
    ln_ppl_ratio: MeanUnc  # mean ln(PPL(B)/PPL(A)) over the forced tokens
    ppl_ref: float
    ppl_other: float
    tail_ref_mean: float
    tail_ref_max: float

    @property
    def kld_label(self) -> str:
        return "KLD" if self.k is None else f"KLD@{self.k}"


def distribution_stats(positions: Sequence[PositionCompare], k: int | None = None
                       ) -> DistributionStats | None:
    """None for no positions: "n/a" is shown, never 0."""
    n = len(positions)
    if n == 0:
        return None
    klds = [p.kld for p in positions]
    dps = [p.delta_p for p in positions]
    mse = mean_and_uncertainty([d * d for d in dps])
    # RMS uncertainty from the MSE one, as llama-perplexity: d sqrt(x) = dx / (2 sqrt(x))
    rms = math.sqrt(mse.value)
    nll_ref = [p.nll_ref for p in positions]
    nll_other = [p.nll_other for p in positions]
    ratio = mean_and_uncertainty([b - a for a, b in zip(nll_ref, nll_other, strict=True)])
    tails = [p.tail_ref for p in positions]
    return DistributionStats(
        n=n,
        k=k,
        same_top1=share_and_uncertainty(sum(p.same_top1 for p in positions), n),
        kld=mean_and_uncertainty(klds),
        kld_percentiles=_percentiles(klds, KLD_PERCENTILES),
        delta_p=mean_and_uncertainty(dps),
        delta_p_percentiles=_percentiles(dps, DP_PERCENTILES),
        rms_delta_p=MeanUnc(rms, 0.5 / rms * mse.unc if rms > 0 else 0.0),
        ln_ppl_ratio=ratio,
        ppl_ref=math.exp(math.fsum(nll_ref) / n),
        ppl_other=math.exp(math.fsum(nll_other) / n),
        tail_ref_mean=math.fsum(tails) / n,
        tail_ref_max=max(tails),
    )
