from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanttui.core.llama.protocol import Timings
from quanttui.core.llama.result import CompletionResult
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.stats import paired_difference, percentile, summarize

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
    d = paired_difference(a, b, seed=1)
    assert d is not None and d.n == 20 and d.win_rate_b == 1.0
    assert d.ratio == pytest.approx(1.5)
    assert d.ci_low is not None and d.ci_high is not None
    assert d.ci_low < d.mean_diff < d.ci_high and d.ci_low > 0
    assert paired_difference(a, b, seed=1) == d  # seeded: re-rendering gives the same CI
    same = paired_difference(a, dict(a))
    assert same is not None and same.mean_diff == 0 and same.win_rate_b == 0.5
    assert paired_difference({"x": 1.0}, {"y": 2.0}) is None
    one = paired_difference({"x": 1.0}, {"x": 2.0})
    assert one is not None and one.ci_low is None
