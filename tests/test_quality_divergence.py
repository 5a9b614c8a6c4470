"""KLD@K, same-top-1, Δp and the llama-perplexity-style statistics, on exact small cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanttui.core.quality.divergence import (
    PositionDist,
    cluster_mean,
    cluster_share,
    compare_position,
    distribution_stats,
    lp_percentile,
    mean_and_uncertainty,
    share_and_uncertainty,
)
from quanttui.core.run.stats import t_quantile


def dist(probs: list[float], token: int, k: int | None = None) -> PositionDist:
    """A server's report of `probs` (index = token id): the top-k list and the forced token."""
    order = sorted(range(len(probs)), key=lambda t: -probs[t])[:k]
    return PositionDist(token, math.log(probs[token]), tuple((t, math.log(probs[t]))
                                                             for t in order))


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


def test_identical_distributions_give_zero_and_same_top() -> None:
    p = [0.5, 0.3, 0.15, 0.05]
    c = compare_position(dist(p, 0), dist(p, 0))
    assert c.same_top1 and c.kld == pytest.approx(0.0, abs=1e-12) and c.delta_p == 0


def test_full_lists_give_the_exact_kl() -> None:
    p, q = [0.5, 0.3, 0.15, 0.05], [0.35, 0.45, 0.1, 0.1]
    c = compare_position(dist(p, 1), dist(q, 1))
    assert c.kld == pytest.approx(kl(p, q), rel=1e-12)
    assert not c.same_top1
    assert c.delta_p == pytest.approx(0.45 - 0.3) and c.tail_ref == pytest.approx(0, abs=1e-12)


def test_truncation_merges_the_tail_into_one_bucket() -> None:
    p, q = [0.5, 0.3, 0.15, 0.05], [0.4, 0.4, 0.1, 0.1]
    c = compare_position(dist(p, 0, k=2), dist(q, 0, k=2))
    tail_p, tail_q = 0.2, 0.2
    expected = 0.5 * math.log(0.5 / 0.4) + 0.3 * math.log(0.3 / 0.4) + tail_p * math.log(
        tail_p / tail_q)
    assert c.kld == pytest.approx(expected, rel=1e-12)
    assert c.tail_ref == pytest.approx(0.2)
    assert c.kld < kl(p, q)


def test_token_missing_from_b_goes_to_the_tail() -> None:
    # A's top-2 is {0, 1}; B reports only {0, 2}: p_B(1) is unknown, so 1 joins the tail.
    p, q = [0.5, 0.3, 0.15, 0.05], [0.6, 0.05, 0.3, 0.05]
    c = compare_position(dist(p, 0, k=2), dist(q, 0, k=2))
    expected = 0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4)
    assert c.kld == pytest.approx(expected, rel=1e-12)


def test_forced_token_outside_the_top_k_is_exact_for_delta_p() -> None:
    p, q = [0.5, 0.3, 0.15, 0.05], [0.4, 0.4, 0.1, 0.1]
    c = compare_position(dist(p, 3, k=1), dist(q, 3, k=1))
    assert c.delta_p == pytest.approx(0.05) and c.nll_ref == pytest.approx(-math.log(0.05))


def test_positions_must_force_the_same_token() -> None:
    p = [0.5, 0.5]
    with pytest.raises(ValueError, match="different tokens"):
        compare_position(dist(p, 0), dist(p, 1))


probs = st.lists(st.floats(0.01, 1.0), min_size=3, max_size=12).map(
    lambda xs: [x / sum(xs) for x in xs])


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_kld_at_k_never_over_reads_and_grows_with_k(data: st.DataObject) -> None:
    p = data.draw(probs)
    q = data.draw(st.lists(st.floats(0.01, 1.0), min_size=len(p), max_size=len(p)).map(
        lambda xs: [x / sum(xs) for x in xs]))
    tok = data.draw(st.integers(0, len(p) - 1))
    kb = data.draw(st.integers(1, len(p)))
    full = kl(p, q)
    prev = -1.0
    for k in range(1, len(p) + 1):
        c = compare_position(dist(p, tok), dist(q, tok, k=kb), k)
        assert -1e-12 <= c.kld <= full + 1e-9
        assert c.kld >= prev - 1e-9  # a finer partition never lowers a KL divergence
        prev = c.kld
    assert compare_position(dist(p, tok), dist(q, tok), None).kld == pytest.approx(full,
                                                                                    rel=1e-9)


def test_uncertainty_formulas_match_llama_perplexity() -> None:
    vals = [float(i) for i in range(20)]
    m = mean_and_uncertainty(vals)
    mean = sum(vals) / 20
    var = sum(v * v for v in vals) / 20 - mean * mean
    assert m.value == pytest.approx(mean) and m.unc == pytest.approx(math.sqrt(var / 19))
    assert mean_and_uncertainty(vals[:10]).unc == 0.0  # llama-perplexity: count > 10 only
    s = share_and_uncertainty(3, 4)
    assert s.value == 0.75 and s.unc == pytest.approx(math.sqrt(0.75 * 0.25 / 3))


