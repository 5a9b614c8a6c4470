"""What else ran on the machine while it measured, and stalls (core.run.outside_load)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from quanttui.core.hardware import HardwarePoller, ProcessTarget
from quanttui.core.hardware.host import HostSample
from quanttui.core.hardware.poller import HwSample
from quanttui.core.hardware.reading import NA
from quanttui.core.hardware.summary import hardware_json, other_cpu_cores
from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.servers import ManagedServer
from quanttui.core.run.outside_load import add_load_notices, outside_load_notice, stall_notices
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import builtin_suite


def sample(host_pct: float, servers: list[float], own: float, cores: int = 2) -> HwSample:
    host = HostSample(host_pct, tuple([host_pct] * cores), NA("x"), 1, 1, 1, 0, 0)
    procs = tuple(cast(Any, SimpleNamespace(name=f"s{i}", cpu_percent=c))
                  for i, c in enumerate(servers))
    return HwSample(1, 0, 0, host, procs, NA("no GPU"), own)


def test_other_cores_are_the_host_less_the_servers_and_quanttui() -> None:
    # 2 cores 90% busy = 1.8 cores; servers 60% + 50% of a core, quanttui 2%: 0.68 elsewhere
    assert other_cpu_cores(sample(90.0, [60.0, 50.0], 2.0)) == pytest.approx(0.68)
    assert other_cpu_cores(sample(50.0, [60.0, 40.0], 1.0)) == 0.0  # never below 0
    # a server whose process isn't seen from here (attached, remote): can't tell
    assert isinstance(other_cpu_cores(sample(90.0, [NA("remote")], 2.0)), NA)  # type: ignore[list-item]


def test_notice_only_above_half_a_core() -> None:
    quiet = {"host": {"other_cpu_cores_mean": 0.2, "logical_cores": 2}}
    busy = {"host": {"other_cpu_cores_mean": 1.4, "logical_cores": 2}}
    assert outside_load_notice(quiet) is None
    assert outside_load_notice({"host": {"other_cpu_cores_mean": {"n/a": "remote"}}}) is None
    n = outside_load_notice(busy, "pass 2: ")
    assert n is not None and n["code"] == "outside-load"
    assert n["message"].startswith("pass 2: other processes kept 1.4 of 2 cores busy")


def _rec(i: int, server: str, prompt: str, tps: float, n_out: int = 64) -> RequestRecord:
    return RequestRecord(request_id=i, server=server, prompt_id=prompt, category="c",
                         repetition=i, warmup=False, concurrency=1, round=i, started_at=0.0,
                         metrics=cast(Any, SimpleNamespace(decode_tps_client=tps,
                                                           n_out=n_out)))


def test_a_stalled_repetition_is_named() -> None:
    recs = [_rec(0, "A", "p", 20.0), _rec(1, "A", "p", 21.0), _rec(2, "A", "p", 6.0),
            _rec(3, "B", "p", 20.0), _rec(4, "B", "p", 12.0), _rec(5, "B", "p", 19.0)]
    res = RunResults(servers=[ServerInfo("A", "a"), ServerInfo("B", "b")], schedule="alternating",
                     endpoint="completion", repetitions=3, warmup=0, concurrency_levels=(1,),
                     records=recs)
    (n,) = stall_notices(res)  # B's 12 tok/s is 63% of its median: slow, not a stall
    assert n["server"] == "A" and "#2 p: 6.0 vs its prompt's median 20.0 tok/s" in n["message"]


def test_a_stall_is_seen_with_one_repetition() -> None:
    """Each prompt once (the default): a request is held against the server's other requests
    (one server's decode speed varies little across prompts), so a stall is named, which
    prompt it was and what it slowed; a slow prompt a quarter under the rest is not one, nor
    a request too short to tell."""
    speeds = {"A": [20.0, 19.0, 21.0, 6.0, 20.5], "B": [30.0, 22.0, 31.0, 29.0, 30.5]}
    recs = [_rec(10 * k + i, s, f"p{i}", v) for k, (s, vs) in enumerate(speeds.items())
            for i, v in enumerate(vs)]
    recs.append(_rec(9, "A", "p9", 4.0, n_out=3))  # an answer of 3 tokens: too short to judge
    res = RunResults(servers=[ServerInfo("A", "a"), ServerInfo("B", "b")], schedule="alternating",
                     endpoint="completion", repetitions=1, warmup=0, concurrency_levels=(1,),
                     records=recs)
    (n,) = stall_notices(res)
    assert n["server"] == "A" and n["code"] == "stall"
    assert "1 request(s)" in n["message"]
    assert "#3 p3: 6.0 vs the server's median 20.2 tok/s" in n["message"]
    assert "decode tok/s, TPOT, ITL and E2E" in n["message"]
    said = add_load_notices(res)  # kept in the run's notices, so in its JSON
    assert [x.code for x in said] == ["stall"] and res.notices[-1]["code"] == "stall"


@pytest.fixture
def hogs() -> Iterator[None]:
    """Two processes spinning on the CPU, as another tenant of a VPS would."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.real
async def test_a_cpu_hog_beside_two_servers_is_said(real_pair: tuple[ManagedServer, ...],
                                                    hogs: None) -> None:
    specs = [ServerSpec(s.label, s.url, pid=s.pid) for s in real_pair]
    poller = HardwarePoller([ProcessTarget(s.name, url=s.url, pid=s.pid) for s in specs],
                            interval_s=0.5, gpu=False)
    poller.start()
    try:
        res = await Session(specs, RunPlan(
            prompts=tuple(builtin_suite("quick")[:2]), repetitions=2, schedule="alternating",
            params=GenerationParams(n_predict=48, ignore_eos=True))).run()
    finally:
        poller.stop()
    res.hardware = hardware_json(poller.history(), poller.host_info(),
                                 [(s.name, s.model_path) for s in res.servers])
    poller.close()
    said = add_load_notices(res)
    other = res.hardware["host"]["other_cpu_cores_mean"]
    assert isinstance(other, float) and other >= 0.5, res.hardware["host"]
    assert [n.code for n in said].count("outside-load") == 1
    assert any(n["code"] == "outside-load" for n in res.notices)  # kept in the run's JSON
    own = res.hardware["own_cpu_percent_mean"]
    assert isinstance(own, float) and 0.0 <= own < 100.0


def test_quanttui_over_its_own_budget_is_said() -> None:
    from quanttui.core.run.outside_load import own_cost_notice

    assert own_cost_notice({"own_cpu_percent_mean": 1.2}) is None
    n = own_cost_notice({"own_cpu_percent_mean": 3.4})
    assert n is not None and n["code"] == "own-cost" and "3.4% of a core" in n["message"]


def test_a_headless_run_keeps_quanttuis_own_cpu_in_its_json(tmp_path: Path) -> None:
    """The run file holds what quanttui cost the machine (hardware.own_cpu_percent_mean) and
    what else ran (hardware.host.other_cpu_cores_mean, n/a for servers it can't see)."""
    import json

    from quanttui.testing.fake_server import FakeLlamaServer

    with FakeLlamaServer(token_delay=0.002) as a, FakeLlamaServer(token_delay=0.002) as b:
        out = tmp_path / "run.json"
        proc = subprocess.run(
            [sys.executable, "-m", "quanttui", "run", "--headless", "--server", f"A={a.url}",
             "--server", f"B={b.url}", "-o", str(out), "-n", "64",
             "--set", "hardware.poll_interval=0.2"],
            cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr
    hw = json.loads(out.read_text())["hardware"]
    own = hw["own_cpu_percent_mean"]
    assert isinstance(own, float) and 0.0 < own < 100.0
    assert "other_cpu_cores_mean" in hw["host"]
