"""Running a ladder: every quant measured on the same prompts, without contention.

Passes, one candidate at a time: when the reference and the largest candidate fit in memory
together, the reference stays up and each pass alternates it with one candidate (one request at a
time, so each runs solo, and both are measured in the same minutes: drift on a shared machine
hits both). When they don't fit, each quant runs alone in its own pass and is compared with the
reference across passes, where the interval carries the drift floor. Each pass is a block of
time: core.run.pairing pairs within a pass, or two candidates through the reference beside each.

Quality is collected per server and compared afterwards, so any two quants can be compared
(neighbours as well as against the reference) whichever passes they ran in: the reference's
greedy continuation of each prompt is teacher-forced on every quant (distributions), a fixed
text is scored on every quant (perplexity), and the task items are run on every quant.

A rung at a context or KV cache type of its own (core.ladder.lineup.expand) has its cache
filled first: one long prompt of a fixed text to `fill` × its context (exact, through the
server's /tokenize) with `fill_predict` tokens generated after it, before that rung's prompts
and while the memory poller runs; its TTFT and decode speed at that depth are kept (`Depth`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from quanttui.core.hardware import HardwarePoller, ProcessTarget
from quanttui.core.hardware.summary import hardware_json
from quanttui.core.ladder.lineup import Lineup
from quanttui.core.ladder.progress import LadderProgress, ProgressTracker, ladder_steps
from quanttui.core.llama.client import LlamaClient
from quanttui.core.llama.result import ServerError
from quanttui.core.models import fit as fitcheck
from quanttui.core.models.gguf_header import GGUFError
from quanttui.core.models.launcher import Launch, Launcher
from quanttui.core.models.servers import LaunchSpec, ServerStartError, quantized_cache
from quanttui.core.quality.accuracy import TaskOutcome, run_tasks
from quanttui.core.quality.step import QualityOptions, eos_ids, reference_sequences
from quanttui.core.quality.teacher_forcing import (
    ForcedRun,
    ForcedSequence,
    TeacherForcingError,
    force_sequences,
    plan_positions,
)
from quanttui.core.run.events import Event, Progress, RunStarted
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.outside_load import add_load_notices
from quanttui.core.run.plan import RunPlan, ServerSpec, server_logs
from quanttui.core.run.records import RunResults
from quanttui.core.run.session import Session
from quanttui.core.suites.tasks import TaskItem, builtin_tasks
from quanttui.core.suites.texts import prose

TEXT_ID = "text"
TEXT_POSITIONS = 128  # tokens of the perplexity text scored per quant
FILL = 0.75  # share of the context a rung's cache is filled to before its prompts
FILL_PREDICT = 32  # tokens generated after the filling prompt: decode speed at that depth
FILLER = ("The river rises in the hills, runs past the mill and the old stone bridge, and "
          "reaches the sea after three days of slow travel through farms and small towns. ")


@dataclass
class LadderOptions:
    plan: RunPlan  # prompts, generation, repetitions, warm-up, timeouts (schedule: set here)
    quality: QualityOptions = field(default_factory=QualityOptions)
    text: str | None = None  # perplexity text (default: core.suites.texts.prose)
    text_positions: int = TEXT_POSITIONS
    force: bool = False  # start servers the fit check refuses
    together: bool | None = None  # reference beside each candidate (None: when it fits)
    fill: float = FILL  # share of the context filled before a context / cache rung's prompts
    fill_predict: int = FILL_PREDICT


@dataclass
class Depth:
    """A rung's cache filled to `tokens` by one prompt, and what that took (module doc)."""

    ctx_size: int
    tokens: int  # prompt tokens evaluated (the depth)
    ttft_ms: float | None  # request sent -> first generated token (the whole prompt's eval)
    prompt_tps: float | None  # llama-server's prompt tok/s for it
    decode_tps: float | None  # client decode tok/s of the tokens generated after it
    generated: int = 0
    error: str | None = None  # the filling request failed: the rest of the rung goes on


