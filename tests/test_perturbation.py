"""The TUI's own effect on the servers' decode speed (core.run.perturbation): quiet windows,
the figure from token gaps inside and beside them, its interval, its notice, its place in the
run JSON, and a TUI run that records it."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from quanttui.core.hardware import HardwarePoller
from quanttui.core.llama.result import CompletionResult
from quanttui.core.reports.run_file import encode_run, results_from_doc
from quanttui.core.reports.schema import RunDoc
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.perturbation import (
    NOTICE_SLOWDOWN,
    QuietWindows,
    add_perturbation,
    perturbation,
)
from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo
from quanttui.testing.fake_server import FakeLlamaServer
from test_tui_flows import app_for, config, probed, run_prompt

S = 1_000_000_000  # ns


def test_quiet_windows_come_every_so_often_and_end_with_the_run() -> None:
    q = QuietWindows(every_s=10, length_s=2, settle_s=0.5)
    q.start(0)
    assert not q.quiet(9 * S)
    assert q.quiet(10 * S) and q.quiet(11 * S)  # opened at 10 s, for 2 s
    assert not q.quiet(12 * S + 1)
    assert not q.quiet(19 * S) and q.quiet(20 * S)
    assert q.stop(21 * S) == [(10 * S, 12 * S), (20 * S, 21 * S)]
    assert not q.quiet(40 * S)  # stopped: no more windows
    q.start(100 * S)
    assert q.windows == [] and not q.quiet(105 * S)


def _results(gap_ms: Any, *, seconds: float = 200, servers: tuple[str, ...] = ("A",),
             request_s: float = 8.0) -> RunResults:
    """Requests back to back on each server, one token per event, gaps from
    `gap_ms(server, t_ns)` (t: the gap's start)."""
    recs = []
    for server in servers:
        t, i = 0, 0
        while t < seconds * S:
            res = CompletionResult(server, "completion", t)
            end = t + int(request_s * S)
            while t < end:
                res.event_times_ns.append(t)
                res.event_ntokens.append(1)
                t += int(gap_ms(server, t) * 1e6)
            recs.append(RequestRecord(
                request_id=i, server=server, prompt_id=f"p{i}", category="c", repetition=0,
                warmup=False, concurrency=1, round=0, started_at=0.0,
                metrics=request_metrics(res), result=res))
            i += 1
            t += S // 10  # between requests: no gap counts
    return RunResults(servers=[ServerInfo(s, s) for s in servers], schedule="simultaneous",
                      endpoint="completion", repetitions=1, warmup=0, concurrency_levels=(1,),
                      records=recs)


def _windows(seconds: float, every: float = 20, length: float = 2, settle: float = 0.25
             ) -> list[tuple[int, int]]:
    q = QuietWindows(every, length, settle)
    q.start(0)
    t = 0
    while t < seconds * S:
        q.quiet(t)
        t += S // 2  # the TUI's ticks
    return q.stop(int(seconds * S))


def test_drawing_that_slows_a_server_by_8_percent_is_measured_and_said() -> None:
    windows = _windows(200)
    rng = random.Random(3)

    def gap(server: str, t: int) -> float:
        inside = any(a <= t < b for a, b in windows)
        noise = rng.lognormvariate(0, 0.1)
        return noise * (33.0 if inside else 33.0 / 0.92)  # drawing: 8% slower

    res = _results(gap)
    p = perturbation(res, windows)
    a = p.servers["A"]
    assert p.windows == len(windows) == 9 and a.windows == 9
    assert a.decode_ratio == pytest.approx(0.92, abs=0.015)
    assert a.low is not None and a.high is not None and a.low <= 0.92 <= a.high < 0.98
    notices = add_perturbation_from(res, windows)
    assert [n.code for n in notices] == ["screen-cost"] and notices[0].server == "A"
    assert "×0.92" in notices[0].message and "headless" in notices[0].message
    assert res.notices[-1]["code"] == "screen-cost"  # kept in the run too


def add_perturbation_from(res: RunResults, windows: list[tuple[int, int]]) -> list[Any]:
    q = QuietWindows()
    q.windows = list(windows)
    return add_perturbation(res, q)


def test_no_effect_and_a_steady_drift_read_as_one() -> None:
    """The machine slows over the run (30 → 40 ms a token) and each request a little as its
    context fills (3%): the drawn stretches on both sides of a window cancel the drift."""
    windows = _windows(200)

    def gap(server: str, t: int) -> float:
        return (30.0 + 10.0 * t / (200 * S)) * (1 + 0.03 * ((t / S) % 8.1) / 8.1)

    res = _results(gap)
    a = perturbation(res, windows).servers["A"]
    assert a.decode_ratio is not None and abs(a.decode_ratio - 1) < NOTICE_SLOWDOWN / 2
    assert add_perturbation_from(res, windows) == []


def test_a_short_run_says_it_could_not_tell() -> None:
    res = _results(lambda s, t: 33.0, seconds=15)
    p = perturbation(res, _windows(15))
    assert p.windows == 0 and p.servers["A"].decode_ratio is None
    assert "less than 20 s" in p.note
    one = perturbation(_results(lambda s, t: 33.0, seconds=25), _windows(25))
    assert one.servers["A"].windows == 1 and one.servers["A"].low is None
    assert "too few" in one.note and add_perturbation_from(res, []) == []


def test_the_interval_keeps_its_95_percent() -> None:
    """No effect, token gaps with per-token noise and a slow wander of the machine's speed
    (shared by quiet and drawn stretches close in time): the shipped interval, over the
    windows a 3-minute run gives, covers ×1 in about 95% of runs."""
    rng = random.Random(7)
    trials, covered = 300, 0
    windows = _windows(180, every=20, length=2)
    for _ in range(trials):
        phase = rng.uniform(0, 2 * math.pi)

        def gap(server: str, t: int, phase: float = phase) -> float:
            return 33.0 * (1 + 0.05 * math.sin(phase + t / (60 * S))) * rng.lognormvariate(0, 0.1)

        a = perturbation(_results(gap, seconds=180), windows).servers["A"]
        assert a.low is not None and a.high is not None
        covered += a.low <= 1.0 <= a.high
    assert 0.91 <= covered / trials <= 0.99, covered / trials


def test_the_run_json_holds_the_figure_and_reads_it_back() -> None:
    windows = _windows(60)
    res = _results(lambda s, t: 33.0, seconds=60, servers=("A", "B"))
    add_perturbation_from(res, windows)
    data = json.loads(encode_run(res))
    assert data["perturbation"]["windows"] == 2
    assert set(data["perturbation"]["servers"]) == {"A", "B"}
    assert data["perturbation"]["servers"]["A"]["decode_ratio"] == pytest.approx(1.0, abs=1e-6)
    back = results_from_doc(msgspec.json.decode(encode_run(res), type=RunDoc))
    assert back.extra["perturbation"] == data["perturbation"]
    headless = _results(lambda s, t: 33.0, seconds=5)
    assert "perturbation" not in json.loads(encode_run(headless))  # nothing drawn: absent


async def test_a_tui_run_records_its_own_cpu_and_what_drawing_cost(tmp_path: Path) -> None:
    """The run the TUI stores holds quanttui's own CPU share (hardware) and the perturbation
    figure from its quiet windows (here short and frequent, so a few seconds give several)."""
    with FakeLlamaServer(token_delay=0.005) as a, FakeLlamaServer(token_delay=0.005) as b:
        poller = HardwarePoller(interval_s=0.2, gpu=False)
        app = app_for(config(tmp_path, **{"generation.n_predict": 600}), ("A", a.url),
                      ("B", b.url), poller=poller)
        app._quiet = QuietWindows(every_s=0.6, length_s=0.4, settle_s=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await probed(pilot, app)
            await run_prompt(pilot, app, "Count", timeout=120)
        assert app.results is not None
        data = json.loads(encode_run(app.results))
    p = data["perturbation"]
    assert p["windows"] >= 2 and p["every_s"] == 0.6
    for name in ("A", "B"):
        s = p["servers"][name]
        assert s["windows"] >= 2 and s["decode_ratio"] is not None, s
        assert s["low"] <= s["decode_ratio"] <= s["high"]
    own = data["hardware"]["own_cpu_percent_mean"]
    assert isinstance(own, float) and own > 0
