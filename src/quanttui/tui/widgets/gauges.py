"""Text gauges: a tokens/s sparkline with a zero baseline and a fixed or own scale, the run's
series fitted to a width, and a horizontal bar."""

from __future__ import annotations

import functools
from collections.abc import Sequence

BARS = " ▁▂▃▄▅▆▇█"


def spark_rows(values: Sequence[float], width: int, height: int, top: float | None = None,
               *, left: bool = False) -> list[str]:
    """Rows (top first) of a bar chart of the last `width` values, 0 at the bottom, scaled to
    `top` (default: the largest value shown; a shared `top` puts several charts on one scale).
    Fewer values than columns are right-aligned (now at the right edge), or with `left`
    left-aligned (the run's start at the left edge)."""
    width, height = max(width, 1), max(height, 1)
    shown = list(values[-width:])
    if top is None:
        top = max(shown, default=0.0)
    eighths = 8 * height
    # each column's height in eighths of a cell, as one character per column: every row is
    # then one `str.translate` of it (the chart is redrawn every frame of a run)
    levels = "".join([chr(0 if top <= 0 else min(round(v / top * eighths), eighths))
                      for v in shown])
    pad = " " * (width - len(levels))
    rows = []
    for r in range(height - 1, -1, -1):
        row = levels.translate(_row_table(r, eighths))
        rows.append(row + pad if left else pad + row)
    return rows


@functools.lru_cache(maxsize=128)
def _row_table(r: int, eighths: int) -> dict[int, str]:
    """For row `r` from the bottom of a chart `eighths` high: a column's height in eighths (as
    a code point) → its character in that row."""
    lo = r * 8
    return {lv: BARS[min(max(lv - lo, 0), 8)] for lv in range(eighths + 1)}


def fit_series(values: Sequence[float], width: int, span: int | None = None
               ) -> list[float]:
    """The whole series in at most `width` columns: each column the mean of an equal run of
    consecutive values (the last column may hold fewer), so a rate stays a rate. `span`: the
    length the run of values per column is chosen for (the longest of several series drawn
    on one time axis; default: this one's)."""
    n = len(values)
    width = max(width, 1)
    group = max(-(-max(span or n, n) // width), 1)
    if group == 1:
        return [float(v) for v in values]
    return [sum(values[i:i + group]) / len(values[i:i + group]) for i in range(0, n, group)]


def rate_label(top: float) -> str:
    """The scale of a tokens/s chart: "60 t/s", "1.2k t/s"."""
    return f"{top / 1000:.1f}k t/s" if top >= 1000 else f"{top:.0f} t/s"


def bar(fraction: float, width: int) -> tuple[str, str]:
    """(filled, empty) parts of a horizontal bar, in eighths of a cell."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    filled = "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")
    return filled, "─" * (width - len(filled))
