"""Every prompt of the results view's run, one row each: each server's decode tokens/s and TTFT,
where each other server's output first differs from the reference's, its KLD and same-top-1
against the reference where the quality step measured them, and the prompt. Columns that do
not fit the screen's width are left out, least telling first (the detail line says which).
Enter (or a click) shows the prompt's outputs side by side on the compare screen
(`ShowPrompt` up to the app, which brings that run back there after a typed prompt); there
`[` and `]` step to the previous and next prompt and `d` scrolls to the first divergence.

The figures come from core (`quanttui.tui.results_model.prompt_rows`: `RunResults.per_prompt`,
`compare_run_outputs` and the run's quality section); the screen reads the run state the app
hands it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from quanttui.tui import fmt
from quanttui.tui.labels import short_labels
from quanttui.tui.messages import ShowPrompt
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.results_model import PromptRow, prompt_rows, prompt_servers
from quanttui.tui.state import RunState
from quanttui.tui.widgets.data_table import DataTable
from quanttui.tui.widgets.line import Line

EXCERPT = 60
PAD = 2  # a DataTable cell's padding, both sides
MIN_TEXT = 12  # the prompt's excerpt is shown when this much room is left for it


@dataclass
class _Col:
    key: str
    title: str
    cells: list[str | Text]
    rank: int  # which columns go first when the width runs out: the highest rank

    @property
    def width(self) -> int:
        return max([cell_len(self.title)] + [cell_len(str(c)) for c in self.cells])


class PromptsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "show", "Show outputs", priority=True,
                tooltip="The prompt's outputs side by side, differences highlighted"),
        Binding("escape,p", "close", "Back"),
        Binding("v", "app.results", "Results"),
        Binding("k", "app.quality", "Quality"),
    ]

    def __init__(self, registry: ServerRegistry, state: RunState) -> None:
        super().__init__(id="prompts")
        self.registry = registry
        self.state = state
        self.rows: list[PromptRow] = []
        self.left_out: list[str] = []  # the columns the screen's width had no room for
        self.against = ""  # whom the output, KLD and top-1 columns compare, when one pair
        self._drawn_width: int | None = None

    def compose(self) -> ComposeResult:
        yield Line(id="prompts-title")
        yield DataTable(id="prompts-table", cursor_type="row", zebra_stripes=True)
        yield Line(id="prompt-detail", grow=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.draw()
        self.query_one(DataTable).focus()

    def on_resize(self) -> None:
        if self._drawn_width not in (None, self.size.width):
            self.draw(keep_cursor=True)

    def draw(self, keep_cursor: bool = False) -> None:
        live = self.state.results_run()
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        self.left_out = []
        self.against = ""
        if live is None:
            return
        results = live.results
        self.rows = prompt_rows(results, self.state.prompt_texts)
        names = prompt_servers(results)
        labels = short_labels(names)
        ref = names[0] if names else ""
        rows = self.rows
        others = names[1:]
        # Ranked by what tells the prompts apart: where the outputs part and how far the
        # distributions are (the quality step's, when it ran), then speed, then the rest.
        cols = [_Col("prompt", "prompt", [r.prompt_id for r in rows], 0)]
        # one server against the reference: the detail line names them, the titles need not
        self.against = f"{labels[others[0]]} against {labels[ref]}" if len(others) == 1 else ""
        for n in others:
            tag = "" if self.against else f"{labels[n]} "
            cols.append(_Col(f"div-{n}", f"{tag}output",
                             [_divergence(r, n, ref) for r in rows], 1))
            if any(n in r.kld for r in rows):
                cols.append(_Col(f"kld-{n}", f"{tag}KLD",
                                 [_num(r.kld.get(n), ".4f", None) for r in rows], 2))
            if any(n in r.same_top1 for r in rows):
                cols.append(_Col(f"top1-{n}", f"{tag}top-1",
                                 [_num(r.same_top1.get(n), ".1%", None) for r in rows], 3))
        if self.against:
            self.against = f"{', '.join(c.title for c in cols[1:])}: {self.against}"
        for n in names:
            cols.append(_Col(f"tps-{n}", f"{labels[n]} t/s",
                             [_num(r.decode.get(n), ".1f", r.failed.get(n)) for r in rows], 10))
        for n in names:
            cols.append(_Col(f"ttft-{n}", f"{labels[n]} TTFT",
                             [_num(r.ttft.get(n), ".0f", r.failed.get(n), " ms") for r in rows],
                             20))
        cols.append(_Col("category", "category", [r.category for r in rows], 30))
        room = self.size.width or self.app.size.width
        # a vertical scrollbar takes its share (before the first layout: the screen less the
        # title, the detail line and the footer)
        if len(rows) + 1 > (table.size.height or self.size.height - 4):
            room -= table.styles.scrollbar_size_vertical
        shown: list[_Col] = []
        for c in sorted(cols, key=lambda c: c.rank):  # stable: the screen's order per rank
            if sum(x.width + PAD for x in shown) + c.width + PAD <= room:
                shown.append(c)
            else:
                self.left_out.append(c.title)
        shown.sort(key=cols.index)
        for c in shown:
            table.add_column(c.title, key=c.key)
        text_room = min(room - sum(c.width + PAD for c in shown) - PAD, EXCERPT + 1)
        if text_room >= MIN_TEXT and any(r.text for r in rows):
            table.add_column("text", key="text", width=text_room)
        elif any(r.text for r in rows):
            self.left_out.append("text")
        for j, row in enumerate(rows):
            cells = [c.cells[j] for c in shown]
            if "text" in table.columns:
                text = " ".join(row.text.split())
                cut = text_room - 1
                cells.append(Text(text[:cut] + ("…" if len(text) > cut else ""), style="dim"))
            table.add_row(*cells, key=row.prompt_id)
        self._drawn_width = self.size.width
        focus = live.focus[0] if live.focus is not None else None
        ids = [r.prompt_id for r in self.rows]
        if keep_cursor and ids:
            table.move_cursor(row=min(cursor, len(ids) - 1))
        elif focus in ids:
            table.move_cursor(row=ids.index(focus))
        self.query_one("#prompts-title", Line).set(
            f"[b]Prompts[/b] · {len(self.rows)} in this run · Enter: side by side "
            "([b]\\[ ][/b] step, [b]d[/b]: first difference)")
        self._detail()

    def _current(self) -> PromptRow | None:
        table = self.query_one(DataTable)
        if not table.row_count or not self.rows:
            return None
        return self.rows[min(table.cursor_row, len(self.rows) - 1)]

    def _detail(self) -> None:
        row = self._current()
        detail = self.query_one("#prompt-detail", Line)
        if row is None:
            detail.set("[$text-muted]No prompt finished yet.[/]")
            return
        text = row.text or "(a stored run keeps the prompt's id, not its text)"
        fails = "".join(f"\n[$error]{fmt.escape(s)}: {fmt.escape(k)}[/]"
                        for s, k in row.failed.items())
        short = text if len(text) <= 300 else text[:300] + " …"
        notes = [self.against] if self.against else []
        if self.left_out:
            notes.append(f"left out at this width: {', '.join(self.left_out)} (a wider "
                         "terminal shows them)")
        narrow = f"\n[$text-muted]{fmt.escape('; '.join(notes))}[/]" if notes else ""
        detail.set(f"[b]{fmt.escape(row.prompt_id)}[/b] ({fmt.escape(row.category)}) "
                   f"{fmt.escape(short)}{fails}{narrow}")

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(ShowPrompt(event.row_key.value))

    def action_show(self) -> None:
        row = self._current()
        if row is not None:
            self.post_message(ShowPrompt(row.prompt_id))

    def action_close(self) -> None:
        self.app.pop_screen()


def _num(v: float | None, spec: str, failed: str | None, unit: str = "") -> Text:
    if failed is not None and v is None:
        return Text(f"✗ {failed}", style="red")
    return Text("—" if v is None else format(v, spec) + unit, justify="right",
                style="dim" if v is None else "")


def _divergence(row: PromptRow, server: str, ref: str) -> Text:
    if server in row.failed or ref in row.failed:
        return Text("✗ failed", style="red")
    if server not in row.divergence:
        return Text("—", style="dim")
    d = row.divergence[server]
    unit = row.unit.get(server, "tok")
    return Text("same", style="green") if d is None else Text(f"≠ {unit} {d}", style="bold")
