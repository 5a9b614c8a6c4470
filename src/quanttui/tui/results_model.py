"""What the results view shows, as data: the comparison table from core, the verdict, the
per-prompt figures. No Textual here, so it is tested without an app.

Every figure comes from core: `core.ladder.table.rows_from_run` (one row per server: size,
memory peaks, speeds with their paired ratio and 95% interval, quality against the reference),
`core.ladder.verdict.decide` (the answer), the stored `ladder` section when the run is a ladder
(`core.reports.ladder.section_of`), `RunResults.summary` / `per_prompt` and
`core.quality.outputs.compare_run_outputs` for the per-prompt figures. This module only chooses
words, marks and columns. A difference whose 95% interval covers "no difference" is marked `≈`
and drawn muted ("within noise").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quanttui.core.models.discovery import (
    BITS_PER_WEIGHT_NOTE,
    REQUANTIZED_MARK,
    requantized_legend,
)
from quanttui.core.quality.accuracy import share_text
from quanttui.core.run.pairing import INTERLEAVED
from quanttui.tui import fmt
from quanttui.tui.labels import short_labels

if TYPE_CHECKING:
    from quanttui.core.ladder.table import Diff, QuantRow
    from quanttui.core.ladder.verdict import Verdict
    from quanttui.core.run.records import RunResults

# A cell: its text and a style key (None plain, "b" bold, "muted" within noise or absent,
# "good" / "bad" a measurable difference that way, "accent" the recommended quant).
Cell = tuple[str, str | None]
NOISE = "≈"
NOISE_LEGEND = (f"{NOISE} within noise: the 95% interval covers no difference, so the data "
                "cannot tell the two apart; † not measured side by side (through the reference, "
                "or apart in time with the drift floor)")
NA = "—"
NameCell = Callable[["QuantRow"], Cell]


@dataclass(frozen=True)
class Column:
    title: str
    short: str  # the title on a narrow screen
    left: bool = False  # text (left-aligned) rather than a figure
    tip: str = ""  # what the column means


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    note: str = ""


@dataclass
class ResultsModel:
    heading: str  # what was run
    verdict: str | None = None
    recommended: str | None = None
    hint: str | None = None  # what the user can do to get a better answer
    tables: list[Table] = field(default_factory=list)
    noise: list[str] = field(default_factory=list)  # what the data could not tell apart
    answers: list[str] = field(default_factory=list)  # the usual questions, in words
    notes: list[str] = field(default_factory=list)
    quality_measured: bool = False


def _f(v: float | None, spec: str = ".1f", unit: str = "") -> Cell:
    return (NA, "muted") if v is None else (format(v, spec) + unit, None)


def _ci(v: float | None, low: float | None, high: float | None, spec: str) -> Cell:
    """`0.0213 [0.0049, 0.0410]`: a value and its 95% interval (core.ladder.table)."""
    from quanttui.core.ladder.table import interval_text

    return (NA, "muted") if v is None else (interval_text(v, low, high, spec), None)


def _ratio(d: Diff | None) -> Cell:
    """`×1.22 [1.18, 1.26]`; `≈` and muted within noise."""
    if d is None:
        return NA, "muted"
    if d.low is None or d.high is None:
        return f"×{d.value:.2f} (n={d.n})", "muted"
    text = f"×{d.value:.2f} [{d.low:.2f}, {d.high:.2f}]"
    if d.basis != INTERLEAVED:  # through the reference, or apart in time (core.run.pairing)
        text += " †"
    if not d.measurable:
        return f"{text} {NOISE}", "muted"
    return text, "good" if d.value > 1 else "bad"


def _acc_diff(d: Diff) -> Cell:
    """`−5% [−20%, +10%]`: this quant's accuracy minus the reference's, paired."""
    if d.low is None or d.high is None:
        return d.points_text(), "muted"
    text = d.points_text()
    if not d.measurable:
        return f"{text} {NOISE}", "muted"
    return text, "good" if d.value > 0 else "bad"


def _size(v: int | None) -> Cell:
    return (NA, "muted") if not v else (fmt.size(v), None)


def _delta_bytes(v: int, ref: int) -> Cell:
    if not ref:
        return NA, "muted"
    return fmt.signed_size(v - ref) + f" ({fmt.signed_pct(v / ref - 1)})", None


def heading(results: RunResults, running: bool = False) -> str:
    n_prompts = len({r.prompt_id for r in results.measured()})
    reqs = len(results.measured())
    fails = len([r for r in results.measured() if r.error is not None])
    parts = [f"{n_prompts} prompt{'s' if n_prompts != 1 else ''} × {results.repetitions}",
             results.schedule, f"{reqs} requests" + (f", {fails} failed" if fails else "")]
    if results.interrupted:
        parts.append("stopped early")
    if running:
        parts.append("running: figures so far")
    return " · ".join(parts)


def results_model(results: RunResults, *, running: bool = False) -> ResultsModel:
    """The results view of a run (finished, stored, or running: its figures so far)."""
    from quanttui.core.ladder.section import run_answer
    from quanttui.core.ladder.table import rows_from_run
    from quanttui.core.reports.ladder import section_of

    model = ResultsModel(heading(results, running))
    ladder = section_of(results.extra)
    answer = run_answer(results)
    rows = answer.rows if answer is not None else rows_from_run(results)
    if not rows:
        model.hint = "No server answered in this run: nothing to compare."
        return model
    quality = results.extra.get("quality")
    k = ladder.k if ladder is not None else int(((quality or {}).get("options") or {}).get("k")
                                                or 0)
    model.quality_measured = ladder is not None or quality is not None
    labels = short_labels([r.name for r in rows])
    verdict: Verdict | None = None
    if answer is not None:
        verdict = answer.verdict
        model.verdict, model.recommended = verdict.reason, verdict.recommended
        model.noise = list(verdict.within_noise)
        # what the figures can't show (a category where the reference scored 0/n or n/n)
        model.notes += [f"warning: {w}" for w in verdict.warnings]
        model.answers = list(answer.answers)
    else:
        model.hint = "One server in this run: s selects a second one to compare it with."
    if len(rows) >= 2 and not any(r.positions for r in rows) and not (quality or {}).get(
            "accuracy"):
        model.hint = ("Quality not measured yet, so no smaller quant can be recommended: "
                      "k runs the quality step (same-top-1, KLD, task accuracy) on these "
                      "servers.")
    rec = model.recommended

    def name_cell(r: QuantRow) -> Cell:
        mark = " ★" if r.name == rec else ""
        ref = " (ref)" if r.reference else ""
        requant = f" {REQUANTIZED_MARK}" if r.requantized_from else ""
        return f"{labels[r.name]}{ref}{requant}{mark}", "accent" if r.name == rec else "b"

    model.tables.append(speed_table(results, rows, name_cell))
    model.tables.append(memory_table(rows, name_cell))
    model.tables.append(quality_table(results, rows, name_cell, k, labels))
    acc = accuracy_table(rows, labels)
    if acc is not None:
        model.tables.append(acc)
    kld = kld_table(rows, labels, k)
    if kld is not None:
        model.tables.append(kld)
    if requantized := [r.requantized_from for r in rows if r.requantized_from]:
        model.notes.append(requantized_legend(requantized))
    if ladder is not None and ladder.neighbours:
        model.tables.append(neighbour_table(ladder.neighbours, labels, ladder.k))
        model.notes += ladder.notes
    if quality is not None:
        model.notes += [str(n) for n in quality.get("notices") or ()]
        if quality.get("interrupted"):
            model.notes.append("The quality step was stopped early: its figures cover what "
                               "finished.")
    return model


def speed_table(results: RunResults, rows: Sequence[QuantRow],
                name_cell: NameCell) -> Table:
    cols = [Column("server", "server", left=True),
            Column("decode t/s", "dec t/s",
                   tip="client decode tokens/s: a quant's beside the reference's in the same "
                       "pass (ref …), the reference's over all its passes"),
            Column("decode vs ref [95%]", "dec ×ref",
                   tip="ratio to the reference, paired per prompt, with its 95% interval"),
            Column("TTFT p50/p90", "TTFT p50/90", tip="request sent → first token"),
            Column("prompt t/s", "pp t/s", tip="llama-server's prompt tokens/s, mean"),
            Column("prompt vs ref [95%]", "pp ×ref"),
            Column("ok", "ok", tip="measured requests that finished without error")]
    # here, not at the top: core.reports.ladder brings the ladder runner (~80 ms at start)
    from quanttui.core.reports.ladder import decode_cell

    out = []
    for r in rows:
        ttft = results.summary(r.name, "ttft_ms")
        ok = len([x for x in results.measured(r.name) if x.ok])
        total = len(results.measured(r.name))
        out.append([
            name_cell(r),
            (NA, "muted") if r.decode_tps is None else (decode_cell(r), None),
            ("ref", "muted") if r.reference else _ratio(r.decode_vs_ref),
            (NA, "muted") if ttft is None else (f"{ttft.p50:.0f}/{ttft.p90:.0f} ms", None),
            (NA, "muted") if r.prompt_tps is None else (fmt.rate(r.prompt_tps), None),
            ("ref", "muted") if r.reference else _ratio(r.prompt_vs_ref),
            (f"{ok}/{total}", None if ok == total else "bad"),
        ])
    return Table("Speed", cols, out)


def memory_table(rows: Sequence[QuantRow], name_cell: NameCell) -> Table:
    from quanttui.core.ladder.verdict import footprint

    vram = any(r.vram_peak for r in rows)
    cols = [Column("server", "server", left=True),
            Column("file", "file", tip="model file size on disk, all shards"),
            Column("bits/w", "b/w", tip=BITS_PER_WEIGHT_NOTE),
            Column("private peak", "private",
                   tip="anonymous memory: KV cache, compute buffers, repacked weights"),
            Column("model pages peak", "model",
                   tip="the model file's pages resident in RAM"),
            Column("RSS peak", "RSS")]
    if vram:
        cols.append(Column("VRAM peak", "VRAM"))
    # llama-server's own buffers, for the servers quanttui started (core.hardware.breakdown)
    parts = any(r.memory_breakdown and r.memory_breakdown.why is None for r in rows)
    if parts:
        cols += [Column("repacked", "repack",
                        tip="weights copied into this CPU's kernel layout (private memory)"),
                 Column("KV written", "KV", tip="KV cache cells written, from the log"),
                 Column("measured − parts", "Δparts",
                        tip="private + model pages less the log's buffers and the runtime "
                            "allowance; within ±5% they account for it (docs/metrics.md)")]
    cols.append(Column("memory vs ref", "mem Δref",
                       tip="private + model pages (else RSS, else the file) against the "
                           "reference's"))
    ref = next(r for r in rows if r.reference)
    out = []
    for r in rows:
        line = [name_cell(r), _size(r.size_bytes), _f(r.bits_per_weight, ".2f"),
                _size(r.memory_private_peak), _size(r.memory_model_pages_peak),
                _size(r.memory_rss_peak)]
        if vram:
            line.append(_size(r.vram_peak))
        if parts:
            bd = r.memory_breakdown
            if bd is None or bd.why is not None:
                line += [(NA, "muted")] * 3
            else:
                line += [_size(bd.weights_repacked), _size(bd.kv_cache),
                         (fmt.signed_size(bd.difference), None if bd.within_tolerance
                          else "bad") if bd.difference is not None else (NA, "muted")]
        line.append(("ref", "muted") if r.reference
                    else _delta_bytes(footprint(r), footprint(ref)))
        out.append(line)
    note = "" if any(r.memory_private_peak or r.memory_rss_peak for r in rows) else (
        "memory not sampled (a remote server, or sampling off)")
    return Table("Memory", cols, out, note)


def quality_table(results: RunResults, rows: Sequence[QuantRow], name_cell: NameCell,
                  k: int, labels: dict[str, str]) -> Table:
    from quanttui.core.ladder.table import quality_scope
    from quanttui.core.quality.outputs import compare_run_outputs

    kld = f"KLD@{k}" if k else "KLD"
    cols = [Column("server", "server", left=True),
            Column("same output", "same out",
                   tip="prompts whose greedy output is identical to the reference's"),
            Column("first divergence", "1st ≠",
                   tip="median token index of the first difference, over prompts that differ"),
            Column("same top-1 [95%]", "top-1",
                   tip="share of positions where the top token equals the reference's "
                       "(teacher-forced on the reference's output), 95% interval over prompts"),
            Column(f"{kld} mean [95%]", "KLD", tip="95% interval over prompts"),
            Column("median", "med"),
            Column("p99", "p99"),
            Column("Δp", "Δp", tip="mean p(this) − p(reference) of the reference's token"),
            Column("positions", "pos")]
    ref = next(r for r in rows if r.reference)
    out = []
    for r in rows:
        if r.reference:
            out.append([name_cell(r), ("ref", "muted")] + [(NA, "muted")] * (len(cols) - 2))
            continue
        comps = compare_run_outputs(results, ref.name, r.name)
        same = sum(c.exact_match for c in comps)
        # in the unit most prompts were compared by (words where a stream left ids out)
        units: list[str] = [c.unit for c in comps if c.first_divergence is not None]
        unit = max(("tok", "word"), key=units.count)
        divs = sorted(c.first_divergence for c in comps
                      if c.first_divergence is not None and c.unit == unit)
        first: Cell = (NA, "muted") if not divs else (f"{unit} {divs[len(divs) // 2]}", None)
        measured = r.positions > 0
        out.append([
            name_cell(r),
            (f"{same}/{len(comps)}", None) if comps else (NA, "muted"),
            first,
            _ci(r.same_top1, r.same_top1_low, r.same_top1_high, ".1%") if measured
            else (NA, "muted"),
            _ci(r.kld_mean, r.kld_low, r.kld_high, ".4f") if measured else (NA, "muted"),
            _f(r.kld_median, ".4f") if measured else (NA, "muted"),
            _f(r.kld_p99, ".3f") if measured else (NA, "muted"),
            _f(r.delta_p, "+.2%") if measured else (NA, "muted"),
            (str(r.positions), None) if measured else (NA, "muted"),
        ])
    scope = next((s for r in rows if (s := quality_scope(r))), "")
    note = (f"same-top-1 and KLD {scope}; [95% interval] over prompts" if scope else
            "" if any(r.positions for r in rows) else
            "same-top-1, KLD and Δp need the quality step: k runs it")
    return Table(f"Quality against {labels.get(ref.name, ref.name)}", cols, out, note)


def accuracy_table(rows: Sequence[QuantRow], labels: dict[str, str]) -> Table | None:
    """One row per task category: the reference's accuracy, the others' paired difference."""
    cats = sorted({c for r in rows for c in r.accuracy} | {c for r in rows
                                                          for c in r.accuracy_vs_ref})
    if not cats:
        return None
    cols = [Column("category", "category", left=True), Column("items", "n")]
    for r in rows:
        title = labels[r.name] + (" (ref)" if r.reference else " vs ref")
        cols.append(Column(title, labels[r.name]))
    out = []
    for c in cats:
        n = max((r.accuracy_n.get(c, 0) for r in rows), default=0)
        line: list[Cell] = [(c, None), (str(n), None)]
        for r in rows:
            if r.reference:
                v, k = r.accuracy.get(c), r.accuracy_n.get(c, 0)
                line.append((NA, "muted") if v is None else (share_text(round(v * k), k), None))
                continue
            d = r.accuracy_vs_ref.get(c)
            acc = r.accuracy.get(c)
            if d is None:
                line.append((NA, "muted") if acc is None else (f"{acc:.0%}", None))
            else:
                text, style = _acc_diff(d)
                line.append((f"{acc:.0%} {text}" if acc is not None else text, style))
        out.append(line)
    return Table("Task accuracy by category (difference to the reference, paired 95%)", cols,
                 out, f"reference: right/scored = share [95% Wilson]; {NOISE} not measurable "
                 "after Holm's correction over every category and quant shown")


def kld_table(rows: Sequence[QuantRow], labels: dict[str, str], k: int) -> Table | None:
    cats = sorted({c for r in rows for c in r.kld_by_category})
    others = [r for r in rows if not r.reference and r.kld_by_category]
    if not cats or not others:
        return None
    cols = [Column("prompt category", "category", left=True)]
    cols += [Column(labels[r.name], labels[r.name]) for r in others]
    out = [[(c, None)] + [_f(r.kld_by_category.get(c), ".4f") for r in others] for c in cats]
    return Table(f"KLD@{k} by prompt category", cols, out)


def neighbour_table(pairs: Sequence[object], labels: dict[str, str], k: int) -> Table:
    from quanttui.core.ladder.table import PairRow

    cols = [Column("pair", "pair", left=True), Column("decode [95%]", "dec ×"),
            Column("same top-1 [95%]", "top-1"), Column(f"KLD@{k} [95%]", "KLD"),
            Column("accuracy Δ", "acc Δ", left=True)]
    out = []
    for p in pairs:
        assert isinstance(p, PairRow)
        acc = ", ".join(f"{c} {_acc_diff(d)[0]}" for c, d in sorted(p.accuracy.items()))
        out.append([(f"{labels.get(p.b, p.b)} vs {labels.get(p.a, p.a)}", "b"),
                    _ratio(p.decode), _ci(p.same_top1, p.same_top1_low, p.same_top1_high, ".1%"),
                    _ci(p.kld_mean, p.kld_low, p.kld_high, ".4f"),
                    (acc or NA, None if acc else "muted")])
    return Table("Neighbours (each quant against the next one up)", cols, out)


# ---------------------------------------------------------------------- prompts


@dataclass
class PromptRow:
    prompt_id: str
    category: str
    text: str  # the prompt, when this session ran it; "" for a stored run
    decode: dict[str, float]  # server -> client decode tok/s, mean over repetitions
    ttft: dict[str, float]  # server -> TTFT ms, mean over repetitions
    divergence: dict[str, int | None]  # other server -> first difference (None: same)
    failed: dict[str, str]  # server -> why its request failed
    unit: dict[str, str] = field(default_factory=dict)  # other -> what divergence counts
    # other server -> against the reference on this prompt, where the quality step measured it:
    # mean KLD and the share of positions with the same top token
    kld: dict[str, float] = field(default_factory=dict)
    same_top1: dict[str, float] = field(default_factory=dict)


def prompt_servers(results: RunResults) -> list[str]:
    """The run's reachable servers, the reference first: the quality section's where it has
    one (as the results view takes it), else the first."""
    names = [s.name for s in results.servers if s.reachable]
    ref = (results.extra.get("quality") or {}).get("reference")
    return [ref] + [n for n in names if n != ref] if ref in names else names


def prompt_rows(results: RunResults, texts: dict[str, str] | None = None) -> list[PromptRow]:
    """One row per prompt of the run, in the run's order: each server's decode tok/s and TTFT,
    where each other server's output first differs from the reference's (the first repetition
    of each, as `compare_run_outputs` takes them) and, from the quality section where the run
    has one, each other server's KLD and same-top-1 on the prompt."""
    import msgspec

    from quanttui.core.quality.outputs import compare_run_outputs
    from quanttui.core.quality.section import QualitySection

    texts = texts or {}
    names = prompt_servers(results)
    q = results.extra.get("quality")
    quality = msgspec.convert(q, QualitySection) if q is not None else None
    klds: dict[str, dict[str, float]] = {}
    top1s: dict[str, dict[str, float]] = {}
    for pair in quality.pairs if quality is not None else []:
        if pair.distribution is None or pair.reference != names[0]:
            continue
        for pp in pair.distribution.per_prompt:
            if pp.n > 0 and pp.kld_mean is not None:
                klds.setdefault(pair.other, {})[pp.prompt_id] = pp.kld_mean
            if pp.n > 0 and pp.same_top1 is not None:
                top1s.setdefault(pair.other, {})[pp.prompt_id] = pp.same_top1
    order: dict[str, str] = {}
    for r in results.measured():
        order.setdefault(r.prompt_id, r.category)
    decode = {n: results.per_prompt(n, "decode_tps_client") for n in names}
    ttft = {n: results.per_prompt(n, "ttft_ms") for n in names}
    divs: dict[str, dict[str, int | None]] = {}
    units: dict[str, dict[str, str]] = {}
    if names:
        for other in names[1:]:
            comps = compare_run_outputs(results, names[0], other)
            divs[other] = {c.prompt_id: c.first_divergence for c in comps}
            units[other] = {c.prompt_id: c.unit for c in comps}
    failed: dict[str, dict[str, str]] = {}
    for r in results.measured():
        if r.error is not None and r.error_kind != "cancelled":
            failed.setdefault(r.prompt_id, {})[r.server] = r.error_kind or "failed"
    out = []
    for pid, cat in order.items():
        out.append(PromptRow(
            pid, cat, texts.get(pid, ""),
            {n: decode[n][pid] for n in names if pid in decode[n]},
            {n: ttft[n][pid] for n in names if pid in ttft[n]},
            {o: d[pid] for o, d in divs.items() if pid in d},
            failed.get(pid, {}),
            {o: u[pid] for o, u in units.items() if pid in u},
            {o: k[pid] for o, k in klds.items() if pid in k},
            {o: t[pid] for o, t in top1s.items() if pid in t}))
    return out
