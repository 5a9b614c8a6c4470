"""A ladder's figures: one row per quant, and one per pair of neighbours.

Every difference carries its 95% interval and says whether it is measurable (the interval
excludes "no difference"); speeds are paired per prompt as every view pairs them
(core.run.pairing): within the pass both quants ran in, else through the reference beside each,
else across passes with the drift floor. The structs are the `ladder` section of the run JSON
as they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import fmean, median
from typing import Any

import msgspec

from quanttui.core.hardware.breakdown import MemoryBreakdown
from quanttui.core.ladder.runner import TEXT_ID, LadderRun
from quanttui.core.quality.accuracy import (
    AccuracyDiff,
    accuracy_by,
    accuracy_diff,
    measurable_differences,
)
from quanttui.core.quality.divergence import (
    DistributionStats,
    PositionCompare,
    distribution_stats,
    positions_scope,
)
from quanttui.core.quality.teacher_forcing import pair_runs
from quanttui.core.run.pairing import INTERLEAVED, estimated_floor, pair
from quanttui.core.run.records import RunResults
from quanttui.core.run.stats import PairedDiff


class Diff(msgspec.Struct, kw_only=True):
    """B against A: a ratio (speeds) or a difference (accuracy), with its 95% interval."""

    value: float
    low: float | None
    high: float | None
    n: int
    measurable: bool  # the interval excludes 1 (ratio) or 0 (difference)
    # speeds: how the pairs were made (core.run.pairing): "interleaved", "via <server>",
    # "across blocks" (interval widened by the drift floor)
    basis: str = "interleaved"

    def points_text(self) -> str:
        """"−8% [−31%, +15%]": a difference of two shares (accuracy) with its 95% interval."""
        if self.low is None or self.high is None:
            return f"{self.value:+.0%}"
        return f"{self.value:+.0%} [{self.low:+.0%}, {self.high:+.0%}]"

    def ratio_text(self, noise: str = "") -> str:
        """"×1.08 [1.03, 1.13]", then `noise` when within noise; "×1.08" without interval."""
        how = "" if self.basis == INTERLEAVED else f" ({self.basis})"
        if self.low is None or self.high is None:
            return f"×{self.value:.2f}{how}"
        return (f"×{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"
                + ("" if self.measurable else noise) + how)


class QuantRow(msgspec.Struct, kw_only=True):
    name: str
    quant: str | None
    path: str
    reference: bool
    requantized_from: str | None
    size_bytes: int  # on disk, all shards
    bits_per_weight: float | None
    memory_private_peak: int | None = None  # anonymous memory: KV cache, buffers
    memory_model_pages_peak: int | None = None  # the model file's pages resident in RAM
    memory_rss_peak: int | None = None
    vram_peak: int | None = None
    # where the memory goes: llama-server's buffers beside the measurement (its peak pass)
    memory_breakdown: MemoryBreakdown | None = None
    # client decode tok/s (solo): a quant's over the prompts paired with the reference (the
    # pass they shared); the reference's over all its passes (`decode_passes` of them)
    decode_tps: float | None = None
    decode_vs_ref: Diff | None = None  # ratio to the reference, paired per prompt
    # the reference's decode tok/s in the same pairing: decode_vs_ref = decode_tps / this
    decode_ref_tps: float | None = None
    decode_passes: int = 1
    prompt_tps: float | None = None  # llama-server's prompt tok/s, mean
    prompt_vs_ref: Diff | None = None
    ttft_p50_ms: float | None = None
    positions: int = 0  # teacher-forced positions compared with the reference
    prompts: int = 0  # ... over this many prompts
    positions_per_prompt: int = 0  # the first N positions of each prompt's continuation
    same_top1: float | None = None
    kld_mean: float | None = None  # KLD@K (k: the section's)
    # 95% intervals over prompts (core.quality.divergence); None below 2 prompts
    same_top1_low: float | None = None
    same_top1_high: float | None = None
    kld_low: float | None = None
    kld_high: float | None = None
    kld_median: float | None = None
    kld_p99: float | None = None
    delta_p: float | None = None  # mean p(other) − p(reference) of the forced token
    ppl_ratio: float | None = None  # perplexity on the text, this quant / the reference
    accuracy: dict[str, float] = {}  # category -> share correct
    accuracy_n: dict[str, int] = {}  # category -> items scored
    accuracy_vs_ref: dict[str, Diff] = {}  # category -> paired difference (this − reference)
    kld_by_category: dict[str, float] = {}  # prompt category -> mean KLD@K
    # a ladder over contexts / KV cache types (core.ladder.lineup.expand); None: the defaults
    quant_name: str | None = None  # the quant without context and cache ("Q4_K_M")
    ctx_size: int | None = None  # -c the server ran with
    cache_type: str | None = None  # -ctk/-ctv (None: f16, the server's default)
    # the cache filled by one prompt before the rung's own (core.ladder.runner.Depth)
    depth_tokens: int | None = None
    depth_ttft_ms: float | None = None  # that prompt's TTFT: its whole evaluation
    depth_prompt_tps: float | None = None
    depth_decode_tps: float | None = None  # client decode tok/s of the tokens after it
    # the fit check's prediction (core.models.fit) and its error: predicted / measured − 1
    memory_predicted: int | None = None
    memory_predicted_error: float | None = None


class PairRow(msgspec.Struct, kw_only=True):
    """Two quants next to each other in bits per weight (`b` the lower)."""

    a: str
    b: str
    decode: Diff | None = None  # b / a
    same_top1: float | None = None
    kld_mean: float | None = None
    same_top1_low: float | None = None  # 95% intervals over prompts, as in QuantRow
    same_top1_high: float | None = None
    kld_low: float | None = None
    kld_high: float | None = None
    accuracy: dict[str, Diff] = {}  # category -> b − a


def _ratio(d: PairedDiff | None) -> Diff | None:
    if d is None or d.ratio is None:
        return None
    ci = d.ratio_ci
    return Diff(value=d.ratio, low=ci[0] if ci else None, high=ci[1] if ci else None, n=d.n,
                measurable=d.measurable, basis=d.basis)


def speed_pair(run: LadderRun, a: str, b: str, metric: str = "decode_tps_client"
               ) -> PairedDiff | None:
    """b against a, paired as every view pairs (core.run.pairing; a pass is a block of time):
    within the pass that ran both, else through the reference beside each, else across passes
    with the drift floor."""
    records = [r for p in run.passes for r in p.results.records]
    return pair(records, metric, a, b, servers=run.lineup.names, floor=drift_floor(run))


def drift_floor(run: LadderRun) -> float:
    """The ladder's drift floor (one for every pair and metric): `run.drift_floor`, raised to
    the reference's own change in decode tok/s between the passes it ran in when larger
    (core.run.pairing.estimated_floor)."""
    return estimated_floor([r for p in run.passes for r in p.results.records],
                           run.lineup.reference, run.options.plan.drift_floor)


def speed(run: LadderRun, a: str, b: str, metric: str = "decode_tps_client") -> Diff | None:
    """b / a with its 95% interval (`speed_pair`)."""
    return _ratio(speed_pair(run, a, b, metric))


def _positions(run: LadderRun, a: str, b: str) -> list[tuple[str, list[PositionCompare]]]:
    k = run.options.quality.k
    if a not in run.forced or b not in run.forced:
        return []
    return pair_runs(run.forced[a], run.forced[b], k)


def _accuracy_family(run: LadderRun) -> dict[tuple[str, str, str], AccuracyDiff]:
    """Every accuracy comparison a ladder report shows, (a, b, category) -> b − a: each quant
    against the reference and each against its neighbour. One family for Holm's correction
    (`measurable_differences`); a neighbour pair that is also a pair with the reference is
    counted once."""
    names, ref = run.lineup.names, run.lineup.reference
    out: dict[tuple[str, str, str], AccuracyDiff] = {}
    seen: set[frozenset[str]] = set()
    for a, b in [(ref, n) for n in names if n != ref] + run.lineup.neighbours():
        if frozenset((a, b)) in seen:
            continue
        seen.add(frozenset((a, b)))
        outcomes = [o for n in (a, b) for o in run.outcomes.get(n, [])]
        out.update({(a, b, d.group): d for d in accuracy_diff(outcomes, a, b)})
    return out


def _accuracy_diffs(run: LadderRun, a: str, b: str) -> dict[str, Diff]:
    """b − a per category; measurable only when it survives Holm over the report's family."""
    family = _accuracy_family(run)
    measurable = measurable_differences(family)
    out = {}
    for (x, y, cat), d in family.items():
        if {x, y} == {a, b}:
            sign = 1.0 if (x, y) == (a, b) else -1.0
            lo, hi = d.ci_low, d.ci_high
            out[cat] = Diff(value=sign * d.diff.value, n=d.n, measurable=measurable[x, y, cat],
                            low=None if lo is None or hi is None else min(sign * lo, sign * hi),
                            high=None if lo is None or hi is None else max(sign * lo, sign * hi))
    return out


