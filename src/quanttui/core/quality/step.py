"""The quality step after a comparison run: every other server against a reference server.

    report = await compare_quality(results, specs, prompts, reference="Q8_0", options=opts)

Three parts, each optional:
- output comparison of the run's own outputs (free: no requests);
- distribution comparison: teacher-forced on the reference's greedy continuation of each prompt
  (the run's output when the run was greedy, else generated here), same-top-1, Δp, KLD@K;
- task accuracy on the built-in suite, MMLU-format items, HumanEval or math files, per category
  and server (HumanEval runs model-written code: only with `code_execution` set).

The servers must still be up. Progress goes to `on_progress`; setting `stop` ends the step after
the current request with what it has (marked interrupted).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, TypeVar, cast

import msgspec

from quanttui.core.llama.client import LlamaClient, Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.llama.result import ServerError
from quanttui.core.quality.accuracy import (
    Accuracy,
    AccuracyDiff,
    TaskOutcome,
    accuracy_by,
    accuracy_diff,
    run_tasks,
    share_text,
)
from quanttui.core.quality.code_exec import Limits, runner
from quanttui.core.quality.divergence import (
    DistributionStats,
    MeanCI,
    MeanUnc,
    PositionCompare,
    ci_text,
    distribution_stats,
)
from quanttui.core.quality.outputs import (
    OutputComparison,
    OutputSummary,
    compare_outputs,
    compare_run_outputs,
    off_loop,
    representative_records,
    summarize_outputs,
)
from quanttui.core.quality.progress_words import progress_words
from quanttui.core.quality.section import (
    AccuracyDiffDoc,
    DistributionDoc,
    OutputComparisonDoc,
    OutputsDoc,
    PromptDivergenceDoc,
    QualityOptionsDoc,
    QualityPairDoc,
    QualitySection,
    TaskOutcomeDoc,
    TaskOutputsDoc,
    TasksDoc,
)
from quanttui.core.quality.teacher_forcing import (
    ForcedRun,
    ForcedSequence,
    Method,
    TeacherForcingError,
    force_sequences,
    pair_runs,
    plan_positions,
)
from quanttui.core.suites.tasks import TaskItem, builtin_tasks

if TYPE_CHECKING:
    from quanttui.core.run.plan import ServerSpec
    from quanttui.core.run.records import RunResults
    from quanttui.core.suites.prompts import Prompt

Stage = Literal["outputs", "reference", "distribution", "tasks"]
T = TypeVar("T")


@dataclass(frozen=True)
class QualityOptions:
    distribution: bool = True
    tasks: bool = True
    # n_probs. KLD@K under-reads the full KLD: on the demo pair (Q8_0 vs Q2_K, Gemma 3 270M)
    # by 40% at K=10, 16% at K=100, 7% at K=1000 (benchmarks/quality_vs_perplexity.py).
    k: int = 1000
    method: Method = "grammar"
    # Positions per server over all prompts, and the first N of each prompt's continuation.
    # Positions of one prompt move together, so the intervals (over prompts) narrow with more
    # prompts, not more positions: 16 × 16 halves the spread of Q2_K's mean KLD against 4 × 64
    # (issue 19). With fewer prompts (the quick suite has 6) the budget is not reached: N stays
    # 16, since same-top-1 depends on it (0.75 over the first 16 positions, 0.86 over 64).
    position_budget: int = 256
    positions_per_prompt: int = 16
    task_items: tuple[TaskItem, ...] | None = None  # None: the built-in suite
    run_params: GenerationParams | None = None  # the run's; greedy outputs are reused
    timeouts: Timeouts = field(default_factory=Timeouts)
    # Limits for running model-written programs (task items of kind "program"); None: refused.
    code_execution: Limits | None = None

    def __post_init__(self) -> None:
        if self.k < 1 or self.position_budget < 0 or self.positions_per_prompt < 1:
            raise ValueError("quality: K and positions per prompt must be ≥ 1, budget ≥ 0")
        if self.code_execution is None and any(i.kind == "program"
                                               for i in self.task_items or ()):
            raise ValueError("quality: these task items run model-written code; allow it "
                             "with code_execution (--allow-code-execution)")


@dataclass(frozen=True, slots=True)
class QualityProgress:
    stage: Stage
    done: int
    total: int  # over every server of the stage: per server × `servers`
    servers: int = 1


class _Emit(Protocol):
    """Progress of a stage: `total` over `servers` servers' work."""

    def __call__(self, stage: Stage, done: int, total: int, servers: int = 1) -> None: ...