def test_percentiles_interpolate_like_llama_perplexity() -> None:
    s = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert lp_percentile(s, 0.9) == pytest.approx(3.6)
    assert lp_percentile(s, 0.0) == 0.0 and lp_percentile(s, 1.0) == 4.0


def test_distribution_stats() -> None:
    p, q = [0.5, 0.3, 0.15, 0.05], [0.35, 0.45, 0.1, 0.1]
    cs = [compare_position(dist(p, t), dist(q, t)) for t in (0, 1, 2, 3)]
    seqs = [(f"p{i}", cs) for i in range(5)]  # five prompts alike: no spread between them
    st_ = distribution_stats(seqs, None)
    assert st_ is not None and st_.n == 20 and st_.kld_label == "KLD"
    assert st_.prompts == 5
    assert st_.scope == "over the first 4 positions of 5 prompts (20 positions)"
    assert st_.same_top1.value == 0.0
    assert st_.kld.value == pytest.approx(kl(p, q)) and st_.kld.unc == pytest.approx(0.0)
    assert st_.kld.low == pytest.approx(kl(p, q)) and st_.kld.high == pytest.approx(kl(p, q))
    dps = [0.35 - 0.5, 0.45 - 0.3, 0.1 - 0.15, 0.1 - 0.05]
    assert st_.delta_p.value == pytest.approx(sum(dps) / 4)
    assert st_.rms_delta_p.value == pytest.approx(math.sqrt(sum(d * d for d in dps) / 4))
    assert st_.kld_percentiles["median"] == pytest.approx(kl(p, q))
    assert st_.ppl_ref == pytest.approx(math.exp(-sum(math.log(x) for x in p) / 4))
    assert distribution_stats([], 10) is None and distribution_stats([("p", [])], 10) is None
    assert distribution_stats(seqs, 40).kld_label == "KLD@40"  # type: ignore[union-attr]
    one = distribution_stats([("p0", cs), ("p1", cs[:2])], None)
    assert one is not None and one.scope == "over the first ≤4 positions of 2 prompts (6 positions)"
    single = distribution_stats([("p0", cs)], None)  # one prompt: no interval
    assert single is not None and single.kld.low is None and single.same_top1.high is None


def test_cluster_mean_is_t_over_prompts() -> None:
    """Equal sizes: Student-t over the per-prompt means; unequal: the position-weighted mean
    with the CR1 standard error. Positions add nothing beyond their prompt's mean."""
    m = cluster_mean([16, 16, 16], [1.0, 2.0, 3.0])
    half = t_quantile(0.975, 2) / math.sqrt(3)
    assert (m.value, m.unc) == (pytest.approx(2.0), pytest.approx(1 / math.sqrt(3)))
    assert (m.low, m.high) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    assert cluster_mean([64, 64, 64], [1.0, 2.0, 3.0]) == m
    w = cluster_mean([1, 3], [0.0, 4.0])
    assert w.value == pytest.approx(3.0)
    assert w.unc == pytest.approx(math.sqrt(2 * ((1 * 3.0) ** 2 + (3 * 1.0) ** 2)) / 4)
    assert cluster_mean([16], [1.0]).low is None and cluster_mean([], []).value == 0.0


def test_skewed_means_widen_the_upper_end() -> None:
    """KLD's per-prompt means have a long right tail: the interval reaches the union with Cox's
    log-scale one, higher at the top than t alone; a prompt near 0 is floored for the log scale
    so the upper end stays bounded."""
    means = [0.01, 0.012, 0.015, 0.02, 0.03, 0.09]
    plain, skewed = cluster_mean([16] * 6, means), cluster_mean([16] * 6, means, skewed=True)
    assert skewed.value == plain.value and plain.low is not None and plain.low < 0
    assert skewed.low == 0.0  # t's lower end, floored at 0: KLD is never negative
    assert skewed.high is not None and plain.high is not None and skewed.high > plain.high
    tiny = cluster_mean([16] * 6, [0.01, 0.011, 0.009, 0.012, 0.01, 1e-9], skewed=True)
    assert tiny.high is not None and tiny.high < 0.1


def test_cluster_share_is_wilson_with_the_design_effect() -> None:
    # no spread between prompts: deff 1, Wilson on all positions with t(G−1)
    s = cluster_share([16] * 4, [12] * 4)
    z = t_quantile(0.975, 3)
    n, p = 64, 0.75
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (s.low, s.high) == (pytest.approx(centre - half), pytest.approx(centre + half))
    # prompts that disagree widen it (design effect > 1); all agreeing still has a width
    spread = cluster_share([16] * 4, [16, 16, 8, 8])
    assert spread.low is not None and s.low is not None and spread.low < s.low
    full = cluster_share([16] * 6, [16] * 6)
    assert full.high == pytest.approx(1.0) and full.low is not None and full.low < 0.97
    assert cluster_share([16], [8]).low is None