def _hw(run: LadderRun, name: str, key: str) -> int | None:
    vals = [p.hardware.get("servers", {}).get(name, {}).get(key) for p in run.passes
            if name in p.servers]
    nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return int(max(nums)) if nums else None


def memory_breakdown(hw_server: Mapping[str, Any]) -> MemoryBreakdown | None:
    """A server's breakdown as the hardware section stores it (None: not stored)."""
    bd = hw_server.get("memory_breakdown")
    return msgspec.convert(bd, MemoryBreakdown) if isinstance(bd, dict) else None


def _breakdown(run: LadderRun, name: str) -> MemoryBreakdown | None:
    """The breakdown of the pass where the server measured most (the peaks' pass)."""
    found = [bd for p in run.passes if name in p.servers
             if (bd := memory_breakdown(p.hardware.get("servers", {}).get(name, {})))]
    return max(found, key=lambda bd: bd.measured or 0, default=None)


def _mean_metric(run: LadderRun, name: str, metric: str) -> float | None:
    vals = [getattr(r.metrics, metric) for p in run.passes if name in p.servers
            for r in p.results.measured(name) if r.ok and r.metrics is not None]
    vals = [v for v in vals if v is not None]
    return fmean(vals) if vals else None


def _p50(run: LadderRun, name: str, metric: str) -> float | None:
    vals = [getattr(r.metrics, metric) for p in run.passes if name in p.servers
            for r in p.results.measured(name) if r.ok and r.metrics is not None]
    vals = [v for v in vals if v is not None]
    return median(vals) if vals else None


