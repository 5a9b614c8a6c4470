"""A results table as text: titles, aligned columns, styled cells; drawn once, not streamed.

Column titles come in a long and a short form: the long ones when the table fits the width it
is given, else the short ones; a table still too wide is stacked: its columns split into parts
that fit, one under the other, each led by the first column (the server). A single column wider
than the screen makes the table as wide as it needs, and the view around it scrolls sideways.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from rich.cells import cell_len
from textual.content import Content
from textual.widget import Widget

from quanttui.tui import fmt
from quanttui.tui.results_model import Cell, Table

GAP = "  "
STYLE = {"b": "b", "muted": "$text-muted", "good": "$text-success", "bad": "$text-error",
         "accent": "b $accent"}


def _styled(text: str, style: str | None) -> str:
    text = fmt.escape(text)
    tag = STYLE.get(style or "")
    return f"[{tag}]{text}[/]" if tag else text


def table_lines(table: Table, width: int) -> tuple[list[str], int]:
    """The table as markup lines (title, header, rows, note) and its width in cells: long
    column titles when that fits `width`, else short ones, else stacked in parts that fit."""
    def widths(short: bool) -> list[int]:
        out = []
        for i, col in enumerate(table.columns):
            title = col.short if short else col.title
            out.append(max([cell_len(title)] + [cell_len(r[i][0]) for r in table.rows]))
        return out

    def span(cols: Sequence[int], w: list[int]) -> int:
        return sum(w[i] for i in cols) + len(GAP) * (len(cols) - 1)

    every = list(range(len(table.columns)))
    short = False
    w = widths(False)
    parts = [every]
    if span(every, w) > width:
        short = True
        w = widths(True)
        if span(every, w) > width and len(every) > 2:
            parts = [[0]]
            for i in every[1:]:
                if len(parts[-1]) > 1 and span([*parts[-1], i], w) > width:
                    parts.append([0])
                parts[-1].append(i)

    def line(cells: Sequence[Cell], cols: Sequence[int], head: bool = False) -> str:
        out = []
        for i in cols:
            text, style = cells[i]
            pad = w[i] - cell_len(text)
            body = _styled(text, "muted" if head else style)
            out.append(body + " " * pad if table.columns[i].left or i == 0 else " " * pad + body)
        return GAP.join(out).rstrip()

    titles = [((c.short if short else c.title), None) for c in table.columns]
    lines = [f"[b]{fmt.escape(table.title)}[/b]"]
    for n, cols in enumerate(parts):
        if n:
            lines.append("")
        lines.append(line(titles, cols, head=True))
        lines += [line(r, cols) for r in table.rows]
    # the note wraps at the width there is (one long line was cut at the screen's edge)
    notes = textwrap.wrap(table.note, max(width, 20)) if table.note else []
    lines += [f"[$text-muted]{fmt.escape(n)}[/]" for n in notes]
    total = max(span(cols, w) for cols in parts)
    return lines, max(total, cell_len(table.title), *(cell_len(n) for n in notes))


def table_tips(table: Table) -> str | None:
    tips = [f"{c.title}: {c.tip}" for c in table.columns if c.tip]
    return "\n".join(tips) or None


class TableView(Widget):
    """One table of the results view: as wide as its columns need (its container scrolls
    sideways when that is wider than the screen)."""

    DEFAULT_CSS = """
    TableView { height: auto; width: auto; }
    """

    def __init__(self, table: Table, fit: int, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self.table = table
        lines, self._width = table_lines(table, fit)
        self._content = Content.from_markup("\n".join(lines))
        self.tooltip = table_tips(table)

    def plain(self) -> str:
        return self._content.plain

    def get_content_width(self, container: object, viewport: object) -> int:
        return self._width

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        return len(self._content.plain.split("\n"))

    def render(self) -> Content:
        return self._content
