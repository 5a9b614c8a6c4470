"""The engine against fake servers: schedules, concurrency rounds, failures, stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from quanttui.core.llama.client import Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.run.events import Event, Notice, Progress, RequestFinished, TokenBatch
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import Prompt, builtin_suite
from quanttui.testing.fake_server import FakeLlamaServer, Fault

PROMPTS = tuple(builtin_suite("quick")[:3])
FAST = Timeouts(connect=1, read=1, total=10)


def plan(**kw: object) -> RunPlan:
    base: dict[str, object] = {"prompts": PROMPTS, "params": GenerationParams(n_predict=12),
                               "timeouts": FAST, "warmup": 1}
    base.update(kw)
    return RunPlan(**base)  # type: ignore[arg-type]


@pytest.fixture
def pair() -> object:
    with FakeLlamaServer(token_delay=0.002) as a, FakeLlamaServer(token_delay=0.004) as b:
        yield a, b


def specs(a: FakeLlamaServer, b: FakeLlamaServer) -> list[ServerSpec]:
    return [ServerSpec("A", a.url), ServerSpec("B", b.url)]


@pytest.mark.parametrize("schedule", ["simultaneous", "alternating", "sequential"])
async def test_schedules_run_every_request(pair: tuple[FakeLlamaServer, ...], schedule: str
                                           ) -> None:
    a, b = pair
    events: list[Event] = []
    res = await Session(specs(a, b), plan(schedule=schedule, repetitions=2),
                        emit=events.append).run()
    measured = res.measured()
    assert len(measured) == 2 * 3 * 2 and all(r.ok for r in measured)
    assert len([r for r in res.records if r.warmup]) == 2
    # warm-ups are excluded and shortened
    assert all(r.metrics and r.metrics.n_out == 8 for r in res.records if r.warmup)
    # every token reached the consumer through TokenBatch events
    streamed = sum(len(e.token_ids) for e in events if isinstance(e, TokenBatch))
    assert streamed == sum(r.metrics.n_out for r in res.records if r.metrics)
    last = [e for e in events if isinstance(e, Progress)][-1]
    assert (last.done, last.total, last.failed) == (12, 12, 0)
    d = res.paired("decode_tps_client", "A", "B")
    assert d is not None and d.n == 3 and d.mean_diff < 0  # B is the slower fake


async def test_simultaneous_overlaps_alternating_does_not(pair: tuple[FakeLlamaServer, ...]
                                                          ) -> None:
    a, b = pair

    def spans(res: object) -> list[tuple[int, int, str]]:
        return sorted((r.result.t_sent_ns, r.result.t_done_ns, r.server)  # type: ignore
                      for r in res.measured())  # type: ignore[attr-defined]

    for schedule, overlap in (("simultaneous", True), ("alternating", False),
                              ("sequential", False)):
        res = await Session(specs(a, b), plan(schedule=schedule, warmup=0)).run()
        s = spans(res)
        overlapped = any(s[i + 1][0] < s[i][1] for i in range(len(s) - 1))
        assert overlapped is overlap, schedule


async def test_alternating_order_is_shuffled_and_seeded(pair: tuple[FakeLlamaServer, ...]
                                                        ) -> None:
    a, b = pair
    prompts = tuple(Prompt(f"p{i}", f"prompt {i}") for i in range(12))

    async def order(seed: int) -> list[str]:
        res = await Session(specs(a, b), plan(prompts=prompts, schedule="alternating",
                                              warmup=0, order_seed=seed)).run()
        firsts = []
        for rnd in range(12):
            recs = sorted((r for r in res.measured() if r.round == rnd),
                          key=lambda r: r.result.t_sent_ns)  # type: ignore[union-attr]
            firsts.append(recs[0].server)
        return firsts

    o1, o2 = await order(1), await order(1)
    assert o1 == o2 and set(o1) == {"A", "B"}


async def test_concurrency_rounds_aggregate(pair: tuple[FakeLlamaServer, ...]) -> None:
    a, b = pair
    prompts = tuple(Prompt(f"p{i}", f"prompt {i}") for i in range(4))
    res = await Session(specs(a, b), plan(prompts=prompts, concurrency_levels=(1, 2, 4),
                                          warmup=0)).run()
    for level in (1, 2, 4):
        rounds = [r for r in res.rounds if r.server == "A" and r.concurrency == level]
        assert len(rounds) == 4 // level and all(r.n_requests == level for r in rounds)
        agg = res.aggregate("A", level)
        assert agg is not None and agg[0] > 0
    # several requests in flight on one (single-slot) fake overlap in time
    recs = [r for r in res.measured("A", 4)]
    assert max(r.result.t_sent_ns for r in recs) < min(  # type: ignore[union-attr]
        r.result.t_done_ns for r in recs)  # type: ignore[union-attr]
    assert any(n["code"] == "slots" for n in res.notices)  # fake has 1 slot: warned


async def test_one_server_failing_never_stops_the_other(pair: tuple[FakeLlamaServer, ...]
                                                        ) -> None:
    a, b = pair
    b.fault = Fault("drop", after=3)
    events: list[Event] = []
    res = await Session(specs(a, b), plan(repetitions=2, warmup=0), emit=events.append).run()
    assert all(r.ok for r in res.measured("A")) and len(res.measured("A")) == 6
    failed = [r for r in res.records if r.server == "B" and r.error_kind != "skipped"]
    assert failed and all(r.error_kind == "ended-early" for r in failed)
    assert all("B" in (r.error or "") and "mid-stream" in (r.error or "") for r in failed)
    assert all(r.n_events == 3 for r in failed)  # partial output kept
    # after 3 failures in a row B is taken as down; its remaining requests are recorded as
    # skipped, with the reason, and counted
    assert len(failed) == 3
    skipped = [r for r in res.records if r.error_kind == "skipped"]
    assert len(skipped) == 3 and all(r.server == "B" and "taken as down" in (r.error or "")
                                     and "mid-stream" in (r.error or "") for r in skipped)
    assert any(isinstance(e, Notice) and e.code == "server-down" for e in events)
    last = [e for e in events if isinstance(e, Progress)][-1]
    assert last.done == last.total == 12 and last.failed == 6


async def test_unreachable_server_is_left_out(pair: tuple[FakeLlamaServer, ...]) -> None:
    from quanttui.core.models.ports import free_port

    a, _ = pair
    dead = ServerSpec("dead", f"http://127.0.0.1:{free_port()}")
    res = await Session([ServerSpec("A", a.url), dead], plan(warmup=0)).run()
    info = {s.name: s for s in res.servers}
    assert not info["dead"].reachable and "connect" in (info["dead"].error or "")
    assert len(res.measured("A")) == 3 and not res.measured("dead")
    assert any(n["code"] == "server-unreachable" for n in res.notices)
    assert info["A"].model_ftype == "Q4_K - Medium" and info["A"].total_slots == 1


async def test_stop_keeps_finished_requests(pair: tuple[FakeLlamaServer, ...]) -> None:
    a, b = pair
    a.token_delay = b.token_delay = 0.02
    done: list[RequestFinished] = []

    def emit(e: Event) -> None:
        if isinstance(e, RequestFinished):
            done.append(e)
            if len([d for d in done if not d.record.warmup]) == 2:
                session.stop()

    session = Session(specs(a, b), plan(repetitions=5, warmup=0,
                                        params=GenerationParams(n_predict=10)), emit=emit)
    res = await asyncio.wait_for(session.run(), 10)
    assert res.interrupted
    ok = [r for r in res.measured() if r.ok]
    assert len(ok) >= 2
    cancelled = [r for r in res.records if r.error_kind == "cancelled"]
    assert len(res.measured()) < 30 and all("cancelled" in (r.error or "") for r in cancelled)
    assert any(n["code"] == "interrupted" for n in res.notices)


def _when_both_stream() -> tuple[asyncio.Event, Callable[[Event], None]]:
    ready, seen = asyncio.Event(), set()

    def emit(e: Event) -> None:
        if isinstance(e, TokenBatch):
            seen.add(e.server)
            if len(seen) == 2:
                ready.set()

    return ready, emit


async def test_stop_records_every_request_in_flight(pair: tuple[FakeLlamaServer, ...]) -> None:
    """Stopping mid-stream records each server's cancelled request before run() returns, even
    when one stream thread takes longer to wind down than the other (a cancelled gather
    returns as soon as its first child ends)."""
    a, b = pair
    a.token_delay = b.token_delay = 0.02
    for _ in range(8):
        both_streaming, emit = _when_both_stream()
        session = Session(specs(a, b), plan(warmup=0, params=GenerationParams(n_predict=2000)),
                          emit=emit)
        task = asyncio.create_task(session.run())
        await asyncio.wait_for(both_streaming.wait(), 10)
        session.stop()
        res = await asyncio.wait_for(task, 10)
        assert sorted(r.server for r in res.records) == ["A", "B"], res.records
        assert all(r.error_kind == "cancelled" and r.result is not None
                   and r.result.n_events > 0 for r in res.records)


def test_plan_validation() -> None:
    with pytest.raises(ValueError, match="at least one prompt"):
        RunPlan(prompts=())
    with pytest.raises(ValueError, match="schedule"):
        RunPlan(prompts=PROMPTS, schedule="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="≥ 1"):
        RunPlan(prompts=PROMPTS, concurrency_levels=(0,))


def test_no_contention_warning_for_one_process_on_two_ports(pair: tuple[FakeLlamaServer, ...]
                                                            ) -> None:
    from quanttui.core.run.contention import assess
    from quanttui.core.run.records import ServerInfo

    a, b = pair  # both fakes live in this test process
    assert assess([ServerInfo("A", a.url), ServerInfo("B", b.url)]) == []


def test_unrepeatable_prompts_are_found() -> None:
    """Repetitions of a prompt that gave different tokens on one server are named, per prompt
    and concurrency level; failed requests and other servers don't count."""
    from quanttui.core.llama.result import CompletionResult
    from quanttui.core.run.metrics import request_metrics
    from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo

    res = RunResults([ServerInfo("A", "u"), ServerInfo("B", "v")], "simultaneous",
                     "completion", 2, 0, (1,))

    def add(server: str, prompt: str, rep: int, ids: list[int], ok: bool = True) -> None:
        r = CompletionResult(server, "completion", 0, t_first_event_ns=1, t_done_ns=3,
                             event_times_ns=[1, 2], event_ntokens=[1, 1],
                             event_texts=[str(i) for i in ids], token_ids=ids)
        rec = RequestRecord(len(res.records), server, prompt, "chat", rep, False, 1, rep, 0.0,
                            result=r)
        if ok:
            rec.metrics = request_metrics(r)
        else:
            rec.error = "boom"
        res.records.append(rec)

    add("A", "p1", 0, [1, 2])
    add("A", "p1", 1, [1, 2])
    add("A", "p2", 0, [1, 2])
    add("A", "p2", 1, [1, 3])
    add("A", "p3", 0, [1, 2])
    add("A", "p3", 1, [9, 9], ok=False)
    add("B", "p1", 0, [5, 5])
    add("B", "p1", 1, [5, 5])
    assert res.unrepeatable("A") == ["p2"]
    assert res.unrepeatable("B") == []