@dataclass
class Pass:
    """One stretch of the ladder: the servers up together and what the run measured."""

    servers: list[str]
    results: RunResults
    hardware: dict[str, Any]


@dataclass
class LadderRun:
    lineup: Lineup
    options: LadderOptions
    together: bool
    passes: list[Pass] = field(default_factory=list)
    forced_plan: list[ForcedSequence] | None = None  # the reference's continuations, as forced
    text_plan: list[ForcedSequence] = field(default_factory=list)  # the perplexity text
    eos: frozenset[int] = frozenset()
    forced: dict[str, ForcedRun] = field(default_factory=dict)  # on forced_plan, per quant
    text_forced: dict[str, ForcedRun] = field(default_factory=dict)  # on text_plan, per quant
    outcomes: dict[str, list[TaskOutcome]] = field(default_factory=dict)
    task_items: list[TaskItem] = field(default_factory=list)
    launch_args: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    memory_available: int | None = None  # free RAM before any server started
    started_at: float = 0.0
    finished_at: float | None = None
    interrupted: bool = False
    not_started: dict[str, str] = field(default_factory=dict)  # quant -> why its server didn't
    depth: dict[str, Depth] = field(default_factory=dict)  # rungs filled before their prompts
    predicted: dict[str, int] = field(default_factory=dict)  # fit check's memory, per rung
    # where the time went, for benchmarks/ladder_cost.py: starts, requests, teacher forcing...
    timings: dict[str, float] = field(default_factory=dict)
    tracker: ProgressTracker = field(default_factory=ProgressTracker)  # progress, for the faces

    def clock(self, part: str, seconds: float) -> None:
        self.timings[part] = self.timings.get(part, 0.0) + seconds


Say = Callable[[str], object]
# Given each pass's session before it runs: a face that shows the pass live returns where its
# events should also go (None: not shown)
Watch = Callable[[Session], Callable[[Event], None] | None]