@dataclass
class DistributionResult:
    method: Method
    k: int
    stats: DistributionStats | None
    sequences: list[tuple[str, list[PositionCompare]]]
    requests_ref: int = 0
    requests_other: int = 0
    grammar_fallbacks: int = 0  # sequences where the grammar did not force every token
    elapsed_s: float = 0.0
    interrupted: bool = False

    @property
    def n_positions(self) -> int:
        return sum(len(p) for _, p in self.sequences)


@dataclass
class PairQuality:
    reference: str
    other: str
    outputs: list[OutputComparison] = field(default_factory=list)
    output_summary: OutputSummary | None = None
    distribution: DistributionResult | None = None
    task_outputs: list[OutputComparison] = field(default_factory=list)
    task_output_summary: OutputSummary | None = None
    accuracy_diff: list[AccuracyDiff] = field(default_factory=list)
    accuracy_diff_by_length: list[AccuracyDiff] = field(default_factory=list)


@dataclass
class QualityReport:
    reference: str
    options: QualityOptions
    pairs: list[PairQuality] = field(default_factory=list)
    task_outcomes: list[TaskOutcome] = field(default_factory=list)
    accuracy: list[Accuracy] = field(default_factory=list)
    accuracy_by_length: list[Accuracy] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    interrupted: bool = False
    elapsed_s: float = 0.0

    def pair(self, other: str) -> PairQuality | None:
        return next((p for p in self.pairs if p.other == other), None)


def pick_reference(results: RunResults) -> str:
    """The first reachable server: the same A as the run's paired figures and the CI gates
    (order the servers so that the higher-bit quant comes first)."""
    live = [s for s in results.servers if s.reachable]
    if not live:
        raise ValueError("no reachable server to compare")
    return live[0].name


async def eos_ids(client: LlamaClient) -> frozenset[int]:
    with contextlib.suppress(ServerError, KeyError, TypeError):
        eos = (await client.props()).get("eos_token")
        if isinstance(eos, str) and eos:
            ids = await client.tokenize(eos, add_special=False)
            if len(ids) == 1:
                return frozenset(ids)
    return frozenset()


async def _greedy(client: LlamaClient, prefix: Sequence[int], n: int) -> tuple[int, ...]:
    body = GenerationParams(n_predict=n).body()
    body.update(prompt=list(prefix), stream=False, return_tokens=True)
    data = await client.post_json("/completion", body)
    return tuple(int(t) for t in data.get("tokens") or ())


