"""A ladder at the top of the Markdown report: the verdict first, one summary table, the charts
a person would rather look at than read, and the usual questions answered in words."""

from __future__ import annotations

from typing import Any

import msgspec

from quanttui.core.hardware.breakdown import BREAKDOWN_HEAD, BREAKDOWN_NOTE, breakdown_table
from quanttui.core.hardware.reading import format_bytes
from quanttui.core.ladder.section import LadderSection
from quanttui.core.ladder.table import Diff, QuantRow, interval_text, quality_scope
from quanttui.core.ladder.verdict import Verdict, constraints_text, measured_memory
from quanttui.core.models.discovery import (
    BITS_PER_WEIGHT_NOTE,
    REQUANTIZED_MARK,
    requantized_legend,
)
from quanttui.core.quality.accuracy import share_text
from quanttui.core.reports.charts import bar_chart

ACCURACY_NOTE = (
    "accuracy: the reference's share of items right [95% Wilson interval]; the others' "
    "difference to it; ≈ not measurable: an exact McNemar test that does not survive Holm's "
    "correction over every accuracy comparison in this report (docs/metrics.md).")


def section_of(extra: dict[str, Any]) -> LadderSection | None:
    data = extra.get("ladder")
    return None if data is None else msgspec.convert(data, LadderSection)


def _ratio(d: Diff | None) -> str:
    return "—" if d is None else d.ratio_text(noise=" ≈")


def _acc(row: QuantRow) -> str:
    if row.reference:
        ns = row.accuracy_n
        return ", ".join(f"{c} {share_text(round(v * ns.get(c, 0)), ns.get(c, 0))}"
                         for c, v in sorted(row.accuracy.items())) or "n/a"
    parts = []
    for c, d in sorted(row.accuracy_vs_ref.items()):
        mark = "" if d.measurable else " ≈"
        parts.append(f"{c} {d.value:+.0%}{mark}")
    return ", ".join(parts) or "n/a"


def _f(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def decode_cell(r: QuantRow) -> str:
    """A quant's decode tok/s beside the reference's in the same pairing (the ratio's two
    terms), or the reference's mean over its passes."""
    if r.decode_tps is None:
        return "—"
    if r.decode_ref_tps is not None:
        return f"{r.decode_tps:.1f} (ref {r.decode_ref_tps:.1f})"
    if r.reference and r.decode_passes > 1:
        return f"{r.decode_tps:.1f} (mean of {r.decode_passes} passes)"
    return f"{r.decode_tps:.1f}"


def summary_table(sec: LadderSection) -> list[str]:
    ref = next(r for r in sec.rows if r.reference)
    head = ["quant", "file size", "Δsize", "bits/w", "memory", "decode t/s", "×speed vs ref",
            "same-top-1 [95%]", f"KLD@{sec.k} [95%]", "PPL ratio", "accuracy (Δ vs ref)"]
    rows = []
    for r in sec.rows:
        name = f"**{r.name}**" if r.name == sec.verdict.recommended else r.name
        name += " (ref)" if r.reference else ""
        name += f" {REQUANTIZED_MARK}" if r.requantized_from else ""
        dsize = "—" if r.reference else f"{r.size_bytes / ref.size_bytes - 1:+.0%}"
        rows.append([
            name, format_bytes(r.size_bytes), dsize, _f(r.bits_per_weight, ".2f"),
            "—" if (mem := measured_memory(r)) is None else format_bytes(mem),
            decode_cell(r),
            "—" if r.reference else _ratio(r.decode_vs_ref),
            "—" if r.reference else interval_text(r.same_top1, r.same_top1_low,
                                                  r.same_top1_high, ".3f"),
            "—" if r.reference else interval_text(r.kld_mean, r.kld_low, r.kld_high, ".4f"),
            "—" if r.reference else _f(r.ppl_ratio, ".3f"), _acc(r)])
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(x) + " |" for x in rows]
    out += ["", "≈ within noise (the 95% interval covers no difference); decode t/s: a quant's "
            "beside the reference's in the pass they shared (ref …), whose ratio ×speed is; the "
            "reference's own over all its passes; memory: peak private memory plus the model's "
            "resident pages; bits/w: " + BITS_PER_WEIGHT_NOTE + "."]
    if requantized := [r.requantized_from for r in sec.rows if r.requantized_from]:
        out[-1] += " " + requantized_legend(requantized) + "."
    scope = next((s for r in sec.rows if (s := quality_scope(r))), "")
    if scope:
        out += ["", f"same-top-1 and KLD@{sec.k}: means {scope}, [95% interval] over prompts "
                "(positions of one prompt move together; docs/metrics.md)."]
    return out + depth_table(sec)