async def run_ladder(lineup: Lineup, options: LadderOptions, launcher: Launcher, *,
                     say: Say = lambda _: None, stop: asyncio.Event | None = None,
                     poll_interval: float = 1.0,
                     progress: Callable[[LadderProgress], object] | None = None,
                     watch: Watch | None = None) -> LadderRun:
    """Measure every quant of `lineup`; servers are started through `launcher` and stopped
    before this returns. `progress` gets the step under way and the whole ladder's estimate
    (core.ladder.progress) at every request, position and task item; `watch` each pass's
    session, to show it as it streams. A candidate whose server
    won't start is left out with a note (in `not_started`); raises ServerStartError when the
    reference's won't (after stopping the others)."""
    import psutil

    stop = stop or asyncio.Event()
    specs = {r.name: replace(s, ctx_size=r.ctx_size or s.ctx_size, cache_type=r.cache_type)
             for r in lineup.rungs if (s := launcher.defaults.spec(r.model.path))}
    # A quantized V cache needs flash attention, and it changes memory (a smaller compute
    # buffer) and log-probs: with one in the ladder, every rung runs with it on, so that cache
    # types are compared alone. Without one, quality steps run with it off: on the CPU it makes
    # log-probs depend on batch layout, off keeps the comparison's noise floor near zero.
    quantized = [n for n, s in specs.items() if quantized_cache(s.cache_type)]
    flash = "on" if quantized else "off" if options.quality.distribution else None
    if flash is not None:
        specs = {n: s if {"-fa", "--flash-attn"} & set(s.extra_args)
                 else replace(s, extra_args=(*s.extra_args, "-fa", flash))
                 for n, s in specs.items()}
    together = options.together
    if together is None:
        largest = max(lineup.others, key=lambda r: r.model.size_bytes)
        fit = launcher.check_fit([(lineup.reference, specs[lineup.reference]),
                                  (largest.name, specs[largest.name])])
        together = fit.refuse is None
    run = LadderRun(lineup, options, together,
                    memory_available=psutil.virtual_memory().available)
    for n, s in specs.items():  # the fit check's prediction, beside what is measured
        with contextlib.suppress(GGUFError, OSError):
            run.predicted[n] = fitcheck.estimate(s.model, s.ctx_size, s.n_gpu_layers,
                                                 s.cache_type).ram_bytes
    if quantized:
        run.notes.append(
            f"flash attention on (-fa on) for every rung: a quantized V cache "
            f"({', '.join(quantized)}) needs it, and the f16 rungs run with it too so that "
            "memory, speed and KLD compare the cache type alone (with it on, log-probs depend "
            "a little on batch layout: a small KLD floor)")
    fill_ctx = ({r.name: specs[r.name].ctx_size for r in lineup.rungs}
                if options.fill > 0 and any(r.ctx_size is not None or r.cache_type is not None
                                            for r in lineup.rungs) else {})
    run.started_at = time.time()
    run.task_items = (list(options.quality.task_items) if options.quality.task_items is not None
                      else builtin_tasks()) if options.quality.tasks else []
    plan = replace(options.plan, schedule="alternating")
    say(f"ladder: {', '.join(lineup.names)} (reference {lineup.reference}); "
        + ("the reference runs beside each candidate" if together else
           "one server at a time" + (" (they don't fit in memory together)"
                                     if options.together is None else "")))
    ref_launch: Launch | None = None
    if together:
        groups = [[lineup.reference, r.name] for r in lineup.others]
    else:
        groups = [[lineup.reference]] + [[r.name] for r in lineup.others]
    run.tracker = ProgressTracker(progress)
    run.tracker.plan(ladder_steps(groups, lineup.reference, ref_first=together,
                                  distribution=options.quality.distribution,
                                  task_items=len(run.task_items),
                                  fill={n: fill_depth(c, options) for n, c in fill_ctx.items()}),
                     len(groups))
    try:
        if together:
            run.tracker.begin("server start", 1, lineup.reference, 1)
            (ref_launch,) = await _start(
                launcher, [(lineup.reference, specs[lineup.reference])], options.force, say, run)
        for i, names in enumerate(groups, 1):
            if stop.is_set():
                run.interrupted = True
                break
            say(f"pass {i}/{len(groups)}: {' and '.join(names)}")
            new = [n for n in names if n not in launcher.launches
                   or launcher.launches[n].state != "ready"]
            if new:
                run.tracker.begin("server start", i, " and ".join(new), len(new))
            try:
                launches = await _start(launcher, [(n, specs[n]) for n in new], options.force,
                                        say, run) if new else []
            except ServerStartError as e:
                if lineup.reference in new:  # nothing to compare with
                    raise
                # A candidate that won't start (a damaged file, too little memory) is said
                # and the ladder goes on: what was measured, and what comes, is kept.
                run.not_started.update({n: str(e) for n in new})
                say(f"error: {e}")
                continue
            up = {la.name: la for la in launches}
            if ref_launch is not None:
                up[ref_launch.name] = ref_launch
            try:
                await _pass(run, i, names, up, plan, say, stop, poll_interval, fill_ctx,
                            watch)
            finally:
                for la in launches:
                    launcher.stop(la.name)
    finally:
        launcher.stop_all()
        run.finished_at = time.time()
        run.interrupted |= stop.is_set()  # a stop inside the last pass's quality step too
        measured = {n for p in run.passes for n in p.servers}
        if run.interrupted and (left := [n for n in lineup.names
                                         if n not in measured and n not in run.not_started]):
            run.notes.append(f"{', '.join(left)}: not measured (the ladder was stopped first)")
        for n, error in run.not_started.items():  # the first line: what, and where its log is
            why = error.splitlines()[0].removeprefix(f"{n}: ").rstrip(":")
            run.notes.append(f"{n}: not measured: {why}")
    return run


