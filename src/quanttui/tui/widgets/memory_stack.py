"""A server's memory as a stacked bar: the parts llama-server's log names (core.hardware.breakdown)
for a server quanttui started, or the two measured figures (model pages, private) for one it
only attached to, which has no log to read. Every server's bar is drawn on one scale, so bar
lengths compare across columns.

Each part has a glyph as well as a colour, so the bar reads in a terminal without colours and in
a text capture: █ weights mapped from the model file (its tensors), ▓ weights repacked or loaded
(private copies), ▒ KV cache written, ░ compute and output buffers, context checkpoints and the
runtime allowance, ─ rest: measured beyond the parts (not in the log).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from quanttui.core.hardware.breakdown import MemoryBreakdown
from quanttui.core.hardware.reading import format_bytes

Run = tuple[str, str | None]

LEGEND = ("█ weights mapped from the model file, ▓ weights repacked/loaded for this CPU, "
          "▒ KV cache written, ░ other: compute/output buffers, checkpoints, runtime, ─ rest: "
          "measured beyond the log's parts; numbers in MB; one scale for every server")


@dataclass(frozen=True)
class Part:
    label: str
    size: int
    glyph: str
    style: str | None


@dataclass(frozen=True)
class Stack:
    """One server's bar: its parts in order, the length they are drawn to (bytes), whether
    they come from the log, and what the tooltip says."""

    parts: tuple[Part, ...]
    total: int
    from_log: bool
    tip: str


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def stack_of(hw_server: Mapping[str, Any]) -> Stack | None:
    """The bar for a server's entry in a run's hardware section; None when nothing was
    measured or stored."""
    raw = hw_server.get("memory_breakdown")
    bd = msgspec.convert(raw, MemoryBreakdown) if isinstance(raw, dict) else None
    if bd is not None and bd.why is None and bd.parts_total:
        other = sum(v or 0 for v in (bd.compute, bd.output, bd.checkpoints, bd.runtime))
        beyond = max(0, bd.difference or 0)
        parts = tuple(p for p in (
            Part("mapped", bd.weights_mapped or 0, "█", "spark"),
            Part("repacked", (bd.weights_repacked or 0) + (bd.weights_loaded or 0), "▓",
                 "warn"),
            Part("KV", bd.kv_cache or 0, "▒", "ok"),
            Part("other", other, "░", None),
            Part("rest", beyond, "─", "muted")) if p.size > 0)
        total = max(bd.measured or 0, bd.parts_total)
        tip = (f"memory: {format_bytes(bd.measured) if bd.measured else 'n/a'} measured "
               f"(private + model pages, peaks); parts from llama-server's log: "
               + ", ".join(f"{p.label} {format_bytes(p.size)}" for p in parts)
               + (f"; measured − parts {bd.difference_text()}" if bd.difference_text() else ""))
        return Stack(parts, total, True, tip + "\n" + LEGEND)
    private = _int(hw_server.get("private_peak"))
    pages = _int(hw_server.get("model_pages_peak"))
    if not private and not pages:
        return None
    parts = tuple(p for p in (Part("model pages", pages or 0, "█", "spark"),
                              Part("private", private or 0, "░", None)) if p.size > 0)
    why = bd.why if bd is not None and bd.why else (
        "no breakdown stored: only the measured figures are known")
    tip = (f"memory: model pages {format_bytes(pages) if pages is not None else 'n/a'}, "
           f"private {format_bytes(private) if private is not None else 'n/a'} (peaks); "
           f"{why}")
    return Stack(parts, sum(p.size for p in parts), False, tip + "\n" + LEGEND)


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f}"


def bar_width(width: int) -> int:
    """The bar's cells in a column `width` wide (the narrowest column's, for every column)."""
    return max(8, min(width // 2, 20))


def bar_forms(stack: Stack, scale: int, bar_w: int) -> tuple[list[Run], ...]:
    """The row, longest form first: a bar `bar_w` cells long for `scale` bytes (the same for
    every column), then the total and as much of the legend as fits."""
    cells = max(1, round(stack.total / scale * bar_w)) if scale > 0 else 0
    bar: list[Run] = []
    acc, drawn = 0, 0
    for p in stack.parts:  # cumulative rounding: the parts add up to the bar's length
        acc += p.size
        end = round(acc / stack.total * cells) if stack.total else 0
        if end > drawn:
            bar.append((p.glyph * (end - drawn), p.style))
            drawn = end
    bar.append((" " * (bar_w - drawn), None))
    total = f" {format_bytes(stack.total)}"
    tails: tuple[str, ...]
    if stack.from_log:
        words = " " + " ".join(f"{p.glyph}{p.label} {_mb(p.size)}" for p in stack.parts)
        glyphs = " " + " ".join(f"{p.glyph}{_mb(p.size)}" for p in stack.parts)
        tails = (total + words, total + glyphs, total)
    else:
        tails = (total + ": █ model pages ░ private · attached, no log: parts unknown",
                 total + " · no log: parts unknown", total + " · no log", total)
    return tuple([*bar, (t, None)] for t in tails)
