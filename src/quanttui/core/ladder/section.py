"""A ladder as the run JSON keeps it (`ladder` section), the one run it is stored as, and the
three questions users come with, answered in words from the numbers."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from quanttui.core.hardware.breakdown import why_larger
from quanttui.core.hardware.reading import format_bytes as size
from quanttui.core.ladder.runner import LadderRun
from quanttui.core.ladder.table import (
    Diff,
    PairRow,
    QuantRow,
    drift_floor,
    interval_text,
    neighbour_rows,
    quality_scope,
    quant_rows,
    rows_from_run,
)
from quanttui.core.ladder.verdict import (
    Constraints,
    Verdict,
    decide,
    decide_at_contexts,
    measured_memory,
)
from quanttui.core.run.outside_load import LOAD_CODES
from quanttui.core.run.pairing import block_drift, moved
from quanttui.core.run.records import RequestRecord, RoundRecord, RunResults, ServerInfo


class LadderSection(msgspec.Struct, kw_only=True):
    reference: str
    k: int  # KLD@K
    together: bool  # the reference ran beside each candidate (else one server at a time)
    rows: list[QuantRow]  # highest bits per weight first
    neighbours: list[PairRow]
    verdict: Verdict
    answers: list[str]  # the usual questions, answered from the numbers
    notes: list[str] = []
    timings: dict[str, float] = {}  # seconds per part: server starts, requests, ...
    requantized: list[str] = []  # quants made from an already quantized file
    # the reference's client decode tok/s in each pass it ran in (over the prompts it ran in
    # all of them): how far the machine drifted while the ladder ran
    reference_by_pass: list[float] = []


def reference_by_pass(run: LadderRun) -> list[float]:
    records = [r for p in run.passes for r in p.results.records]
    return [v for _, v in block_drift(records, "decode_tps_client", run.lineup.reference)]


def _ratio(d: Diff | None) -> str:
    return "n/a" if d is None else d.ratio_text()


def _acc(diffs: dict[str, Diff]) -> str:
    if not diffs:
        return "accuracy not measured"
    worse = [f"{c} {d.points_text()}" for c, d in sorted(diffs.items())
             if d.measurable and d.low is not None and d.high is not None]
    if not worse:
        n = max(d.n for d in diffs.values())
        return f"no measurable accuracy difference in any category (up to {n} items each)"
    return "accuracy measurably different: " + ", ".join(worse)


def more_memory(r: QuantRow, ref: QuantRow) -> str:
    """" It takes 28 MB more memory all the same (…): 53 MB of IQ4_NL's weights are repacked
    for this CPU (13 MB of Q4_K_M's)." when a smaller file measured more memory; else ""."""
    mem, ref_mem = measured_memory(r), measured_memory(ref)
    if mem is None or ref_mem is None or mem <= ref_mem or r.size_bytes >= ref.size_bytes:
        return ""
    out = (f" It takes {size(mem - ref_mem)} more memory all the same ({size(mem)} vs "
           f"{size(ref_mem)})")
    why, repacked = why_larger(r.name, r.memory_breakdown), (
        r.memory_breakdown.weights_repacked if r.memory_breakdown else None) or 0
    ref_repacked = (ref.memory_breakdown.weights_repacked if ref.memory_breakdown else 0) or 0
    if why and repacked > ref_repacked:
        return out + f": {why}" + (f" ({size(ref_repacked)} of {ref.name}'s)."
                                   if ref_repacked else ".")
    if r.memory_breakdown is None or r.memory_breakdown.why is not None:
        return out + " (why is not known: llama-server's log was not read)."
    return out + " (its log's buffers don't say why: see where the memory goes)."


def answers(rows: list[QuantRow], pairs: list[PairRow], k: int) -> list[str]:
    """How much each quant loses against the reference; which categories degrade most;
    each quant against its neighbour."""
    ref = next(r for r in rows if r.reference)
    out = []
    for r in rows:
        if r.reference:
            continue
        top1 = interval_text(r.same_top1, r.same_top1_low, r.same_top1_high, ".0%")
        kld = interval_text(r.kld_mean, r.kld_low, r.kld_high, ".3f")
        scope = quality_scope(r) or f"over {r.positions} positions"
        q = ("quality not measured" if r.kld_mean is None or r.same_top1 is None else
             f"same top token {top1}, KLD@{k} {kld} (95% intervals over prompts, {scope}; "
             f"p99 {r.kld_p99 or 0:.3f})")
        ppl = f", perplexity ×{r.ppl_ratio:.3f} on the text" if r.ppl_ratio else ""
        saved = 1 - r.size_bytes / ref.size_bytes if ref.size_bytes else 0.0
        # rungs of one file (another context or KV cache type): the file is not what changed
        file = (f"with the same file ({size(r.size_bytes)})" if r.path == ref.path else
                f"for a file {saved:.0%} smaller ({size(r.size_bytes)} vs "
                f"{size(ref.size_bytes)})")
        out.append(f"How much does {r.name} lose against {ref.name} on these prompts? {q}{ppl}; "
                   f"{_acc(r.accuracy_vs_ref)}; decode {_ratio(r.decode_vs_ref)} {file}."
                   + more_memory(r, ref))
    lowest = next((r for r in reversed(rows) if not r.reference and r.kld_by_category), None)
    if lowest is not None:
        cats = sorted(lowest.kld_by_category.items(), key=lambda x: -x[1])
        accs = {c: d for c, d in lowest.accuracy_vs_ref.items()}
        bits = []
        for c, v in cats:
            d = accs.get(c)
            acc = ("" if d is None or d.low is None or d.high is None else
                   f", accuracy {d.points_text()}"
                   + ("" if d.measurable else " (within noise)"))
            bits.append(f"{c} KLD {v:.3f}{acc}")
        out.append(f"Which task categories degrade most? On {lowest.name} (the lowest bits "
                   f"measured), most sensitive first: " + "; ".join(bits) + ".")
    for p in pairs:
        top1 = interval_text(p.same_top1, p.same_top1_low, p.same_top1_high, ".0%")
        kld = interval_text(p.kld_mean, p.kld_low, p.kld_high, ".3f")
        q = ("" if p.kld_mean is None or p.same_top1 is None else
             f"same top token {top1}, KLD@{k} {kld} (95%); ")
        out.append(f"{p.b} against {p.a} directly: {q}decode {_ratio(p.decode)}"
                   + ("" if p.decode is None or p.decode.measurable else " (within noise)")
                   + f"; {_acc(p.accuracy)}.")
    return out


def ladder_section(run: LadderRun, constraints: Constraints) -> LadderSection:
    rows = quant_rows(run)
    pairs = neighbour_rows(run)
    if constraints.memory_budget_bytes is None and run.memory_available is not None:
        constraints = msgspec.structs.replace(constraints,
                                              memory_budget_bytes=run.memory_available)
    verdict = decide_at_contexts(rows, pairs, constraints)
    k = run.options.quality.k
    requant = [r.name for r in rows if r.requantized_from]
    notes = list(run.notes)
    by_pass = reference_by_pass(run)
    change = moved(by_pass)
    if change is not None:
        tps = ", ".join(f"{v:.1f}" for v in by_pass)
        notes.append(f"the reference's decode tok/s by pass: {tps}"
                     f" (moved {change:.0%} between passes); each quant is compared with "
                     "the reference measured in its own pass, and neighbours through it")
        prior = run.options.plan.drift_floor
        if drift_floor(run) > prior:
            notes.append(f"the reference itself moved {change:.1%} between passes: a "
                         "difference between quants measured in different passes with no "
                         "server beside both is not called below that (the drift floor, "
                         f"run.drift_floor {prior:.0%}, raised to it)")
    # what slowed a pass (other processes, quanttui itself, stalled requests): beside the
    # ladder's figures in every view (stdout, Markdown, TUI), not only in the run's notices
    notes += [n["message"] for p in run.passes for n in p.results.notices
              if n.get("code") in LOAD_CODES]
    if requant:
        src = {r.requantized_from for r in rows if r.requantized_from}
        one = len(requant) == 1
        notes.append(f"{', '.join(requant)} {'was' if one else 'were'} requantized from "
                     f"{', '.join(sorted(src))}: {'it' if one else 'none'} can"
                     f"{'not' if one else ''} be more accurate than the file it was made from, "
                     f"so {'its' if one else 'their'} quality figures show the extra rounding "
                     "only")
    return LadderSection(reference=run.lineup.reference, k=k, together=run.together, rows=rows,
                         neighbours=pairs, verdict=verdict, answers=answers(rows, pairs, k),
                         notes=notes, reference_by_pass=[round(v, 3) for v in by_pass],
                         timings={p: round(s, 3) for p, s in run.timings.items()},
                         requantized=requant)


# (section of the hardware JSON or None for its top level, key): means over the samples
_SAMPLE_MEANS = (("host", "cpu_percent_mean"), ("host", "other_cpu_cores_mean"),
                 (None, "own_cpu_percent_mean"))


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def merged_hardware(passes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The passes' hardware sections as one: the first pass's host and GPUs; the means over
    samples (host CPU, other processes' cores, quanttui's own CPU) over every pass's samples,
    where the first pass's alone would miss a load that came later; the host's RAM peak over
    all; each server as measured in the first pass it ran in."""
    if not passes:
        return None
    out = dict(passes[0])
    out["host"] = host = dict(passes[0].get("host") or {})
    weights = [int(_num(h.get("samples")) or 0) for h in passes]
    for section, key in _SAMPLE_MEANS:
        target = host if section else out
        vals = [(_num((h.get(section) or {}).get(key) if section else h.get(key)), w)
                for h, w in zip(passes, weights, strict=True)]
        known = [(v, w) for v, w in vals if v is not None and w > 0]
        if known:
            target[key] = sum(v * w for v, w in known) / sum(w for _, w in known)
    peaks = [v for h in passes if (v := _num((h.get("host") or {}).get("ram_used_peak_bytes")))
             is not None]
    if peaks:
        host["ram_used_peak_bytes"] = int(max(peaks))
    out["samples"] = sum(weights)
    servers: dict[str, Any] = {}
    for h in passes:
        for n, hw in (h.get("servers") or {}).items():
            servers.setdefault(n, hw)
    out["servers"] = servers
    return out


def merged_results(run: LadderRun, section: LadderSection) -> RunResults:
    """Every pass as one run (what the history, `compare` and the reports read): records
    renumbered in order, each server once (the reference first), the passes' hardware as one
    (`merged_hardware`: each server's as measured in the first pass it ran in; the ladder's
    rows hold each one's peaks over all its passes), and the ladder section beside them."""
    first = run.passes[0].results if run.passes else None
    names = run.lineup.names
    ref = run.lineup.reference
    order = [ref] + [n for n in names if n != ref]
    infos: dict[str, ServerInfo] = {}
    records: list[RequestRecord] = []
    rounds: list[RoundRecord] = []
    notices: list[dict[str, Any]] = []
    for p in run.passes:
        for s in p.results.servers:
            infos.setdefault(s.name, s)
        for r in p.results.records:
            r.request_id = len(records)
            records.append(r)
        rounds += p.results.rounds
        notices += p.results.notices
    hardware = merged_hardware([p.hardware for p in run.passes])
    res = RunResults(
        servers=[infos[n] for n in order if n in infos],
        schedule="alternating", endpoint=first.endpoint if first else "completion",
        repetitions=max((p.results.repetitions for p in run.passes), default=0),
        warmup=run.options.plan.warmup,
        concurrency_levels=run.options.plan.concurrency_levels[:1],
        records=records, rounds=rounds, notices=notices,
        started_at=run.started_at, finished_at=run.finished_at or time.time(),
        interrupted=run.interrupted, hardware=hardware,
        drift_floor=drift_floor(run))
    for s in res.servers:
        if s.name in run.launch_args:
            s.launch_args = run.launch_args[s.name]
    res.extra["ladder"] = msgspec.to_builtins(section)
    return res


class RunAnswer(msgspec.Struct, kw_only=True):
    """What any run answers, whichever way it was measured: rows, the verdict, in words."""

    rows: list[QuantRow]
    verdict: Verdict
    answers: list[str]
    k: int


def run_answer(results: RunResults) -> RunAnswer | None:
    """A ladder's stored answer, or a comparison run's (two or more servers) from its rows
    under the default constraints: the one answer the TUI, the Markdown and stdout lead with.
    None with fewer than two servers to compare."""
    if (data := results.extra.get("ladder")) is not None:
        sec = msgspec.convert(data, LadderSection)
        return RunAnswer(rows=sec.rows, verdict=sec.verdict, answers=sec.answers, k=sec.k)
    rows = rows_from_run(results)
    if len(rows) < 2:
        return None
    q = results.extra.get("quality") or {}
    k = int((q.get("options") or {}).get("k") or 0)
    return RunAnswer(rows=rows, verdict=decide(rows, [], Constraints()),
                     answers=answers(rows, [], k), k=k)
