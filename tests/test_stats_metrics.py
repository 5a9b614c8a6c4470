from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanttui.core.llama.protocol import Timings
from quanttui.core.llama.result import CompletionResult
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.stats import (
    PairedDiff,
    paired_difference,
    paired_proportion_interval,
    percentile,
    summarize,
    t_quantile,
)

MS = 1_000_000


def make(times_ms: list[float], sent: float = 0.0, done: float | None = None,
         timings: Timings | None = None, ntok: list[int] | None = None) -> CompletionResult:
    r = CompletionResult(server="s", endpoint="completion", t_sent_ns=int(sent * MS))
    r.t_first_event_ns = int(times_ms[0] * MS) if times_ms else None
    r.event_times_ns = [int(t * MS) for t in times_ms]
    r.event_ntokens = ntok or [1] * len(times_ms)
    r.event_texts = ["x"] * len(times_ms)
    r.t_done_ns = int((done if done is not None else times_ms[-1]) * MS)
    r.timings = timings
    return r


def test_request_metrics_definitions() -> None:
    # sent at 0, first token at 100 ms, then one token every 10 ms: 11 tokens
    times = [100.0 + 10 * i for i in range(11)]
    t = Timings(prompt_n=20, prompt_ms=80.0, prompt_per_second=250.0, predicted_n=11,
                predicted_ms=100.0, predicted_per_second=100.0)
    m = request_metrics(make(times, done=201.0, timings=t))
    assert m.ttft_ms == 100.0 and m.ttfr_ms == 100.0 and m.e2e_ms == 201.0
    assert m.decode_tps_client == pytest.approx(100.0)  # (11-1) / 0.1 s
    assert m.tpot_ms == pytest.approx((201.0 - 100.0) / 10)
    assert m.itl_ms == tuple([10.0] * 10)
    assert m.decode_tps_server == 100.0 and m.prompt_ms_server == 80.0
    assert m.client_overhead_ms == pytest.approx(20.0)
    assert m.n_out == 11 and m.n_prompt == 20 and not m.cache_hit


def test_itl_divides_multi_token_events() -> None:
    m = request_metrics(make([0.0, 30.0], ntok=[1, 3]))
    assert m.itl_ms == (10.0, 10.0, 10.0)
    assert m.decode_tps_client == pytest.approx(3 / 0.03)


def test_cache_hit_flagged() -> None:
    m = request_metrics(make([1.0, 2.0], timings=Timings(cache_n=5, prompt_n=1)))
    assert m.cache_hit and m.n_prompt == 6


def test_single_token_has_no_rates() -> None:
    m = request_metrics(make([5.0]))
    assert m.decode_tps_client is None and m.tpot_ms is None and m.itl_ms == ()


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60))
def test_summary_matches_statistics(values: list[float]) -> None:
    s = summarize(values)
    assert s is not None
    assert s.n == len(values) and s.min == min(values) and s.max == max(values)
    assert s.mean == pytest.approx(statistics.fmean(values), abs=1e-6)
    assert s.p50 == pytest.approx(statistics.median(values), abs=1e-6)
    assert s.min <= s.p50 <= s.p90 <= s.p95 <= s.p99 <= s.max


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert summarize([]) is None


def test_paired_difference() -> None:
    a = {f"p{i}": 10.0 + i for i in range(20)}
    b = {k: v * 1.5 for k, v in a.items()}
    d = paired_difference(a, b)
    assert d is not None and d.n == 20 and d.win_rate_b == 1.0 and d.measurable
    assert d.ratio == pytest.approx(1.5)
    assert d.ci_low is not None and d.ci_high is not None
    assert d.ci_low < d.mean_diff < d.ci_high and d.ci_low > 0
    assert paired_difference(a, b) == d  # re-rendering gives the same interval
    assert d.ratio_ci is not None and d.ratio_ci[0] < 1.5 < d.ratio_ci[1]
    same = paired_difference(a, dict(a))
    assert same is not None and same.mean_diff == 0 and same.win_rate_b == 0.5
    assert not same.measurable
    assert paired_difference({"x": 1.0}, {"y": 2.0}) is None
    one = paired_difference({"x": 1.0}, {"x": 2.0})
    assert one is not None and one.ci_low is None


def test_t_quantiles_match_the_tables() -> None:
    for df, t in [(1, 12.7062), (2, 4.3027), (5, 2.5706), (11, 2.2010), (29, 2.0452)]:
        assert t_quantile(0.975, df) == pytest.approx(t, abs=1e-4)
    assert t_quantile(0.025, 5) == pytest.approx(-2.5706, abs=1e-4)


