"""The engine against real llama-servers serving the demo quants."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.servers import ManagedServer
from quanttui.core.reports.run_file import results_dict, write_json
from quanttui.core.run.contention import assess
from quanttui.core.run.events import Event, RequestFinished
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import builtin_suite

pytestmark = pytest.mark.real

PROMPTS = tuple(builtin_suite("quick")[:2])
P40 = GenerationParams(n_predict=40, ignore_eos=True)


def spec(s: ManagedServer) -> ServerSpec:
    return ServerSpec(s.label, s.url, pid=s.pid)


@pytest.mark.parametrize("schedule", ["simultaneous", "alternating", "sequential"])
async def test_client_rate_matches_server_rate(real_pair: tuple[ManagedServer, ...],
                                               schedule: str) -> None:
    res = await Session([spec(s) for s in real_pair],
                        RunPlan(prompts=PROMPTS, params=P40, schedule=schedule)).run()
    recs = res.measured()
    assert len(recs) == 4 and all(r.ok for r in recs)
    for r in recs:
        m = r.metrics
        assert m is not None and m.n_out >= 32
        assert m.decode_tps_client is not None and m.decode_tps_server is not None
        assert m.decode_tps_client == pytest.approx(m.decode_tps_server, rel=0.05), r.server
    info = {s.name: s for s in res.servers}
    assert info["Q4_K_M"].model_ftype == "Q4_K - Medium" and info["Q8_0"].model_ftype == "Q8_0"
    assert info["Q8_0"].model_size > info["Q4_K_M"].model_size  # type: ignore[operator]


async def test_contention_is_said_under_simultaneous_only(
        make_server: Callable[..., ManagedServer]) -> None:
    """Two servers of two threads each on a 2-core machine: the simultaneous run warns and
    points at alternating; the alternating run, which is the remedy, does not warn. (That
    alternating then gives each server its solo speed is a timing claim:
    benchmarks/contention.py measures it.)"""
    a = make_server("Q4_K_M", threads=2)
    b = make_server("Q8_0", threads=2)
    servers = [spec(a), spec(b)]
    prompts = tuple(builtin_suite("quick")[:2])
    p = GenerationParams(n_predict=8)
    sim = await Session(servers, RunPlan(prompts=prompts, params=p, schedule="simultaneous"),
                        contention=assess).run()
    alt = await Session(servers, RunPlan(prompts=prompts, params=p, schedule="alternating"),
                        contention=assess).run()
    contention = [n for n in sim.notices if n["code"] == "contention"]
    assert contention, sim.notices
    assert "alternating" in contention[0]["message"] and "4 threads on 2 cores" in contention[
        0]["message"]
    assert not [n for n in alt.notices if n["code"] == "contention"], alt.notices
    assert not sim.failures and not alt.failures


async def test_no_contention_warning_when_threads_fit(real_pair: tuple[ManagedServer, ...]
                                                      ) -> None:
    from quanttui.core.run.records import ServerInfo

    infos = [ServerInfo(name=s.label, url=s.url) for s in real_pair]  # found by port
    assert assess(infos) == []  # one thread each on two cores


async def test_concurrency_sweep_aggregates(make_server: Callable[..., ManagedServer],
                                            tmp_path: Path) -> None:
    s = make_server("Q4_K_M", parallel=4, ctx_size=4096)
    prompts = tuple(builtin_suite("quick")[:4])
    res = await Session([spec(s)], RunPlan(prompts=prompts, params=GenerationParams(
        n_predict=32, ignore_eos=True), concurrency_levels=(1, 2, 4))).run()
    assert all(r.ok for r in res.measured())
    assert not any(n["code"] == "slots" for n in res.notices)  # -np 4: enough slots
    write_json(tmp_path / "sweep.json", res)
    data = json.loads((tmp_path / "sweep.json").read_text())
    agg = {lvl: data["stats"]["Q4_K_M"][lvl]["aggregate_tps"] for lvl in ("1", "2", "4")}
    assert all(v and v > 0 for v in agg.values())
    # continuous batching: four in flight produce more tokens per second than one
    assert agg["4"] > agg["1"], agg
    # and each request is slower than alone
    per1 = res.summary("Q4_K_M", "decode_tps_server", 1)
    per4 = res.summary("Q4_K_M", "decode_tps_server", 4)
    assert per1 is not None and per4 is not None and per4.mean < per1.mean


async def test_server_killed_mid_run(make_server: Callable[..., ManagedServer],
                                     tmp_path: Path) -> None:
    a = make_server("Q4_K_M")
    b = make_server("Q8_0")
    killed = []

    def emit(e: Event) -> None:
        if isinstance(e, RequestFinished) and not e.record.warmup and not killed:
            killed.append(e.record.request_id)
            assert b.pid is not None
            os.kill(b.pid, signal.SIGKILL)

    prompts = tuple(builtin_suite("quick")[:4])
    res = await Session([spec(a), spec(b)], RunPlan(
        prompts=prompts, params=GenerationParams(n_predict=24), schedule="sequential",
        warmup=0), emit=emit).run()
    ok_a = [r for r in res.measured("Q4_K_M") if r.ok]
    assert len(ok_a) == 4  # the other server finished its run
    failed = res.failures
    assert failed and all(r.server == "Q8_0" for r in failed)
    # three without an answer, then the last one recorded as skipped (server down)
    assert [r.error_kind for r in failed] == ["unreachable"] * 3 + ["skipped"]
    assert "Q8_0" in (failed[0].error or "")
    out = tmp_path / "run.json"
    write_json(out, res)
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(results_dict(res)))
    finished = [r for r in data["records"] if r["ok"]]
    assert len(finished) == len([r for r in res.records if r.ok])
    assert any(r["error"] for r in data["records"])


async def test_greedy_repetitions_repeat_on_a_real_server(real_pair: tuple[ManagedServer, ...]
                                                          ) -> None:
    """At temperature 0 with one slot a server repeats itself: no 'nondeterministic' notice
    (the check must not cry wolf on the normal case)."""
    prompts = tuple(builtin_suite("quick")[:2])
    res = await Session([spec(real_pair[0])], RunPlan(
        prompts=prompts, params=GenerationParams(n_predict=16), repetitions=2, warmup=0)).run()
    assert all(r.ok for r in res.measured()) and len(res.measured()) == 4
    assert res.unrepeatable("Q4_K_M") == []
    assert not any(n["code"] == "nondeterministic" for n in res.notices)