def quant_rows(run: LadderRun) -> list[QuantRow]:
    lu = run.lineup
    ref = lu.reference
    categories = {p.id: p.category for p in run.options.plan.prompts}
    rows = []
    expanded = any(r.base for r in lu.rungs)
    for rung in lu.rungs:
        n, m = rung.name, rung.model
        row = QuantRow(
            name=n, quant=m.quant, path=str(m.path), reference=n == ref,
            requantized_from=m.requantized_from, size_bytes=m.size_bytes,
            bits_per_weight=m.bits_per_weight,
            memory_private_peak=_hw(run, n, "private_peak") or _hw(run, n, "uss_peak"),
            memory_model_pages_peak=_hw(run, n, "model_pages_peak"),
            memory_rss_peak=_hw(run, n, "rss_peak"), vram_peak=_hw(run, n, "vram_peak"),
            memory_breakdown=_breakdown(run, n),
            decode_tps=_mean_metric(run, n, "decode_tps_client"),
            prompt_tps=_mean_metric(run, n, "prompt_tps_server"),
            ttft_p50_ms=_p50(run, n, "ttft_ms"))
        if expanded:
            row.quant_name, row.ctx_size, row.cache_type = rung.quant, rung.ctx_size, rung.cache
        if (depth := run.depth.get(n)) is not None and depth.error is None:
            row.ctx_size = depth.ctx_size
            row.depth_tokens, row.depth_ttft_ms = depth.tokens, depth.ttft_ms
            row.depth_prompt_tps, row.depth_decode_tps = depth.prompt_tps, depth.decode_tps
        if (predicted := run.predicted.get(n)) is not None and expanded:
            row.memory_predicted = predicted
            measured = (row.memory_private_peak + row.memory_model_pages_peak
                        if row.memory_private_peak is not None
                        and row.memory_model_pages_peak is not None else row.memory_rss_peak)
            if measured:
                row.memory_predicted_error = predicted / measured - 1
        if n == ref:
            row.decode_passes = sum(1 for p in run.passes if n in p.servers)
        else:
            d = speed_pair(run, ref, n)
            row.decode_vs_ref = _ratio(d)
            if d is not None and d.basis == INTERLEAVED:  # tok/s of the pass they shared
                row.decode_tps, row.decode_ref_tps = d.mean_b, d.mean_a
            row.prompt_vs_ref = speed(run, ref, n, "prompt_tps_server")
            paired = _positions(run, ref, n)
            stats = distribution_stats(paired, run.options.quality.k)
            if stats is not None:
                _set_quality(row, stats)
                row.positions = stats.n
                row.prompts = stats.prompts
                row.positions_per_prompt = stats.per_prompt_max
                row.kld_median = stats.kld_percentiles.get("median")
                row.kld_p99 = stats.kld_percentiles.get("p99")
                row.delta_p = stats.delta_p.value
            by_cat: dict[str, list[float]] = {}
            for pid, ps in paired:
                by_cat.setdefault(categories.get(pid, "other"), []).extend(x.kld for x in ps)
            row.kld_by_category = {c: fmean(v) for c, v in sorted(by_cat.items()) if v}
            row.ppl_ratio = _ppl_ratio(run, ref, n)
            row.accuracy_vs_ref = _accuracy_diffs(run, ref, n)
        for acc in accuracy_by(run.outcomes.get(n, [])):
            row.accuracy[acc.group] = acc.accuracy.value
            row.accuracy_n[acc.group] = acc.n
        rows.append(row)
    return rows