@pytest.mark.parametrize("n", [3, 6, 12, 30])
def test_paired_interval_coverage(n: int) -> None:
    """Seeded simulation: with no true difference the 95% interval excludes 0 in <= 6% of 2,000
    runs; with a known shift it covers the shift in >= 94%. Per-prompt speeds differ a lot
    between prompts (the pairing removes that) and carry noise of their own."""
    rng = random.Random(n)
    runs, false_alarms, covered = 2000, 0, 0
    for _ in range(runs):
        base = [rng.uniform(20, 80) for _ in range(n)]
        a = {f"p{j}": x + rng.gauss(0, 2) for j, x in enumerate(base)}
        same = {f"p{j}": x + rng.gauss(0, 2) for j, x in enumerate(base)}
        shifted = {f"p{j}": x + 1.5 + rng.gauss(0, 2) for j, x in enumerate(base)}
        d0 = paired_difference(a, same)
        d1 = paired_difference(a, shifted)
        assert d0 is not None and d1 is not None
        assert d0.ci_low is not None and d0.ci_high is not None
        assert d1.ci_low is not None and d1.ci_high is not None
        false_alarms += d0.measurable
        covered += d1.ci_low <= 1.5 <= d1.ci_high
    assert false_alarms / runs <= 0.06
    assert covered / runs >= 0.94


def test_paired_proportion_interval_coverage() -> None:
    """Accuracy deltas (paired yes/no per item): Newcombe's interval keeps near-95% coverage at
    the item counts of a task suite, and never collapses to a point when every pair agrees."""
    rng = random.Random(7)
    shares = []
    for n in (10, 20, 40):
        for pa, pb, rho in ((0.7, 0.7, 0.5), (0.5, 0.6, 0.3), (0.9, 0.8, 0.0)):
            hit = 0
            for _ in range(1000):
                c = [0, 0, 0, 0]
                for _ in range(n):
                    u = rng.random()
                    ya = u < pa
                    yb = (u < pb) if rng.random() < rho else (rng.random() < pb)
                    c[0 if ya and yb else 1 if ya else 2 if yb else 3] += 1
                ci = paired_proportion_interval(*c)
                assert ci is not None
                hit += ci[0] <= pb - pa <= ci[1]
            shares.append(hit / 1000)
    assert min(shares) >= 0.90 and sum(shares) / len(shares) >= 0.935
    lo, hi = paired_proportion_interval(10, 0, 0, 0) or (0.0, 0.0)
    assert lo < 0 < hi


def test_until_decided_steps() -> None:
    """`--until-decided` between repetitions: a ratio is decided when its 95% interval is
    within ± the half-width or a 99% one excludes 1; deciding goes on while one is open and
    the budget has room for another repetition and a confirmation as long as all of deciding;
    then as many confirmation repetitions as deciding took, fewer where the budget has no
    room, never none. (The false-difference rate of the whole loop:
    tests/test_stats_coverage.py::test_until_decided_false_difference.)"""
    from quanttui.core.run.decide import Step, next_step

    ref = {"p0": 100.0, "p1": 100.0, "p2": 100.0}
    narrow = paired_difference(ref, {"p0": 100.5, "p1": 101.0, "p2": 100.2})  # ±1%
    different = paired_difference(ref, {"p0": 150.0, "p1": 160.0, "p2": 155.0})  # ±12%, > 1
    wide = paired_difference(ref, {"p0": 90.0, "p1": 110.0, "p2": 100.0})  # ±25% around 1

    def step(diffs: list[PairedDiff | None], elapsed: float, reps: int = 4) -> Step:
        return next_step(diffs, 0.03, repetitions=reps, elapsed_s=elapsed, repetition_s=10.0,
                         budget_s=600.0)

    assert step([narrow, different], 100) == Step((), more=False, confirm=4)
    assert step([narrow, wide, None], 100) == Step((1, 2), more=True, confirm=0)
    assert step([wide], 540) == Step((0,), more=True, confirm=0)  # 540 + 10·(4 + 2) fits
    assert step([wide], 541) == Step((0,), more=False, confirm=4)
    assert step([wide], 575) == Step((0,), more=False, confirm=2)
    assert step([wide], 700) == Step((0,), more=False, confirm=1)
    assert step([narrow], 700, reps=1) == Step((), more=False, confirm=1)
