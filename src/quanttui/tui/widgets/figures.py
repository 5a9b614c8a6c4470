"""One server's figures block: header, tokens/s sparkline, speed lines, memory line, and (once
a run has stored it) the memory as a stacked bar.

It changes every second while a run is on, so it is a Line API widget whose rows are built from
styled runs (no markup to parse) and cached one by one: a new sparkline column redraws the
sparkline rows, not the header. Colours come from component classes (theme variables).

A row may come in several forms, longest first: the first that fits the block's width is drawn
(a narrow column with three or four servers gets the short form, never a line cut mid-figure
when a shorter form exists); the last form is cut with "…" if even it is too wide.

The sparkline is drawn on a scale it is given (the same for every server, so two charts
compare) with the scale in a gutter on its left: its top value ("60 t/s") on the top row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from quanttui.tui.widgets.gauges import spark_rows
from quanttui.tui.widgets.memory_stack import Stack, bar_forms

# A run of text and its style key: None (plain), "b" (bold), or a component class suffix.
Run = tuple[str, str | None]
Runs = list[Run]
Forms = tuple[Runs, ...]  # one row, longest form first
STYLE_KEYS = ("muted", "ok", "warn", "bad", "accent", "spark")


def _forms(runs: Runs | Forms) -> Forms:
    return runs if isinstance(runs, tuple) else (runs,)


def width_of(runs: Runs) -> int:
    return sum(cell_len(t) for t, _ in runs)


def pick(forms: Forms, width: int) -> Runs:
    """The first form that fits `width`, else the last."""
    for runs in forms:
        if width_of(runs) <= width:
            return runs
    return forms[-1]


class ServerFigures(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {f"server-figures--{k}" for k in STYLE_KEYS}

    def __init__(self) -> None:
        super().__init__()
        self.head: Forms = ([],)
        self.stats: tuple[Forms, Forms] = (([("decode n/a", None)],), ([("TTFT n/a", None)],))
        self.memory: Forms = ([("RAM n/a", "muted")],)
        # the memory as a stacked bar on a scale shared by every column (a row of its own)
        self.stack: Stack | None = None
        self.stack_scale = 0
        self.stack_width = 8  # the bar's cells: the same in every column
        self.rate: list[float] = []
        self.rate_top: float | None = None
        self.rate_label = ""
        self._tips: dict[str, str] = {}
        self._rows: dict[int, Strip] = {}
        self._styles: dict[str | None, Style] | None = None

    # ------------------------------------------------------------------ updates

    def put_head(self, runs: Runs | Forms, tip: str | None = None) -> None:
        forms = _forms(runs)
        if forms != self.head:
            self.head = forms
            self._dirty(0)
        self._tip("head", tip)

    def put_stats(self, line1: Runs | Forms, line2: Runs | Forms) -> None:
        stats = (_forms(line1), _forms(line2))
        if stats != self.stats:
            self.stats = stats
            n = self._spark_height()
            self._dirty(1 + n, 2 + n)

    def put_memory(self, runs: Runs | Forms, tip: str | None = None) -> None:
        forms = _forms(runs)
        if forms != self.memory:
            self.memory = forms
            self._dirty(3 + self._spark_height())
        self._tip("memory", tip)

    def put_stack(self, stack: Stack | None, scale: int, bar_w: int) -> None:
        """The memory's parts as a bar under the memory line (None: no such row), `bar_w`
        cells for `scale` bytes."""
        if (stack, scale, bar_w) != (self.stack, self.stack_scale, self.stack_width):
            self.stack, self.stack_scale, self.stack_width = stack, scale, bar_w
            self._rows.clear()  # a row more or less: the sparkline's height changes
            self.refresh()
        self._tip("stack", stack.tip if stack is not None else None)

    def put_rate(self, values: Sequence[float], top: float | None = None,
                 label: str = "") -> None:
        """The sparkline: `values` left-aligned from the run's start, on the scale `top`
        (None: its own largest value), `label` naming that scale."""
        values = list(values)
        if (values, top, label) != (self.rate, self.rate_top, self.rate_label):
            self.rate, self.rate_top, self.rate_label = values, top, label
            self._dirty(*range(1, 1 + self._spark_height()))

    def scale_width(self) -> int:
        """Columns the scale takes on the sparkline's left (its label and a space)."""
        return cell_len(self.rate_label) + 1 if self.rate_label else 0

    def chart_width(self) -> int:
        """Columns left for the sparkline's bars."""
        return max((self.content_region.width or 40) - self.scale_width(), 1)

    def text(self) -> str:
        """The block as plain text (for tests and logs)."""
        return "\n".join("".join(t for t, _ in runs) for runs in self._row_runs())

    def _tip(self, key: str, tip: str | None) -> None:
        if tip != self._tips.get(key):
            if tip is None:
                self._tips.pop(key, None)
            else:
                self._tips[key] = tip
            self.tooltip = "\n".join(self._tips.values()) or None

    def _dirty(self, *rows: int) -> None:
        for y in rows:
            self._rows.pop(y, None)
            self.refresh(Region(0, y, self.size.width, 1))

    # ------------------------------------------------------------------ rendering

    def _spark_height(self) -> int:
        return max(self.size.height - 4 - (self.stack is not None), 1)

    def _row_runs(self) -> list[Runs]:
        n = self._spark_height()
        width = self.content_region.width or 40
        gutter = self.scale_width()
        spark = spark_rows(self.rate, max(width - gutter, 1), n, self.rate_top, left=True)
        spark_runs: list[Runs] = []
        for i, r in enumerate(spark):
            if gutter:
                label = self.rate_label if i == 0 else ("0" if i == n - 1 else "")
                spark_runs.append([(label.rjust(gutter - 1) + " ", "muted"), (r, "spark")])
            else:
                spark_runs.append([(r, "spark")])
        rows = [pick(self.head, width), *spark_runs, pick(self.stats[0], width),
                pick(self.stats[1], width), pick(self.memory, width)]
        if self.stack is not None:
            rows.append(pick(bar_forms(self.stack, self.stack_scale, self.stack_width),
                             width))
        return rows

    def on_resize(self) -> None:
        self._rows.clear()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._rows.clear()

    def render_line(self, y: int) -> Strip:
        strip = self._rows.get(y)
        if strip is None:
            rows = self._row_runs()
            width = self.content_region.width
            for i, runs in enumerate(rows):  # every missing row at once: one sparkline pass
                if i not in self._rows:
                    self._rows[i] = self._strip(runs, width)
            strip = self._rows.get(y) or Strip.blank(width, self._style_map()[None])
        return strip

    def _strip(self, runs: Runs, width: int) -> Strip:
        styles = self._style_map()
        base = styles[None]
        segments: list[Segment] = []
        used = 0
        for text, key in runs:
            if used >= width:
                break
            n = cell_len(text)
            if used + n > width:  # cut, and say so
                text = text[:max(width - used - 1, 0)] + "…"
                n = cell_len(text)
            segments.append(Segment(text, styles.get(key, base)))
            used += n
        return Strip(segments, used).extend_cell_length(width, base)

    def _style_map(self) -> dict[str | None, Style]:
        if self._styles is None:
            base = self.rich_style
            self._styles = {None: base, "b": base + Style(bold=True)}
            for k in STYLE_KEYS:
                self._styles[k] = base + self.get_component_rich_style(
                    f"server-figures--{k}", partial=True)
        return self._styles