async def _start(launcher: Launcher, todo: Sequence[tuple[str, LaunchSpec]], force: bool,
                 say: Say, run: LadderRun) -> list[Launch]:
    t0 = time.monotonic()
    launches = await launcher.start_together(todo, force=force, say=say)
    run.clock("server starts", time.monotonic() - t0)
    run.tracker.advance(done=len(todo))
    for la in launches:
        run.launch_args[la.name] = list(la.server.spawned_args)
        run.notes += [f"{la.name}: {n}" for n in la.notes]
    return launches


def fill_depth(ctx: int, options: LadderOptions) -> int:
    """The tokens a rung's cache is filled with: `fill` × its context, leaving room for the
    tokens generated after them."""
    return max(1, min(int(ctx * options.fill), ctx - options.fill_predict - 1))


async def _fill(run: LadderRun, name: str, url: str, ctx: int, plan: RunPlan,
                say: Say) -> Depth:
    """One prompt of FILLER to `fill` × ctx tokens exactly (BOS included), cached, then
    `fill_predict` tokens generated after it."""
    import msgspec

    opts = run.options
    depth = fill_depth(ctx, opts)
    params = msgspec.structs.replace(plan.params, n_predict=opts.fill_predict,
                                     cache_prompt=True, ignore_eos=True, stop=(), n_probs=0)
    bos: list[int] = []
    body: list[int] = []
    async with LlamaClient(url, name=name, timeouts=plan.timeouts) as c:
        try:
            unit = await c.tokenize(FILLER, add_special=False)
            bos = await c.tokenize("", add_special=True)
            body = (unit * (depth // max(len(unit), 1) + 1))[:max(depth - len(bos), 0)]
            say(f"{name}: filling the KV cache to {len(bos) + len(body)} of {ctx} tokens")
            t0 = time.monotonic()
            result = await c.complete([*bos, *body], params)
            run.clock("cache fill", time.monotonic() - t0)
            run.tracker.advance(done=len(bos) + len(body))
        except ServerError as e:
            run.notes.append(f"{name}: filling the KV cache failed: {e}")
            return Depth(ctx, len(bos) + len(body), None, None, None, error=str(e))
    m = request_metrics(result)
    return Depth(ctx, m.n_prompt or len(bos) + len(body), m.ttft_ms, m.prompt_tps_server,
                 m.decode_tps_client, m.n_out)


async def _pass(run: LadderRun, pass_no: int, names: list[str], up: dict[str, Launch],
                plan: RunPlan, say: Say, stop: asyncio.Event, poll_interval: float,
                fill_ctx: dict[str, int] | None = None, watch: Watch | None = None) -> None:
    specs = [ServerSpec.launched(up[n].server) for n in names]
    poller = HardwarePoller([ProcessTarget(s.name, url=s.url, pid=s.pid) for s in specs],
                            interval_s=poll_interval)
    poller.start()
    tracker = run.tracker
    for n in names:  # before the prompts, with the poller on: memory with the cache filled
        if fill_ctx and n in fill_ctx and n not in run.depth and not stop.is_set():
            tracker.begin("cache fill", pass_no, n, fill_depth(fill_ctx[n], run.options))
            run.depth[n] = await _fill(run, n, up[n].url, fill_ctx[n], plan, say)

    shown: Callable[[Event], None] | None = None

    def on_event(ev: Event) -> None:
        if isinstance(ev, RunStarted):
            tracker.advance(done=0, total=ev.total_requests)
        elif isinstance(ev, Progress):
            tracker.advance(done=ev.done, total=ev.total)
        if shown is not None:
            with contextlib.suppress(Exception):  # a face's bug never breaks a measurement
                shown(ev)

    tracker.begin("requests", pass_no, " and ".join(names))
    session = Session(specs, plan, emit=on_event)
    if watch is not None:
        shown = watch(session)
    waiter = asyncio.ensure_future(stop.wait())
    task = asyncio.ensure_future(session.run())
    t0 = time.monotonic()
    results: RunResults | None = None
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            session.stop()
        results = await task
        for r in results.records:  # each pass is a block of time (core.run.pairing)
            r.block = len(run.passes) + 1
        run.clock("requests", time.monotonic() - t0)
        run.interrupted |= results.interrupted
        if not results.interrupted:
            await _quality(run, pass_no, names, up, results, say, stop)
    finally:
        waiter.cancel()
        poller.stop()
        if results is not None:
            hw = hardware_json(poller.history(), poller.host_info(),
                               [(s.name, s.model_path) for s in results.servers],
                               logs=server_logs(specs))
            results.hardware = hw
            add_load_notices(results, where=f"pass {len(run.passes) + 1}: ")
            run.passes.append(Pass(names, results, hw))
        poller.close()


async def _quality(run: LadderRun, pass_no: int, names: list[str], up: dict[str, Launch],
                   results: RunResults, say: Say, stop: asyncio.Event) -> None:
    """Distributions on the reference's continuations, the perplexity text, and the task
    items, for the servers of this pass that have none yet."""
    opts = replace(run.options.quality, run_params=run.options.plan.params,
                   timeouts=run.options.plan.timeouts)
    ref = run.lineup.reference
    tracker = run.tracker
    clients = {n: LlamaClient(up[n].url, name=n, timeouts=opts.timeouts) for n in names}
    try:
        if ref in names and run.forced_plan is None and opts.distribution:
            t0 = time.monotonic()
            tracker.begin("reference continuations", pass_no, ref)
            try:
                seqs, _ = await reference_sequences(
                    results, run.options.plan.prompts, ref, clients[ref], opts,
                    lambda _, done, total: tracker.advance(done=done, total=total))
                text_ids = await clients[ref].tokenize(run.options.text or prose(),
                                                       add_special=True)
                run.eos = await eos_ids(clients[ref])
            except ServerError as e:  # the reference failed: no distributions, the rest goes on
                run.notes.append(f"{ref}: the reference's continuations failed: {e}")
            else:
                run.forced_plan = plan_positions(seqs, opts.position_budget,
                                                 opts.positions_per_prompt)
                run.text_plan = ([ForcedSequence(
                    TEXT_ID, tuple(text_ids[:1]),
                    tuple(text_ids[1:1 + run.options.text_positions]))]
                    if len(text_ids) > 1 else [])
            run.clock("teacher forcing", time.monotonic() - t0)
        for n in names:
            if stop.is_set():
                run.interrupted = True
                return
            c = clients[n]
            if opts.distribution and n not in run.forced and run.forced_plan is not None:
                positions = sum(len(s.targets) for s in run.forced_plan)
                say(f"{n}: teacher forcing {positions} positions, and the perplexity text")
                tracker.begin("teacher forcing", pass_no, n,
                              positions + sum(len(s.targets) for s in run.text_plan))
                t0 = time.monotonic()
                try:
                    run.forced[n] = await force_sequences(
                        c, run.forced_plan, k=opts.k, method=opts.method, eos_ids=run.eos,
                        on_positions=lambda k: tracker.advance(by=k), stop=stop)
                    if run.text_plan:
                        # Per position: a grammar forcing text the model wouldn't write itself
                        # falls back at nearly every token (several times slower).
                        run.text_forced[n] = await force_sequences(
                            c, run.text_plan, k=1, method="per-position",
                            on_positions=lambda k: tracker.advance(by=k), stop=stop)
                except (ServerError, TeacherForcingError) as e:
                    run.notes.append(f"{n}: distribution comparison failed: {e}")
                run.clock("teacher forcing", time.monotonic() - t0)
            if run.task_items and n not in run.outcomes:
                say(f"{n}: {len(run.task_items)} task items")
                tracker.begin("task items", pass_no, n, len(run.task_items))
                t0 = time.monotonic()
                try:
                    run.outcomes[n] = await run_tasks(c, run.task_items, n, stop=stop,
                                                      on_item=lambda: tracker.advance(by=1))
                except ServerError as e:
                    run.notes.append(f"{n}: task accuracy failed: {e}")
                run.clock("tasks", time.monotonic() - t0)
    finally:
        for c in clients.values():
            with contextlib.suppress(Exception):
                await c.aclose()
