"""One server's figures block: header, tokens/s sparkline, speed lines, memory line.

It changes every second while a run is on, so it is a Line API widget whose rows are built from
styled runs (no markup to parse) and cached one by one: a new sparkline column redraws the
sparkline rows, not the header. Colours come from component classes (theme variables).
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from quanttui.tui.widgets.gauges import spark_rows

# A run of text and its style key: None (plain), "b" (bold), or a component class suffix.
Run = tuple[str, str | None]
Runs = list[Run]
STYLE_KEYS = ("muted", "ok", "warn", "bad", "accent", "spark")


class ServerFigures(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {f"server-figures--{k}" for k in STYLE_KEYS}

    def __init__(self) -> None:
        super().__init__()
        self.head: Runs = []
        self.stats: tuple[Runs, Runs] = ([("decode n/a", None)], [("TTFT n/a", None)])
        self.memory: Runs = [("RAM n/a", "muted")]
        self.rate: list[int] = []
        self._tips: dict[str, str] = {}
        self._rows: dict[int, Strip] = {}
        self._styles: dict[str | None, Style] | None = None

    # ------------------------------------------------------------------ updates

    def put_head(self, runs: Runs, tip: str | None = None) -> None:
        if runs != self.head:
            self.head = runs
            self._dirty(0)
        self._tip("head", tip)

    def put_stats(self, line1: Runs, line2: Runs) -> None:
        if (line1, line2) != self.stats:
            self.stats = (line1, line2)
            n = self._spark_height()
            self._dirty(1 + n, 2 + n)

    def put_memory(self, runs: Runs, tip: str | None = None) -> None:
        if runs != self.memory:
            self.memory = runs
            self._dirty(3 + self._spark_height())
        self._tip("memory", tip)

    def put_rate(self, values: list[int]) -> None:
        if values != self.rate:
            self.rate = values
            self._dirty(*range(1, 1 + self._spark_height()))

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
        return max(self.size.height - 4, 1)

    def _row_runs(self) -> list[Runs]:
        n = self._spark_height()
        spark = spark_rows(self.rate, self.size.width or 1, n)
        spark_runs: list[Runs] = [[(r, "spark")] for r in spark]
        return [self.head, *spark_runs, self.stats[0], self.stats[1], self.memory]

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
            width = self.size.width
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
