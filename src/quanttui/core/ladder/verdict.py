"""The answer: which quant to run under the user's constraints, and why, in a sentence or two.

A quant qualifies when it fits the memory budget (its measured peak: private memory plus the
model's resident pages, else RSS, else the file size), loses no more quality than allowed
against the reference (KLD@K and same-top-1 on teacher-forced positions, and task accuracy
at most `max_accuracy_drop` lower in each category, by the interval: `_accuracy_fails`), and is
at least as fast as asked (when a minimum speed-up is set). Of those,
the smallest file is recommended (the file is what a quant changes; measured memory also holds
the KV cache and buffers, the same for every quant, and moves by a few MB between runs), the
faster within 2% of its size. The reference qualifies on quality by definition; it is
recommended when nothing smaller does. A quant not measured (for quality, or at all: a
stopped ladder, a server that did not start) does not qualify, and the reason says what is
missing rather than calling it a failure. KLD and same-top-1 are judged by their 95% intervals
over prompts: "KLD ≤ max" holds when the interval's upper end is ≤ max, fails when its lower end
is above; an interval across the limit (or none: one prompt, an older file) is "not yet
decided", a step still to run (more prompts) like a missing measurement.

A ladder over contexts and KV cache types (core.ladder.lineup.expand) is decided at each context
on its own (`decide_at_contexts`): the rungs measured there, memory as measured there, the
reference quant's f16 rung there standing for the reference. Of the quants that qualify the
smallest file wins as above, and of its cache types the most precise that fits (f16 before
q8_0 before q4_0): the weights are the choice, the cache type what lets them fit.
"""

from __future__ import annotations

import msgspec

from quanttui.core.hardware.reading import format_bytes as mb
from quanttui.core.ladder.lineup import ctx_label
from quanttui.core.ladder.table import Diff, PairRow, QuantRow
from quanttui.core.ladder.table import interval_text as _ci

DEFAULT_MAX_KLD = 0.05
DEFAULT_MIN_SAME_TOP1 = 0.90
DEFAULT_MAX_ACCURACY_DROP = 0.10  # task accuracy a quant may lose per category (share of items)
UNMEASURED = "quality not measured"  # a quant not shown to keep quality is not recommended
NOT_RUN = "not measured"  # nothing measured at all: the ladder stopped, or it did not start
MISSING = (UNMEASURED, NOT_RUN)  # steps still to run rather than failures
UNDECIDED = "not yet decided: measure more"  # an interval across a quality limit (a step too)


def _pending(reason: str) -> bool:
    """A reason that says what is still to measure rather than a failure."""
    return reason in MISSING or reason.startswith(UNDECIDED)


class Constraints(msgspec.Struct, kw_only=True):
    memory_budget_bytes: int | None = None  # None: no limit (default: RAM free at the start)
    min_speedup: float | None = None  # decode ratio to the reference
    max_kld: float = DEFAULT_MAX_KLD
    min_same_top1: float = DEFAULT_MIN_SAME_TOP1
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    ctx_size: int | None = None  # the context the memory was measured at (None: not stated)

    def describe(self) -> str:
        parts = [] if self.ctx_size is None else [f"at {ctx_label(self.ctx_size)} context "
                                                  f"(-c {self.ctx_size})"]
        parts += [f"KLD ≤ {self.max_kld:g}", f"same-top-1 ≥ {self.min_same_top1:g}",
                 f"task accuracy at most {self.max_accuracy_drop:.0%} lower in each category"]
        if self.memory_budget_bytes is not None:
            parts.append(f"memory ≤ {mb(self.memory_budget_bytes)}")
        if self.min_speedup is not None:
            parts.append(f"decode ≥ ×{self.min_speedup:g} the reference")
        return ", ".join(parts)


class ContextVerdict(msgspec.Struct, kw_only=True):
    """The verdict at one context of a ladder over contexts / KV cache types."""

    ctx_size: int
    recommended: str | None
    reason: str