def depth_table(sec: LadderSection) -> list[str]:
    """A ladder over contexts / KV cache types: each rung's cache filled by one prompt, what
    that took, and the memory measured with it beside the fit check's prediction; [] for a
    plain ladder."""
    if not any(r.ctx_size is not None or r.memory_predicted is not None for r in sec.rows):
        return []
    head = ["rung", "context", "KV cache", "filled to", "TTFT at depth", "prompt t/s",
            "decode t/s at depth", "memory", "predicted (fit check)", "error"]
    rows = []
    for r in sec.rows:
        mem = measured_memory(r)
        rows.append([
            r.name, "—" if r.ctx_size is None else str(r.ctx_size), r.cache_type or "f16",
            "—" if r.depth_tokens is None else f"{r.depth_tokens} tokens",
            "—" if r.depth_ttft_ms is None else f"{r.depth_ttft_ms / 1000:.2f} s",
            _f(r.depth_prompt_tps, ".1f"), _f(r.depth_decode_tps, ".1f"),
            "—" if mem is None else format_bytes(mem),
            "—" if r.memory_predicted is None else format_bytes(r.memory_predicted),
            _f(r.memory_predicted_error, "+.0%")])
    out = ["", "At depth:", "",
           "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(x) + " |" for x in rows]
    out += ["", "filled to: one prompt of a fixed text evaluated from an empty cache before the "
            "rung's own prompts; TTFT at depth: that prompt's time to first token; decode t/s "
            "at depth: the tokens generated right after it (as llama-bench's tg at -d); "
            "memory: peak with that cache, beside the fit check's prediction (error: "
            "predicted / measured − 1; docs/metrics.md)."]
    return out


def _scatter(sec: LadderSection, width: int = 64) -> str:
    """Quality loss against size: each quant a numbered marker (names beside the points hid
    the points near them), the key under the chart, the recommended one starred; KLD can't be
    negative, so the axis starts at 0."""
    import plotext as plt
    from plotext._figure import _figure_class

    pts = [(r.size_bytes / 1e6, 0.0 if r.reference else (r.kld_mean or 0.0), r.name)
           for r in sec.rows if r.reference or r.kld_mean is not None]
    fig = _figure_class()
    fig.theme("clear")
    fig.plotsize(width, 18)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    dx = (max(xs) - min(xs)) or max(xs) * 0.1 or 1.0
    fig.xlim(min(xs) - 0.1 * dx, max(xs) + 0.1 * dx)
    fig.ylim(0.0, 1.1 * (max(ys) or 0.01))
    for i, (x, y, _) in enumerate(pts, 1):
        fig.scatter([x], [y], marker=str(i % 10))
    fig.xlabel("file size (MB)")
    fig.ylabel(f"KLD@{sec.k}")
    fig.title("quality loss against size")
    ref = next((r.name for r in sec.rows if r.reference), None)
    key = "   ".join(f"{i % 10} {name}" + (" (ref)" if name == ref else "")
                     + (" ★ recommended" if name == sec.verdict.recommended else "")
                     for i, (_, _, name) in enumerate(pts, 1))
    return str(plt.uncolorize(fig.build())).rstrip() + "\n" + key


def _categories(sec: LadderSection, width: int = 64) -> str | None:
    """Per-category degradation (KLD by prompt category): one labelled bar per category and
    quant, the most sensitive category first (bars of one glyph read without colours)."""
    rows = [r for r in sec.rows if r.kld_by_category]
    if not rows:
        return None
    worst = max(rows, key=lambda r: sum(r.kld_by_category.values()))
    cats = sorted(worst.kld_by_category, key=lambda c: -worst.kld_by_category[c])
    labels, values = [], []
    for c in cats:
        for r in rows:
            if c in r.kld_by_category:
                labels.append(f"{c} {r.name}")
                values.append(r.kld_by_category[c])
    # plotext draws the first bar at the bottom: reversed, the most sensitive is on top
    return bar_chart(f"KLD@{sec.k} by prompt category (most sensitive first)", labels[::-1],
                     values[::-1], width)


def verdict_lines(v: Verdict) -> list[str]:
    """The verdict as a report leads with it: the answer, its constraints, what was within
    noise, what the figures can't show."""
    lines = ["## Verdict", "", f"**{v.reason}**", "",
             f"Constraints: {constraints_text(v)}."]
    if v.within_noise:
        lines += ["", "Within noise:"] + [f"- {x}" for x in v.within_noise]
    if v.warnings:
        lines += ["", "Warnings:"] + [f"- {x}" for x in v.warnings]
    return lines


def render_ladder(sec: LadderSection, header: str) -> list[str]:
    v = sec.verdict
    lines = [header, "", *verdict_lines(v)]
    lines += ["", "## Summary", "", *summary_table(sec)]
    rows, notes = breakdown_table([(r.name, r.memory_breakdown) for r in sec.rows])
    if rows or notes:
        lines += ["", "### Where the memory goes", ""]
        if rows:
            head = ["quant", *BREAKDOWN_HEAD[1:]]
            lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
            lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
        lines += [f"- {n}" for n in notes] + ([""] if notes else []) + [BREAKDOWN_NOTE]
    if any(r.accuracy_vs_ref for r in sec.rows):
        lines += ["", ACCURACY_NOTE]
    lines += ["", "```text", _scatter(sec), "```"]
    chart = _categories(sec)
    if chart:
        lines += ["", "```text", chart, "```"]
    lines += ["", "## In words", ""] + [f"- {a}" for a in sec.answers]
    if sec.neighbours:
        lines += ["", "## Neighbours", ""]
        head = ["pair", "decode ×", "same-top-1 [95%]", f"KLD@{sec.k} [95%]", "accuracy Δ"]
        rows = [[f"{p.b} vs {p.a}", _ratio(p.decode),
                 interval_text(p.same_top1, p.same_top1_low, p.same_top1_high, ".3f"),
                 interval_text(p.kld_mean, p.kld_low, p.kld_high, ".4f"),
                 ", ".join(f"{c} {d.value:+.0%}{'' if d.measurable else ' ≈'}"
                           for c, d in sorted(p.accuracy.items())) or "n/a"]
                for p in sec.neighbours]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    if v.failing:
        lines += ["", "Constraints failed:"] + [f"- {n}: {', '.join(f)}"
                                                for n, f in v.failing.items()]
    if sec.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in sec.notes]
    lines += ["", "---", ""]
    return lines
