"""Text gauges: a tokens/s sparkline with a zero baseline, and a horizontal bar."""

from __future__ import annotations

from collections.abc import Sequence

BARS = " ▁▂▃▄▅▆▇█"


def spark_rows(values: Sequence[float], width: int, height: int) -> list[str]:
    """Rows (top first) of a bar chart of the last `width` values, 0 at the bottom, scaled to
    the largest value shown. Fewer values than columns are right-aligned (time runs left to
    right, now at the right edge)."""
    width, height = max(width, 1), max(height, 1)
    shown = list(values[-width:])
    top = max(shown, default=0.0)
    levels = [0 if top <= 0 else round(v / top * 8 * height) for v in shown]
    pad = width - len(levels)
    rows = []
    for r in range(height - 1, -1, -1):
        lo = r * 8
        row = "".join(BARS[min(max(lv - lo, 0), 8)] for lv in levels)
        rows.append(" " * pad + row)
    return rows


def bar(fraction: float, width: int) -> tuple[str, str]:
    """(filled, empty) parts of a horizontal bar, in eighths of a cell."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    filled = "█" * full + ("▏▎▍▌▋▊▉"[part - 1] if part else "")
    return filled, "─" * (width - len(filled))