@pytest.mark.parametrize("schedule", ["simultaneous", "alternating", "sequential"])
async def test_until_decided_confirms_what_it_decided(pair: tuple[FakeLlamaServer, ...],
                                                     schedule: str) -> None:
    """A at twice B's pace: decided after a repetition or a few (timing noise on a loaded
    machine), then as many confirmation repetitions again, and the paired figures come from
    those alone."""
    events: list[Event] = []
    res = await Session(specs(*pair), plan(until_decided=0.03, schedule=schedule),
                        emit=events.append).run()
    k = res.confirm_from
    assert k is not None and res.repetitions == 2 * k
    assert len(res.measured()) == 2 * res.repetitions * len(PROMPTS)
    codes = [e.code for e in events if isinstance(e, Notice)]
    assert "decided" in codes and "undecided" not in codes
    (confirmed,) = [e for e in events if isinstance(e, Notice) and e.code == "confirmed"]
    assert (f"decided after {k} repetition(s); {k} confirmation repetition(s) measured the "
            "reported interval: B/A ×0.") in confirmed.message
    confirmation: dict[str, list[float]] = {}
    for r in res.measured("B"):
        if r.repetition >= k and r.metrics and r.metrics.decode_tps_client:
            confirmation.setdefault(r.prompt_id, []).append(r.metrics.decode_tps_client)
    means = {p: sum(v) / len(v) for p, v in confirmation.items()}
    assert res.per_prompt("B", "decode_tps_client") == pytest.approx(means)
    d = res.paired("decode_tps_client", "A", "B")
    assert d is not None and d.n == len(PROMPTS)
    assert d.mean_b == pytest.approx(sum(means.values()) / len(PROMPTS))
    # a stored run reads back with the same split, so reports show the same interval
    from quanttui.core.reports.run_file import results_from_doc, run_doc

    loaded = results_from_doc(run_doc(res))
    assert loaded.confirm_from == k and loaded.paired("decode_tps_client", "A", "B") == d