def _ppl_ratio(run: LadderRun, a: str, b: str) -> float | None:
    if a not in run.text_forced or b not in run.text_forced:
        return None
    paired = dict(pair_runs(run.text_forced[a], run.text_forced[b]))
    ps = paired.get(TEXT_ID) or []
    if not ps:
        return None
    return math.exp(fmean(x.nll_other - x.nll_ref for x in ps))


def neighbour_rows(run: LadderRun) -> list[PairRow]:
    """Quants next to each other, and each context / KV cache rung against the same quant at
    the first context / with an f16 cache (core.ladder.lineup.Lineup.neighbours)."""
    out = []
    for a, b in run.lineup.neighbours():
        row = PairRow(a=a, b=b, decode=speed(run, a, b), accuracy=_accuracy_diffs(run, a, b))
        stats = distribution_stats(_positions(run, a, b), run.options.quality.k)
        if stats is not None:
            _set_quality(row, stats)
        out.append(row)
    return out


def _set_quality(row: QuantRow | PairRow, stats: DistributionStats) -> None:
    row.same_top1, row.same_top1_low, row.same_top1_high = (
        stats.same_top1.value, stats.same_top1.low, stats.same_top1.high)
    row.kld_mean, row.kld_low, row.kld_high = stats.kld.value, stats.kld.low, stats.kld.high


def interval_text(value: float | None, low: float | None, high: float | None, fmt: str,
                  none: str = "—") -> str:
    """"0.040 [0.020, 0.070]" (a 95% interval: say so beside it); the value alone without an
    interval; `none` without a value."""
    if value is None:
        return none
    if low is None or high is None:
        return format(value, fmt)
    return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def quality_scope(row: QuantRow) -> str:
    """Which positions a row's same-top-1 and KLD cover, e.g. "over the first 16 positions of
    6 prompts (96 positions)"; "" when not measured (or from an older file without prompts)."""
    if not row.positions or not row.prompts:
        return ""
    return positions_scope(row.positions, row.prompts, row.positions_per_prompt)


def by_name(rows: list[QuantRow]) -> Mapping[str, QuantRow]:
    return {r.name: r for r in rows}