class Verdict(msgspec.Struct, kw_only=True):
    recommended: str | None  # None: nothing meets the constraints
    reason: str  # one or two sentences
    within_noise: list[str]  # what the data could not tell apart
    failing: dict[str, list[str]]  # quant -> the constraints it fails, in words
    constraints: Constraints
    warnings: list[str] = []  # what the figures can't show, e.g. a category at its floor
    # several contexts measured: the verdict at each (recommended: the last context's)
    by_context: list[ContextVerdict] = []


def measured_memory(row: QuantRow) -> int | None:
    """Peak memory measured here: private + model pages, else RSS; None when not sampled."""
    if row.memory_private_peak is not None and row.memory_model_pages_peak is not None:
        return row.memory_private_peak + row.memory_model_pages_peak
    return row.memory_rss_peak or None


def footprint(row: QuantRow) -> int:
    """Memory a quant needs here: measured, else its file (the least it can take)."""
    return measured_memory(row) or row.size_bytes


def _fails(row: QuantRow, c: Constraints) -> list[str]:
    out = []
    if c.memory_budget_bytes is not None and footprint(row) > c.memory_budget_bytes:
        out.append(f"memory {mb(footprint(row))} > {mb(c.memory_budget_bytes)}")
    if row.reference:
        return out
    if row.decode_tps is None and row.kld_mean is None and not row.accuracy:
        return [NOT_RUN]
    if row.kld_mean is None or row.same_top1 is None:
        out.append(UNMEASURED)
    else:
        out += _quality_fails(row, c)
    out += _accuracy_fails(row, c, settled=any(not _pending(x) for x in out))
    if c.min_speedup is not None:
        d = row.decode_vs_ref
        if d is None:
            out.append("speed not measured")
        elif d.high is not None and d.high < c.min_speedup:  # the whole interval below
            out.append(f"decode {d.ratio_text()} < ×{c.min_speedup:g}")
        elif d.low is None or d.low < c.min_speedup:
            # the interval straddles the limit: more repetitions (--until-decided) tell
            out.append(f"{UNDECIDED} (decode {d.ratio_text()} against ≥ ×{c.min_speedup:g})")
    return _one_undecided(out)


def _one_undecided(reasons: list[str]) -> list[str]:
    """Every "not yet decided (…)" of a quant said once, with what is open inside."""
    open_ = [r.removeprefix(f"{UNDECIDED} (").removesuffix(")") for r in reasons
             if r.startswith(f"{UNDECIDED} (")]
    if len(open_) < 2:
        return reasons
    rest = [r for r in reasons if not r.startswith(f"{UNDECIDED} (")]
    return [*rest, f"{UNDECIDED} ({'; '.join(open_)})"]


def _quality_fails(row: QuantRow, c: Constraints) -> list[str]:
    """KLD and same-top-1 against their limits, decided by the 95% intervals (module doc)."""
    assert row.kld_mean is not None and row.same_top1 is not None
    out, undecided = [], []
    kld = "KLD " + _ci(row.kld_mean, row.kld_low, row.kld_high, ".3f")
    if row.kld_low is not None and row.kld_low > c.max_kld:
        out.append(f"{kld} > {c.max_kld:g}")
    elif row.kld_high is None or row.kld_high > c.max_kld:
        undecided.append(f"{kld} against ≤ {c.max_kld:g}")
    top1 = "same-top-1 " + _ci(row.same_top1, row.same_top1_low, row.same_top1_high, ".2f")
    if row.same_top1_high is not None and row.same_top1_high < c.min_same_top1:
        out.append(f"{top1} < {c.min_same_top1:g}")
    elif row.same_top1_low is None or row.same_top1_low < c.min_same_top1:
        undecided.append(f"{top1} against ≥ {c.min_same_top1:g}")
    if undecided and not out:  # one clear failure settles it: "undecided" beside it adds nothing
        out.append(f"{UNDECIDED} ({'; '.join(undecided)})")
    return out


