"""A comparison run: prompts × servers × repetitions, scheduled, emitting typed events.

Schedules:
- simultaneous: every server streams the same prompt(s) at the same time (the headline view;
  on one machine the servers then compete for cores and memory bandwidth);
- alternating: per round, the servers run one after another in an order shuffled per round
  (seeded), so neither competes with the other and order effects even out;
- sequential: all rounds on the first server, then all on the next.

A round is `concurrency` requests in flight on one server. One server failing never stops the
others; `stop()` ends the run cleanly and every finished request is kept. A server still loading
its model (503) is waited for, up to the connect timeout. A server is taken as down after
DOWN_AFTER server failures in a row (no connection, timeout, stream cut, loading again); its
remaining requests are recorded as skipped, with the reason. A request the server refuses (an
HTTP error such as 400 for a prompt longer than the context) fails alone: the server is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from quanttui.core.llama.client import LlamaClient
from quanttui.core.llama.params import GenerationParams
from quanttui.core.llama.result import CompletionResult, ServerError, ServerLoading
from quanttui.core.models.discovery import requantized_source
from quanttui.core.run.decide import next_step
from quanttui.core.run.events import (
    Event,
    Notice,
    Progress,
    RequestFinished,
    RequestStarted,
    RunFinished,
    RunStarted,
    TokenBatch,
)
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.records import RequestRecord, RoundRecord, RunResults, ServerInfo
from quanttui.core.run.stats import PairedDiff
from quanttui.core.suites.prompts import Prompt

Emit = Callable[[Event], None]
# Consecutive server failures after which a server is taken as down for the rest of the run.
DOWN_AFTER = 3
# Failures that say the server is not serving (ServerError kinds); any other failure is the
# request's own (an HTTP error or an error event: the server answered).
SERVER_FAILURES = frozenset({"unreachable", "timeout", "ended-early", "loading"})


class Session:
    def __init__(
        self,
        servers: Sequence[ServerSpec],
        plan: RunPlan,
        emit: Emit | None = None,
        contention: Callable[[list[ServerInfo]], list[str]] | None = None,
    ) -> None:
        if not servers:
            raise ValueError("a run needs at least one server")
        names = [s.name for s in servers]
        if len(set(names)) != len(names):
            raise ValueError(f"server names must be unique: {names}")
        self.servers = list(servers)
        self.plan = plan
        self._emit_cb = emit
        self._contention = contention
        self._clients: dict[str, LlamaClient] = {}
        self._fails: dict[str, int] = {}
        self._down: dict[str, str] = {}
        self._next_id = 0
        self._done = 0
        self._failed = 0
        self._total = 0
        self._t0 = 0.0
        self._t_measured = 0.0
        self._main: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[Any]] = set()
        self.results = RunResults(
            servers=[s.info() for s in servers],
            schedule=plan.schedule,
            endpoint=plan.endpoint,
            repetitions=plan.repetitions,
            warmup=plan.warmup,
            concurrency_levels=plan.concurrency_levels,
            drift_floor=plan.drift_floor,
        )
        self._block = 0  # the block of time requests are measured in (core.run.pairing)

    # ------------------------------------------------------------- public

    async def run(self) -> RunResults:
        self.results.started_at = time.time()
        self._t0 = time.monotonic()
        self._clients = {
            s.name: LlamaClient(s.url, name=s.name, api_key=s.api_key,
                                timeouts=self.plan.timeouts, paced=self.plan.server_times)
            for s in self.servers
        }
        self._main = asyncio.create_task(self._run_all())
        try:
            await self._main
        except asyncio.CancelledError:
            # A cancelled gather returns as soon as one child ends; the others' clean-up (their
            # stream threads stopping) may still run: wait so every request is recorded.
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=5.0)
            if not self._stopping:
                raise
            self.results.interrupted = True
            self._notice("warning", "interrupted",
                         f"run stopped by the user after {self._done} of {self._total} requests; "
                         "finished requests are kept")
        finally:
            for c in self._clients.values():
                with contextlib.suppress(Exception):
                    await c.aclose()
            self.results.finished_at = time.time()
        self._check_repeatable()
        self._check_ids()
        self._emit(RunFinished(self.results))
        return self.results

    def _check_repeatable(self) -> None:
        """Greedy repetitions of a prompt must give the same tokens on one server; say where
        they didn't, since the diff between servers then mixes that noise in."""
        if not self.plan.params.greedy or self.plan.repetitions < 2:
            return
        for s in self.servers:
            prompts = self.results.unrepeatable(s.name)
            if prompts:
                shown = ", ".join(prompts[:5]) + (" …" if len(prompts) > 5 else "")
                self._notice(
                    "warning", "nondeterministic",
                    f"{s.name}: repetitions of {len(prompts)} prompt(s) gave different tokens "
                    f"at temperature 0 ({shown}); several slots batching, flash attention or a "
                    "sampler setting can do this, and the output diff between servers then "
                    "mixes this noise into the quantization effect", s.name)

    def _check_ids(self) -> None:
        """Say where the stream sent fewer token ids than the server generated: counts and
        rates come from the server's own per-event counts, but the output diff compares text
        at those places."""
        for s in self.servers:
            recs = [r for r in self.results.measured(s.name)
                    if r.metrics is not None and r.metrics.ids_missing]
            if recs:
                n = sum(r.metrics.ids_missing for r in recs if r.metrics is not None)
                self._notice(
                    "warning", "ids-missing",
                    f"{s.name}: {n} generated token(s) in {len(recs)} request(s) came without "
                    "their ids (tokens ending inside a multi-byte character are streamed by the "
                    "last id only); token counts and rates use the server's counts, and the "
                    "output diff compares text there", s.name)

    def stop(self) -> None:
        """Stop the run; in-flight requests are cancelled and recorded as such."""
        self._stopping = True
        if self._main is not None and not self._main.done():
            self._main.cancel()

    # ------------------------------------------------------------- phases

    async def _run_all(self) -> None:
        await self._probe()
        live = [s for s in self.servers if s.name not in self._down]
        self._total = self.plan.total_requests(len(live))
        self._emit(RunStarted(tuple(self.results.servers), self._total))
        # Servers compete for cores only while they stream at the same time; alternating and
        # sequential are the remedy the warning points at.
        if self._contention is not None and self.plan.schedule == "simultaneous":
            for msg in self._contention(self.results.servers):
                self._notice("warning", "contention", msg)
        if self.plan.schedule == "simultaneous" and len(live) > 1:
            self._notice("info", "simultaneous",
                         "simultaneous: servers stream at the same time; on one machine they "
                         "share cores and memory bandwidth")
        if self.plan.schedule == "sequential" and len(live) > 1:
            self._notice("info", "sequential",
                         "sequential: each server is measured in a block of time of its own, "
                         "so nothing cancels the machine's drift between them; differences "
                         f"within ±{self.plan.drift_floor:.0%} (run.drift_floor) are not "
                         "called (alternating pairs them in the same minutes)")
        for level in self.plan.concurrency_levels:
            self._check_slots(level)
        await self._warmup(live)
        rng = random.Random(self.plan.order_seed)
        self._t_measured = time.monotonic()  # what a repetition takes, for --until-decided
        for level in self.plan.concurrency_levels:
            await self._pass(live, self.plan.units, level, 0, rng)
        if self.plan.until_decided is not None and len(live) > 1:
            await self._until_decided(live, rng)

    async def _pass(self, live: list[ServerSpec], units: list[tuple[Prompt, int]], level: int,
                    first_round: int, rng: random.Random) -> None:
        """These (prompt, repetition) units on every live server, in rounds of `level`, as the
        schedule orders them."""
        rounds = [units[i:i + level] for i in range(0, len(units), level)]
        if self.plan.schedule == "sequential":
            for s in live:
                # each server's stretch is a block of its own: nothing measured beside it
                self._block += 1
                for i, rnd in enumerate(rounds, first_round):
                    await self._round(s, rnd, level, i)
        elif self.plan.schedule == "alternating":
            for i, rnd in enumerate(rounds, first_round):
                order = list(live)
                rng.shuffle(order)
                for s in order:
                    await self._round(s, rnd, level, i)
        else:
            for i, rnd in enumerate(rounds, first_round):
                await asyncio.gather(*(self._round(s, rnd, level, i) for s in live))

    async def _until_decided(self, live: list[ServerSpec], rng: random.Random) -> None:
        """More repetitions of every prompt while `core.run.decide.next_step` says so, then
        the confirmation repetitions the reported intervals come from; notices say how far
        from a decision the run is, and what the confirmation measured."""
        assert self.plan.until_decided is not None
        half = self.plan.until_decided
        level = self.plan.concurrency_levels[0]
        ref = live[0].name
        rep = self.plan.repetitions
        while True:
            ds = [self.results.paired("decode_tps_client", ref, s.name, level) for s in live[1:]]
            now = time.monotonic()
            step = next_step(ds, half, repetitions=rep, elapsed_s=now - self._t0,
                             repetition_s=(now - self._t_measured) / rep,
                             budget_s=self.plan.decide_budget_s)
            where = "; ".join(f"{live[i + 1].name}/{ref} {_ratio_words(ds[i])}"
                              for i in step.open)
            if all(s.name in self._down for s in live[1:]):
                # nothing left to confirm with: say that the figures are the deciding ones
                self._notice("warning", "undecided",
                             f"until-decided: every compared server is down after {rep} "
                             "repetition(s); no confirmation was measured, so the paired "
                             "intervals include the repetitions that decided when to stop "
                             "and may be too narrow")
                return
            if not step.more:
                break
            self._notice("info", "deciding",
                         f"until-decided: {where} (decided when a 95% interval is within "
                         f"±{half:.1%}, or a 99% one excludes 1); repetition {rep + 1}, "
                         f"{now - self._t0:.0f} of {self.plan.decide_budget_s:g} s")
            await self._repetitions(live, rep, 1, rng)
            rep += 1
        k = step.confirm
        if step.open:
            self._notice("warning", "undecided",
                         f"until-decided: the budget of {self.plan.decide_budget_s:g} s leaves "
                         f"no room to decide after {rep} repetition(s), not decided: {where}; "
                         f"measuring {k} confirmation repetition(s) for the reported interval")
        else:
            self._notice("info", "decided",
                         f"until-decided: decided after {rep} repetition(s) "
                         f"({time.monotonic() - self._t0:.0f} s); measuring {k} confirmation "
                         "repetition(s) for the reported interval")
        self.results.confirm_from = rep
        await self._repetitions(live, rep, k, rng)
        where = "; ".join(
            f"{s.name}/{ref} "
            f"{_ratio_words(self.results.paired('decode_tps_client', ref, s.name, level))}"
            for s in live[1:])
        self._notice("info", "confirmed",
                     f"until-decided: {'decided' if not step.open else 'not decided'} after "
                     f"{rep} repetition(s); {k} confirmation repetition(s) measured the "
                     f"reported interval: {where}")

    async def _repetitions(self, live: list[ServerSpec], first: int, count: int,
                           rng: random.Random) -> None:
        """`count` more repetitions of every prompt, numbered from `first`."""
        level = self.plan.concurrency_levels[0]
        per_rep = len(self.plan.prompts)
        n_rounds = -(-per_rep // level)
        self._total += count * per_rep * len(live)
        for rep in range(first, first + count):
            self.results.repetitions = rep + 1
            await self._pass(live, [(p, rep) for p in self.plan.prompts], level,
                             rep * n_rounds, rng)

    async def _probe(self) -> None:
        """Read what each server serves; an unreachable one is reported and left out."""

        async def one(info: ServerInfo) -> None:
            client = self._clients[info.name]
            try:
                try:
                    await client.health()
                except ServerLoading:
                    await self._wait_loading(info.name, client)
                props = await client.props()
                models = await client.models()
            except ServerError as e:
                info.reachable = False
                info.error = e.detail
                self._down[info.name] = e.detail
                self._notice("error", "server-unreachable", str(e), info.name)
                return
            info.update_from(props, models)
            if info.model_path:  # a file on this machine says what it was made from
                info.requantized_from = await asyncio.to_thread(requantized_source,
                                                                info.model_path)

        await asyncio.gather(*(one(i) for i in self.results.servers))

    async def _wait_loading(self, name: str, client: LlamaClient) -> None:
        """Until a server that answers 503 (loading its model) is ready, within the connect
        timeout; raises ServerTimeout when it isn't."""
        budget = self.plan.timeouts.connect
        self._notice("info", "server-loading",
                     f"{client.label}: still loading its model; waiting up to {budget:g} s "
                     "(timeouts.connect)", name)
        t0 = time.monotonic()
        await client.wait_ready(timeout=budget)
        self._notice("info", "server-loading",
                     f"{client.label}: ready after {time.monotonic() - t0:.1f} s", name)

    def _check_slots(self, level: int) -> None:
        for info in self.results.servers:
            if info.total_slots is not None and level > info.total_slots:
                self._notice(
                    "warning", "slots",
                    f"{info.name} has {info.total_slots} slot(s) but {level} requests are sent "
                    f"at once: the rest wait in its queue, so TTFT includes queueing (start it "
                    f"with -np {level} to serve them in parallel)", info.name)

    async def _warmup(self, live: list[ServerSpec]) -> None:
        if not self.plan.warmup:
            return
        prompt = self.plan.prompts[0]
        for s in live:  # one at a time: warm-up also pages the weights in
            for i in range(self.plan.warmup):
                if s.name in self._down:
                    break
                await self._request(s, prompt, i, warmup=True, concurrency=1, rnd=-1)

    async def _round(self, s: ServerSpec, units: list[tuple[Prompt, int]], level: int,
                     index: int) -> None:
        if s.name in self._down:
            self._skip(s, units, level, index)
            return
        t0 = time.perf_counter_ns()
        recs = await asyncio.gather(*(
            self._request(s, p, rep, warmup=False, concurrency=level, rnd=index)
            for p, rep in units))
        wall = (time.perf_counter_ns() - t0) / 1e9
        ok = [r for r in recs if r.ok]
        tokens = sum(r.metrics.n_out for r in ok if r.metrics is not None)
        self.results.rounds.append(RoundRecord(s.name, level, index, len(recs), len(ok), wall,
                                               tokens))

    def _skip(self, s: ServerSpec, units: list[tuple[Prompt, int]], level: int, index: int
              ) -> None:
        """A down server's requests: recorded as skipped, with the reason, and counted."""
        for prompt, rep in units:
            rec = RequestRecord(
                request_id=self._next_id, server=s.name, prompt_id=prompt.id,
                category=prompt.category, repetition=rep, warmup=False, concurrency=level,
                round=index, started_at=time.time(), block=self._block, error_kind="skipped",
                error=f"{s.name}: not sent: the server was taken as down "
                      f"({self._down[s.name]})")
            self._next_id += 1
            self._finish(s, rec, warmup=False)

    async def _request(self, s: ServerSpec, prompt: Prompt, rep: int, *, warmup: bool,
                       concurrency: int, rnd: int) -> RequestRecord:
        client = self._clients[s.name]
        rid = self._next_id
        self._next_id += 1
        rec = RequestRecord(request_id=rid, server=s.name, prompt_id=prompt.id,
                            category=prompt.category, repetition=rep, warmup=warmup,
                            concurrency=concurrency, round=rnd, started_at=time.time(),
                            block=self._block)
        result = client.new_result(self.plan.endpoint)
        rec.result = result
        params = self.plan.params
        if warmup:
            params = _replace_n_predict(params, self.plan.warmup_n_predict)
        self._emit(RequestStarted(rid, s.name, prompt.id, rep, warmup))
        emit = self._emit_cb
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)

        n_ids = 0  # token ids passed on so far (as many as events on /completion, none on chat)

        def progress(res: CompletionResult, first: int, end: int) -> None:
            nonlocal n_ids
            if emit is None:
                return
            k = sum(res.event_nids[first:end]) if len(res.event_nids) >= end else 0
            ids = tuple(res.token_ids[n_ids:n_ids + k])
            n_ids += len(ids)
            emit(TokenBatch(rid, s.name, res.t_sent_ns, res.event_times_ns[first],
                            res.event_times_ns[end - 1],
                            "".join(res.event_texts[first:end]), ids, end - first,
                            sum(k if k > 0 else 1 for k in res.event_ntokens[first:end]), warmup))

        try:
            await client.complete(prompt.text, params, endpoint=self.plan.endpoint,
                                  on_progress=progress, result=result)
        except ServerError as e:
            rec.error_kind = e.kind
            rec.error = str(e)
        except asyncio.CancelledError:
            rec.error_kind = "cancelled"
            rec.error = f"{client.label}: cancelled by the user after {result.n_events} events"
            self._finish(s, rec, warmup)
            raise
        else:
            rec.metrics = request_metrics(result)
        finally:
            self._inflight.discard(task)
        self._finish(s, rec, warmup)
        return rec

    def _finish(self, s: ServerSpec, rec: RequestRecord, warmup: bool) -> None:
        self.results.records.append(rec)
        self._emit(RequestFinished(rec))
        if rec.error_kind in SERVER_FAILURES:
            self._fails[s.name] = self._fails.get(s.name, 0) + 1
            self._notice("error", "request-failed", rec.error or "", s.name)
            if self._fails[s.name] >= DOWN_AFTER and s.name not in self._down:
                self._down[s.name] = rec.error or ""
                self._notice("error", "server-down",
                             f"{s.name}: {DOWN_AFTER} requests in a row got no answer; its "
                             f"remaining requests are skipped (last: {rec.error})", s.name)
        elif rec.error is not None and rec.error_kind not in ("cancelled", "skipped"):
            self._fails[s.name] = 0  # it answered: up, but refused this request
            self._notice("error", "request-failed", rec.error, s.name)
        elif rec.error is None:
            self._fails[s.name] = 0
        if not warmup:
            self._done += 1
            self._failed += rec.error is not None
            self._progress()

    # ------------------------------------------------------------- emitting

    def _progress(self) -> None:
        elapsed = time.monotonic() - self._t0
        eta = None
        if self._done:
            eta = elapsed / self._done * max(self._total - self._done, 0)
        self._emit(Progress(self._done, self._total, self._failed, elapsed, eta))

    def _notice(self, level: Literal["info", "warning", "error"], code: str, message: str,
                server: str | None = None) -> None:
        self.results.notices.append(
            {"level": level, "code": code, "message": message, "server": server})
        self._emit(Notice(level, code, message, server))

    def _emit(self, ev: Event) -> None:
        if self._emit_cb is not None:
            self._emit_cb(ev)


def _ratio_words(d: PairedDiff | None) -> str:
    """"×1.04 [0.99, 1.09] (±4.6%)", or why there is no interval yet."""
    ci = d.ratio_ci if d is not None else None
    if d is None or d.ratio is None or ci is None:
        return "needs 2 prompts finished on both"
    return f"×{d.ratio:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] (±{(ci[1] - ci[0]) / 2:.1%})"


def _replace_n_predict(p: GenerationParams, n: int) -> GenerationParams:

    return msgspec.structs.replace(p, n_predict=min(n, p.n_predict))