def rows_from_run(results: RunResults) -> list[QuantRow]:
    """A comparison run (two or more servers, with or without a quality step) as ladder rows,
    the reference first: the same table whichever way the figures were measured. Speeds are
    paired per prompt within the run; quality comes from its quality section."""
    from quanttui.core.quality.section import QualitySection

    q = results.extra.get("quality")
    quality = msgspec.convert(q, QualitySection) if q is not None else None
    names = [s.name for s in results.servers if s.reachable]
    if not names:
        return []
    ref = quality.reference if quality is not None and quality.reference in names else names[0]
    categories = {r.prompt_id: r.category for r in results.records}
    hw = (results.hardware or {}).get("servers") or {}
    # one family for Holm: every server × category compared with the reference
    measurable = measurable_differences(
        {(p.other, x.group): x for p in quality.pairs for x in p.tasks.accuracy_diff}
        if quality is not None else {})
    rows = []
    for name in [ref] + [n for n in names if n != ref]:
        info = next(s for s in results.servers if s.name == name)
        mem = hw.get(name) or {}

        def num(key: str, mem: dict[str, Any] = mem) -> int | None:
            v = mem.get(key)
            return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        size = num("model_file") or info.model_size or 0
        dec = results.summary(name, "decode_tps_client")
        pro = results.summary(name, "prompt_tps_server")
        ttft = results.summary(name, "ttft_ms")
        row = QuantRow(
            name=name, quant=info.model_ftype, path=info.model_path or info.url,
            reference=name == ref, requantized_from=info.requantized_from, size_bytes=size,
            bits_per_weight=size * 8 / info.n_params if size and info.n_params else None,
            memory_private_peak=num("private_peak"), memory_model_pages_peak=num(
                "model_pages_peak"), memory_rss_peak=num("rss_peak"), vram_peak=num("vram_peak"),
            memory_breakdown=memory_breakdown(mem),
            decode_tps=dec.mean if dec else None, prompt_tps=pro.mean if pro else None,
            ttft_p50_ms=ttft.p50 if ttft else None)
        if name != ref:
            d = results.paired("decode_tps_client", ref, name)
            row.decode_vs_ref = _ratio(d)
            if d is not None and d.basis == INTERLEAVED:
                row.decode_tps, row.decode_ref_tps = d.mean_b, d.mean_a
            row.prompt_vs_ref = _ratio(results.paired("prompt_tps_server", ref, name))
        if quality is not None:
            for a in quality.accuracy:
                if a.server == name:
                    row.accuracy[a.group] = a.accuracy.value
                    row.accuracy_n[a.group] = a.n
            pair = next((p for p in quality.pairs if p.other == name), None)
            if pair is not None and pair.distribution is not None:
                dist = pair.distribution
                row.positions = dist.n_positions
                sizes = [pp.n for pp in dist.per_prompt if pp.n > 0]
                row.prompts, row.positions_per_prompt = len(sizes), max(sizes, default=0)
                if dist.same_top1 is not None:
                    t = dist.same_top1
                    row.same_top1, row.same_top1_low, row.same_top1_high = t.value, t.low, t.high
                if dist.kld is not None:
                    row.kld_mean, row.kld_low, row.kld_high = (dist.kld.value, dist.kld.low,
                                                               dist.kld.high)
                row.kld_median = (dist.kld_percentiles or {}).get("median")
                row.kld_p99 = (dist.kld_percentiles or {}).get("p99")
                row.delta_p = dist.delta_p.value if dist.delta_p else None
                by_cat: dict[str, list[tuple[int, float]]] = {}
                for pp in dist.per_prompt:
                    if pp.kld_mean is not None:
                        by_cat.setdefault(categories.get(pp.prompt_id, "other"), []).append(
                            (pp.n, pp.kld_mean))
                row.kld_by_category = {c: sum(n * v for n, v in xs) / sum(n for n, _ in xs)
                                       for c, xs in sorted(by_cat.items()) if sum(
                                           n for n, _ in xs)}
            if pair is not None:
                row.accuracy_vs_ref = {
                    x.group: Diff(value=x.diff.value, low=x.ci_low, high=x.ci_high, n=x.n,
                                  measurable=measurable[name, x.group])
                    for x in pair.tasks.accuracy_diff}
        rows.append(row)
    return rows