async def _all(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently, one per server; on a failure let the others finish before raising, so
    nothing keeps running on clients that are about to close."""
    done = await asyncio.gather(*coros, return_exceptions=True)
    for r in done:
        if isinstance(r, BaseException):
            raise r
    return cast("list[T]", done)


def _reusable(results: RunResults, options: QualityOptions) -> bool:
    p = options.run_params
    return p is not None and p.greedy and not p.stop and results.endpoint == "completion"


async def reference_sequences(
    results: RunResults, prompts: Sequence[Prompt], ref: str, client: LlamaClient,
    options: QualityOptions, emit: Callable[[Stage, int, int], None],
) -> tuple[list[ForcedSequence], dict[str, str]]:
    """Prompt tokens (BOS included, as /completion adds it to a text prompt) and the
    reference's greedy continuation of each prompt the run used; and the prompt texts as the
    model saw them (chat runs: through the server's chat template)."""
    records = representative_records(results, ref)
    reuse = _reusable(results, options)
    todo = [p for p in prompts if p.id in records] or list(prompts)
    out: list[ForcedSequence] = []
    texts: dict[str, str] = {}
    have = 0  # positions planned so far: stop once the budget is covered
    for i, p in enumerate(todo):
        if have >= options.position_budget:
            break
        text = p.text
        if results.endpoint == "chat":
            text = await client.apply_template([{"role": "user", "content": p.text}])
        texts[p.id] = text
        prefix = tuple(await client.tokenize(text, add_special=True))
        targets: tuple[int, ...] = ()
        rec = records.get(p.id)
        res = rec.result if rec is not None else None
        if reuse and res is not None and res.token_ids:
            # Streamed ids are complete when they add up to the server's count (a token ending
            # inside a UTF-8 character streams no event; an EOS may or may not be streamed).
            n = res.n_tokens
            if len(res.token_ids) == n or (res.stop_type == "eos" and len(res.token_ids) == n - 1):
                targets = tuple(res.token_ids)
        if not targets:
            targets = await _greedy(client, prefix, min(options.positions_per_prompt,
                                                        options.position_budget - have))
        if targets:
            out.append(ForcedSequence(p.id, prefix, targets))
            have += min(len(targets), options.positions_per_prompt)
        emit("reference", i + 1, len(todo))
    return out, texts


async def _distribution(
    clients: dict[str, LlamaClient], ref: str, others: list[str], results: RunResults,
    prompts: Sequence[Prompt], options: QualityOptions, report: QualityReport,
    emit: _Emit, stop: asyncio.Event | None,
) -> None:
    seqs, texts = await reference_sequences(results, prompts, ref, clients[ref], options, emit)
    seqs = plan_positions(seqs, options.position_budget, options.positions_per_prompt)
    # Teacher forcing needs one vocabulary: the prompt must tokenize alike on every server.
    comparable = []
    for o in others:
        if seqs and tuple(await clients[o].tokenize(texts[seqs[0].id], add_special=True)
                          ) != seqs[0].prefix:
            report.notices.append(f"{o}: tokenizes the prompts differently from {ref}; "
                                  "distributions cannot be compared position by position")
            continue
        comparable.append(o)
    if not seqs or not comparable:
        return
    eos = await eos_ids(clients[ref])
    total = sum(len(s.targets) for s in seqs) * (1 + len(comparable))
    done = 0

    def on_positions(n: int) -> None:
        nonlocal done
        done += n
        emit("distribution", done, total, 1 + len(comparable))

    emit("distribution", 0, total, 1 + len(comparable))
    runs: list[ForcedRun] = await _all(
        force_sequences(clients[name], seqs, k=options.k, method=options.method, eos_ids=eos,
                        on_positions=on_positions, stop=stop)
        for name in [ref, *comparable])
    ref_run = runs[0]
    for name, run in zip(comparable, runs[1:], strict=True):
        paired = pair_runs(ref_run, run, options.k)
        pq = report.pair(name)
        assert pq is not None
        pq.distribution = DistributionResult(
            method=options.method, k=options.k, stats=distribution_stats(paired, options.k),
            sequences=paired, requests_ref=ref_run.requests, requests_other=run.requests,
            grammar_fallbacks=sum(s.grammar_mismatch_at is not None for s in run.sequences),
            elapsed_s=max(ref_run.elapsed_s, run.elapsed_s),
            interrupted=ref_run.interrupted or run.interrupted)
        report.interrupted |= pq.distribution.interrupted
    if len(seqs) * options.positions_per_prompt < options.position_budget:
        report.notices.append(
            f"distributions: {len(seqs)} prompts gave {sum(len(x.targets) for x in seqs)} of "
            f"the {options.position_budget} positions (at most {options.positions_per_prompt} "
            "each); the intervals narrow with more prompts")


async def _tasks(
    clients: dict[str, LlamaClient], ref: str, others: list[str], options: QualityOptions,
    report: QualityReport, emit: _Emit, stop: asyncio.Event | None,
) -> None:
    items = list(options.task_items) if options.task_items is not None else builtin_tasks()
    if not items:
        return
    names = [ref, *others]
    total = len(items) * len(names)
    done = 0

    def on_item() -> None:
        nonlocal done
        done += 1
        emit("tasks", done, total, len(names))

    emit("tasks", 0, total, len(names))
    run_program = None if options.code_execution is None else runner(options.code_execution)
    per_server = await _all(run_tasks(clients[n], items, n, on_item=on_item, stop=stop,
                                      run_program=run_program) for n in names)
    outcomes = [o for group in per_server for o in group]
    report.task_outcomes = outcomes
    report.notices += sorted({n for o in outcomes for n in o.notes})
    report.accuracy = accuracy_by(outcomes)
    report.accuracy_by_length = accuracy_by(outcomes, lambda o: o.length)
    report.interrupted |= any(len(g) < len(items) for g in per_server)
    by_server = {n: {o.item_id: o for o in g} for n, g in zip(names, per_server, strict=True)}
    for o in others:
        pq = report.pair(o)
        assert pq is not None
        a, b = by_server[ref], by_server[o]

        def compare(cancelled: Callable[[], bool], a: dict[str, TaskOutcome] = a,
                    b: dict[str, TaskOutcome] = b) -> list[OutputComparison]:
            return [compare_outputs(a[i].token_ids, b[i].token_ids, a[i].output, b[i].output, i,
                                    cancelled)
                    for i in a if i in b and a[i].error is None and b[i].error is None]

        compared = await off_loop(compare, stop)
        if compared is None:  # stopped
            report.interrupted = True
            return
        pq.task_outputs = compared
        pq.task_output_summary = summarize_outputs(pq.task_outputs)
        pq.accuracy_diff = accuracy_diff(outcomes, ref, o)
        pq.accuracy_diff_by_length = accuracy_diff(outcomes, ref, o, lambda x: x.length)


async def compare_quality(
    results: RunResults,
    servers: Sequence[ServerSpec],
    prompts: Sequence[Prompt] = (),
    *,
    reference: str | None = None,
    options: QualityOptions | None = None,
    on_progress: Callable[[QualityProgress], None] | None = None,
    stop: asyncio.Event | None = None,
    clients: Mapping[str, LlamaClient] | None = None,
) -> QualityReport:
    """Compare every reachable server with `reference` (default: `pick_reference`).

    Servers are reached through `servers` (their URLs and keys), or through `clients` by name,
    which the caller opened and closes. Server failures during the distribution or task parts
    become notices in the report; the output comparison of the run is always there.
    """
    options = options or QualityOptions()
    t0 = time.monotonic()
    ref = reference or pick_reference(results)
    live = [s.name for s in results.servers if s.reachable]
    if ref not in live:
        raise ValueError(f"reference server {ref!r} is not among the reachable servers {live}")
    others = [n for n in live if n != ref]
    report = QualityReport(reference=ref, options=options)

    def emit(stage: Stage, done: int, total: int, servers: int = 1) -> None:
        if on_progress is not None:
            on_progress(QualityProgress(stage, done, total, servers))

    for i, o in enumerate(others):
        emit("outputs", i, len(others))
        # Off the loop: long outputs take a while to compare, and a signal must still be heard.
        def compare(cancelled: Callable[[], bool], o: str = o) -> list[OutputComparison]:
            return compare_run_outputs(results, ref, o, cancelled)

        comps = await off_loop(compare, stop)
        if comps is None:  # stopped: the pairs compared so far are the report
            report.interrupted = True
            report.elapsed_s = time.monotonic() - t0
            return report
        report.pairs.append(PairQuality(ref, o, comps, summarize_outputs(comps)))
    if others:
        emit("outputs", len(others), len(others))

    needed = options.distribution or options.tasks
    specs = {s.name: s for s in servers}
    given = dict(clients or {})
    missing = [n for n in live if n not in specs and n not in given]
    if missing and needed:
        raise ValueError(f"no address for server(s) {', '.join(missing)}")
    opened = {n: LlamaClient(specs[n].url, name=n, api_key=specs[n].api_key,
                             timeouts=options.timeouts)
              for n in live if n not in given} if needed else {}
    clients = {**given, **opened}
    try:
        if options.distribution and others and prompts:
            try:
                await _distribution(clients, ref, others, results, prompts, options, report,
                                    emit, stop)
            except (ServerError, TeacherForcingError) as e:
                report.notices.append(f"distribution comparison failed: {e}")
        if options.tasks and not (stop is not None and stop.is_set()):
            try:
                await _tasks(clients, ref, others, options, report, emit, stop)
            except ServerError as e:
                report.notices.append(f"task accuracy failed: {e}")
    finally:
        for c in opened.values():
            with contextlib.suppress(Exception):
                await c.aclose()
        report.elapsed_s = time.monotonic() - t0
    if stop is not None and stop.is_set():
        report.interrupted = True
    return report


# ------------------------------------------------------------------ export


def _r(x: float, nd: int = 6) -> float:
    return round(x, nd)


def _mu(m: MeanUnc) -> MeanUnc:
    return MeanUnc(_r(m.value), _r(m.unc))


def _ci(m: MeanCI) -> MeanCI:
    return MeanCI(_r(m.value), _r(m.unc), None if m.low is None else _r(m.low),
                  None if m.high is None else _r(m.high))


def _stats_fields(s: DistributionStats) -> dict[str, Any]:
    """DistributionDoc's figures, present when positions were compared."""
    return {
        "kld_label": s.kld_label,
        "same_top1": _ci(s.same_top1),
        "kld": _ci(s.kld),
        "kld_percentiles": {k: _r(v) for k, v in s.kld_percentiles.items()},
        "delta_p": _ci(s.delta_p),
        "delta_p_percentiles": {k: _r(v) for k, v in s.delta_p_percentiles.items()},
        "rms_delta_p": _ci(s.rms_delta_p),
        "ln_ppl_ratio": _ci(s.ln_ppl_ratio),
        "ppl_ref": _r(s.ppl_ref, 4),
        "ppl_other": _r(s.ppl_other, 4),
        "tail_ref_mean": _r(s.tail_ref_mean),
        "tail_ref_max": _r(s.tail_ref_max),
    }


def _distribution_doc(d: DistributionResult) -> DistributionDoc:
    return DistributionDoc(
        method=d.method, k=d.k, n_positions=d.n_positions, requests_ref=d.requests_ref,
        requests_other=d.requests_other, grammar_fallbacks=d.grammar_fallbacks,
        elapsed_s=_r(d.elapsed_s, 3), interrupted=d.interrupted,
        **(_stats_fields(d.stats) if d.stats is not None else {}),
        per_prompt=[
            PromptDivergenceDoc(
                prompt_id=sid, n=len(ps),
                same_top1=_r(sum(x.same_top1 for x in ps) / len(ps), 4) if ps else None,
                kld_mean=_r(sum(x.kld for x in ps) / len(ps)) if ps else None)
            for sid, ps in d.sequences])


def _output_doc(c: OutputComparison) -> OutputComparisonDoc:
    return OutputComparisonDoc(
        prompt_id=c.prompt_id,
        exact_match=c.exact_match,
        first_divergence=c.first_divergence,
        token_agreement=None if c.token_agreement is None else _r(c.token_agreement, 4),
        text_similarity=_r(c.text_similarity, 4),
        n_ref=c.diff.n_a,
        n_other=c.diff.n_b,
        segments=[(sg.kind, sg.a_start, sg.a_end, sg.b_start, sg.b_end)
                  for sg in c.diff.segments],
    )


def _summary(s: OutputSummary | None) -> OutputSummary | None:
    if s is None:
        return None
    return dataclasses.replace(
        s, exact_match=_mu(s.exact_match),
        token_agreement_mean=(None if s.token_agreement_mean is None
                              else _r(s.token_agreement_mean, 4)),
        text_similarity_mean=_r(s.text_similarity_mean, 4))


def _acc(a: Accuracy) -> Accuracy:
    return dataclasses.replace(a, accuracy=_mu(a.accuracy))


def _diff_doc(d: AccuracyDiff) -> AccuracyDiffDoc:
    return AccuracyDiffDoc(
        group=d.group, n=d.n, accuracy_ref=_r(d.accuracy_ref, 4),
        accuracy_other=_r(d.accuracy_other, 4), diff=_mu(d.diff),
        only_ref_correct=d.only_ref_correct, only_other_correct=d.only_other_correct,
        ci_low=None if d.ci_low is None else _r(d.ci_low, 4),
        ci_high=None if d.ci_high is None else _r(d.ci_high, 4))


def quality_section(report: QualityReport) -> QualitySection:
    """The `quality` section of the run JSON."""
    o = report.options
    return QualitySection(
        reference=report.reference,
        options=QualityOptionsDoc(
            distribution=o.distribution, tasks=o.tasks, k=o.k, method=o.method,
            position_budget=o.position_budget, positions_per_prompt=o.positions_per_prompt,
            task_items=None if o.task_items is None else len(o.task_items)),
        pairs=[QualityPairDoc(
            reference=p.reference,
            other=p.other,
            outputs=OutputsDoc(summary=_summary(p.output_summary),
                               per_prompt=[_output_doc(c) for c in p.outputs]),
            distribution=None if p.distribution is None else _distribution_doc(p.distribution),
            tasks=TasksDoc(
                outputs=TaskOutputsDoc(summary=_summary(p.task_output_summary),
                                       per_item=[_output_doc(c) for c in p.task_outputs]),
                accuracy_diff=[_diff_doc(x) for x in p.accuracy_diff],
                accuracy_diff_by_length=[_diff_doc(x) for x in p.accuracy_diff_by_length]),
        ) for p in report.pairs],
        accuracy=[_acc(a) for a in report.accuracy],
        accuracy_by_length=[_acc(a) for a in report.accuracy_by_length],
        task_outcomes=[TaskOutcomeDoc(item_id=t.item_id, category=t.category, length=t.length,
                                      server=t.server, correct=t.correct, output=t.output,
                                      error=t.error, detail=t.detail)
                       for t in report.task_outcomes],
        notices=list(report.notices),
        interrupted=report.interrupted,
        elapsed_s=_r(report.elapsed_s, 3),
    )


def quality_dict(report: QualityReport) -> dict[str, Any]:
    """`quality_section` as plain JSON types: what `RunResults.extra["quality"]` holds."""
    data: dict[str, Any] = msgspec.to_builtins(quality_section(report))
    return data


def format_quality(report: QualityReport) -> str:
    """Plain-text lines for the headless summary."""
    lines = [f"quality (reference {report.reference}):"]
    for p in report.pairs:
        s = p.output_summary
        if s is not None:
            agree = "n/a" if s.token_agreement_mean is None else f"{s.token_agreement_mean:.2f}"
            lines.append(
                f"  {p.other}: outputs identical on {s.exact_match.value:.0%} of {s.n} prompts, "
                f"token agreement {agree}, text similarity {s.text_similarity_mean:.2f}")
        d = p.distribution
        if d is not None and d.stats is not None:
            st = d.stats
            lines.append(
                f"  {p.other}: same top-1 {ci_text(st.same_top1, '.2%')}, {st.kld_label} "
                f"{ci_text(st.kld, '.4f')}, mean Δp {ci_text(st.delta_p, '+.2%')} "
                f"(95% intervals over prompts; {st.scope}; {d.method})")
    if report.accuracy:
        lines.append("  task accuracy, right/scored = share [95% Wilson] (category: " + ", ".join(
            [report.reference, *(p.other for p in report.pairs)]) + "):")
        groups = sorted({a.group for a in report.accuracy})
        for g in groups:
            cells = []
            for name in [report.reference, *(p.other for p in report.pairs)]:
                a = next((x for x in report.accuracy if x.group == g and x.server == name), None)
                cells.append("n/a" if a is None else share_text(a.n_correct, a.n))
            lines.append(f"    {g}: " + "  ".join(cells))
        for p in report.pairs:
            for ad in sorted(p.accuracy_diff, key=lambda x: x.group):
                ci = ("" if ad.ci_low is None or ad.ci_high is None
                      else f" [{ad.ci_low:+.0%}, {ad.ci_high:+.0%}]")
                lines.append(f"    {ad.group}: {p.other} − {p.reference} {ad.diff.value:+.0%}"
                             f"{ci} (95%, paired, n={ad.n})")
    for n in report.notices:
        lines.append(f"  note: {n}")
    if report.interrupted:
        lines.append("  (quality step interrupted: figures cover what finished)")
    return "\n".join(lines) + "\n"


def progress_printer(stream: IO[str], every_s: float = 5.0
                     ) -> Callable[[QualityProgress], None]:
    """Plain progress lines for a headless run: at each new stage, at its end, and every few
    seconds in between."""
    last: dict[str, float] = {}

    def show(p: QualityProgress) -> None:
        now = time.monotonic()
        new = p.stage not in last
        if new or p.done >= p.total or now - last[p.stage] >= every_s:
            last[p.stage] = now
            stream.write(f"quality: {progress_words(p.stage, p.done, p.total, p.servers)}\n")
            stream.flush()

    return show