def _accuracy_fails(row: QuantRow, c: Constraints, settled: bool = False) -> list[str]:
    """Task accuracy by a non-inferiority margin M (`max_accuracy_drop`), per category: it
    passes when the 95% interval of the difference to the reference starts at or above −M,
    fails when the loss is measurable (Holm over the report, core.quality.accuracy) and the
    whole interval lies below −M, and otherwise can't tell with the items it had: a step to
    run (more items), like a missing measurement, unless the quant already fails (`settled`).
    Not measured (no task items): no accuracy constraint."""
    m = c.max_accuracy_drop
    worse, unsure = [], []
    for cat, d in sorted(row.accuracy_vs_ref.items()):
        if d.low is not None and d.low >= -m:
            continue
        if d.measurable and d.high is not None and d.high < -m:
            worse.append(f"{cat} {d.points_text()}")
        else:
            unsure.append((d.n, f"{cat} {d.points_text()}"))
    if worse:
        return [f"accuracy more than {m:.0%} lower: " + ", ".join(worse)]
    if not unsure or settled:
        return []
    ns = sorted({n for n, _ in unsure})
    items = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    return [f"{UNDECIDED} (accuracy: can't tell with {items} items whether it is at most "
            f"{m:.0%} lower in " + ", ".join(t for _, t in unsure) + ")"]


def accuracy_warnings(rows: list[QuantRow]) -> list[str]:
    """Categories where the reference scored none or all of its items: there no quant can
    score lower (a loss can't show) or higher (a gain can't show)."""
    ref = next(r for r in rows if r.reference)
    out = []
    for cat, v in sorted(ref.accuracy.items()):
        n = ref.accuracy_n.get(cat, 0)
        if n and v == 0.0:
            out.append(f"{ref.name} scored 0/{n} in {cat}: no quant can score lower, so that "
                       "category can't show a loss (its items are too hard for this model)")
        elif n and v == 1.0:
            out.append(f"{ref.name} scored {n}/{n} in {cat}: no quant can score higher, so "
                       "that category can't show a gain")
    return out


def _why_not(rows: list[QuantRow], failing: dict[str, list[str]]) -> str:
    """Why each of `rows` is out, in words; quants not yet measured (for quality, or at all)
    are named together, since that is a step still to run rather than a failure, and so is a
    quant not yet decided (its own words: which interval, against which limit)."""
    parts = []
    missing: dict[str, list[str]] = {m: [] for m in MISSING}
    for r in rows:
        f = [x for x in failing[r.name] if not _pending(x)]
        if f:
            parts.append(f"{r.name} fails {', '.join(f)}")
        parts += [f"{r.name} {x}" for x in failing[r.name] if x.startswith(UNDECIDED)]
        for m in MISSING:
            if m in failing[r.name]:
                missing[m].append(r.name)
    if missing[UNMEASURED]:
        parts.append(f"{UNMEASURED} for {', '.join(missing[UNMEASURED])}")
    if missing[NOT_RUN]:
        parts.append(f"{', '.join(missing[NOT_RUN])} {NOT_RUN}")
    return "; ".join(parts)


def _label(row: QuantRow) -> str:
    """"Q4_K_M with a q8_0 KV cache" for a rung of a context / cache ladder, else its name."""
    if row.quant_name is None:
        return row.name
    if row.cache_type in (None, "f16"):
        return row.quant_name
    return f"{row.quant_name} with a {row.cache_type} KV cache"