async def test_until_decided_adds_repetitions_within_its_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A ratio that never gets decided: deciding repetitions are added while the budget has
    room for them and for as many confirmation repetitions, progress says how far from a
    decision, and a warning names the undecided ratio before the confirmation is measured."""
    from quanttui.core.run import decide

    monkeypatch.setattr(decide, "decided", lambda d, half: False)
    with FakeLlamaServer(token_delay=0.002) as a, FakeLlamaServer(token_delay=0.002) as b:
        events: list[Event] = []
        res = await Session(specs(a, b), plan(until_decided=0.03, decide_budget_s=1.5,
                                              schedule="alternating"),
                            emit=events.append).run()
    notes = [e for e in events if isinstance(e, Notice)]
    assert res.confirm_from is not None and res.confirm_from > 1
    assert 1 <= res.repetitions - res.confirm_from <= res.confirm_from
    reps = {r.repetition for r in res.measured()}
    assert reps == set(range(res.repetitions))
    assert all(len(res.measured(s)) == res.repetitions * len(PROMPTS) for s in ("A", "B"))
    deciding = [n for n in notes if n.code == "deciding"]
    assert len(deciding) == res.confirm_from - 1
    assert "B/A ×" in deciding[-1].message and "±" in deciding[-1].message
    (undecided,) = [n for n in notes if n.code == "undecided"]
    assert undecided.level == "warning" and "not decided: B/A ×" in undecided.message
    assert notes[-1].code == "confirmed" and "not decided" in notes[-1].message
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == res.repetitions * len(PROMPTS) * 2


def test_until_decided_needs_two_prompts_and_one_level() -> None:
    with pytest.raises(ValueError, match="at least 2 prompts"):
        plan(prompts=PROMPTS[:1], until_decided=0.03)
    with pytest.raises(ValueError, match="one concurrency level"):
        plan(until_decided=0.03, concurrency_levels=(1, 2))


async def test_the_run_json_says_how_tokens_were_timed(pair: tuple[FakeLlamaServer, ...]
                                                       ) -> None:
    """Each record says whether its token times are the server's clock or arrivals (the
    figures built on them mean that), and a stored run reads back the same."""
    from quanttui.core.reports.run_file import results_from_doc, run_doc

    res = await Session(specs(*pair), plan()).run()
    doc = run_doc(res)
    measured = [r for r in doc.records if not r.warmup]
    assert measured and all(r.ok and r.token_times == "server" for r in measured)
    loaded = results_from_doc(doc)
    assert all(r.result is not None and r.result.server_dated for r in loaded.measured())