CACHE_ORDER = ("f32", "f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "iq4_nl", "q4_0")


def _cache_rank(row: QuantRow) -> int:
    c = row.cache_type or "f16"
    return CACHE_ORDER.index(c) if c in CACHE_ORDER else len(CACHE_ORDER)


def _smaller(r: QuantRow, than: QuantRow) -> bool:
    """A smaller file, or the same file with a less precise KV cache (it takes less memory)."""
    return r.size_bytes < than.size_bytes or (
        r.size_bytes == than.size_bytes and r.path == than.path
        and _cache_rank(r) > _cache_rank(than))


def _speed_words(d: Diff | None, ref: str) -> str:
    if d is None:
        return ""
    return f"decode {d.ratio_text()} vs {ref}" + ("" if d.measurable else ", within noise")


def _noise(rows: list[QuantRow], pairs: list[PairRow], ref: str) -> list[str]:
    out = []
    for r in rows:
        d = r.decode_vs_ref
        if not r.reference and d is not None and d.low is not None and not d.measurable:
            out.append(f"{r.name} vs {ref} decode speed: no measurable difference "
                       f"({d.ratio_text()}, n={d.n})")
        flat = [x for x in r.accuracy_vs_ref.values() if not x.measurable]
        if not r.reference and flat:
            n = max(x.n for x in r.accuracy_vs_ref.values())
            lows = [x.low for x in flat if x.low is not None]
            unseen = f"; a loss up to {-min(lows):.0%} can't be ruled out" if lows else ""
            cats = sorted(c for c, x in r.accuracy_vs_ref.items() if not x.measurable)
            out.append(f"{r.name} vs {ref} accuracy: no measurable difference in "
                       f"{', '.join(cats)} (up to {n} items each{unseen})")
    for p in pairs:
        d = p.decode
        if d is not None and d.low is not None and not d.measurable and ref not in (p.a, p.b):
            out.append(f"{p.b} vs {p.a} decode speed: no measurable difference "
                       f"({d.ratio_text()}, n={d.n})")
    return out


def decide(rows: list[QuantRow], pairs: list[PairRow], c: Constraints,
           versus: str | None = None) -> Verdict:
    """`versus`: the rung the rows' ratios were measured against, when `rows` stand in for
    it with another reference (a context of its own, `decide_at_contexts`)."""
    ref = next(r for r in rows if r.reference)
    vs = versus or ref.name
    failing = {r.name: f for r in rows if (f := _fails(r, c))}
    ok = [r for r in rows if r.name not in failing]
    noise = _noise(rows, pairs, vs)
    if not ok:
        worst = "; ".join(f"{n}: {', '.join(f)}" for n, f in failing.items())
        return Verdict(recommended=None, within_noise=noise, failing=failing, constraints=c,
                       reason=f"No quant meets the constraints ({c.describe()}). {worst}.",
                       warnings=accuracy_warnings(rows))
    ok.sort(key=lambda r: (r.size_bytes, _cache_rank(r), -(r.decode_tps or 0.0)))
    best = ok[0]
    for r in ok[1:]:  # a quant within 2% of the smallest's size that is faster (same cache)
        if r.size_bytes <= best.size_bytes * 1.02 and (r.decode_tps or 0) > (
                best.decode_tps or 0) and _cache_rank(r) == _cache_rank(best):
            best = r
    if best.reference:
        smaller = [r for r in rows if _smaller(r, ref) and r.name in failing]
        why = _why_not(smaller, failing)
        if smaller and all(_pending(x) for r in smaller for x in failing[r.name]):
            what = ("quality is measured" if all(failing[r.name] == [UNMEASURED]
                                                 for r in smaller) else "more is measured")
            reason = (f"Run {_label(ref)} (the reference) until {what}: no smaller quant is "
                      f"shown to keep the quality asked for ({why}); measure to see whether "
                      "one does.")
        else:
            reason = (f"Run {_label(ref)} (the reference): nothing smaller keeps the quality "
                      "asked for" + (f" — {why}." if why else "."))
    else:
        saved = 1 - best.size_bytes / ref.size_bytes if ref.size_bytes else 0.0
        bits = [f"{mb(best.size_bytes)} on disk"
                + (f", {saved:.0%} smaller than {_label(ref)}" if saved > 0 else "")
                + f", {mb(footprint(best))} in memory"]
        if best.kld_mean is not None and best.same_top1 is not None:
            bits.append(f"KLD {_ci(best.kld_mean, best.kld_low, best.kld_high, '.3f')} ≤ "
                        f"{c.max_kld:g} and same-top-1 "
                        f"{_ci(best.same_top1, best.same_top1_low, best.same_top1_high, '.2f')}"
                        f" ≥ {c.min_same_top1:g} (95% intervals over prompts)")
        speed = _speed_words(best.decode_vs_ref, vs)
        if speed:
            bits.append(speed)
        reason = (f"Run {_label(best)}: the smallest quant that meets the constraints "
                  f"({'; '.join(bits)}).")
        lower = [r for r in rows if _smaller(r, best) and r.name in failing]
        if lower:
            reason += f" Smaller ones are out: {_why_not(lower, failing)}."
    return Verdict(recommended=best.name, reason=reason, within_noise=noise, failing=failing,
                   constraints=c, warnings=accuracy_warnings(rows))


def decide_at_contexts(rows: list[QuantRow], pairs: list[PairRow], c: Constraints) -> Verdict:
    """`decide` at each context measured (module doc), said context by context: "At 32k
    context within 600 MB: run Q4_K_M with a q8_0 KV cache (…). Q8_0 needs 700 MB there."
    One context (or none stated): `decide`, its constraints naming the context."""
    ctxs = list(dict.fromkeys(r.ctx_size for r in rows if r.ctx_size is not None))
    if len(ctxs) < 2:
        return decide(rows, pairs, c if not ctxs else msgspec.structs.replace(
            c, ctx_size=ctxs[0]))
    ref = next(r for r in rows if r.reference)
    parts: list[ContextVerdict] = []
    failing: dict[str, list[str]] = {}
    noise: list[str] = []
    for ctx in ctxs:
        here = [r for r in rows if r.ctx_size == ctx]
        if not any(r.reference for r in here):  # the reference quant's f16 rung stands in
            stand = next((r for r in here if r.quant_name == ref.quant_name
                          and r.cache_type in (None, "f16")), None)
            if stand is None:
                continue
            here = [msgspec.structs.replace(r, reference=True) if r is stand else r
                    for r in here]
        names = {r.name for r in here}
        v = decide(here, [p for p in pairs if p.a in names and p.b in names],
                   msgspec.structs.replace(c, ctx_size=ctx), versus=ref.name)
        failing.update(v.failing)
        noise += [x for x in v.within_noise if x not in noise]
        where = f"At {ctx_label(ctx)} context" + (
            f" within {mb(c.memory_budget_bytes)}" if c.memory_budget_bytes is not None else "")
        reason = f"{where}: {v.reason[:1].lower()}{v.reason[1:]}"
        over = [f"{_label(r)} needs {mb(footprint(r))} there" for r in here
                if any(x.startswith("memory ") for x in v.failing.get(r.name, []))]
        if over:
            reason += " " + "; ".join(over) + "."
        parts.append(ContextVerdict(ctx_size=ctx, recommended=v.recommended, reason=reason))
    if not parts:
        return decide(rows, pairs, c)
    return Verdict(recommended=parts[-1].recommended, reason=" ".join(p.reason for p in parts),
                   within_noise=noise, failing=failing, constraints=c,
                   warnings=accuracy_warnings(rows), by_context=parts)


def constraints_text(v: Verdict) -> str:
    """The constraints line: naming the context, or each context decided on its own."""
    if not v.by_context:
        return v.constraints.describe()
    ctxs = " and ".join(f"{ctx_label(p.ctx_size)} (-c {p.ctx_size})" for p in v.by_context)
    return f"at each of {ctxs} context, decided on its own, {v.constraints.describe()}"
