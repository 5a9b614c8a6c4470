"""The history: every stored run, newest first (`core.reports.history.Store.list`), one row each
with its kind, when it started, its servers, how it ended, whether quality was measured and its
verdict. Enter opens the run in the results view (`OpenRun` up to the app, which shows it as a
run that just ended); space marks runs and `c` shows what changed between the two marked
(`core.reports.compare.compare_text`, the text `quanttui compare` prints).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer

from quanttui.core.reports.history import RunRow
from quanttui.tui import fmt
from quanttui.tui.messages import OpenRun
from quanttui.tui.widgets.data_table import DataTable
from quanttui.tui.widgets.line import Line

LIMIT = 200  # runs listed: the newest


class HistoryScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=True, id="history.open",
                tooltip="The run in the results view"),
        Binding("space", "mark", "Mark", id="history.mark",
                tooltip="Mark the run (or unmark it); c compares the two marked"),
        Binding("c", "compare", "Compare", id="history.compare",
                tooltip="What changed between the two marked runs"),
        Binding("escape,h", "close", "Back", id="history.close"),
    ]

    def __init__(self) -> None:
        super().__init__(id="history")
        self.rows: list[RunRow] = []
        self.marked: list[int] = []  # run ids, in the order marked

    def compose(self) -> ComposeResult:
        yield Line(id="history-title")
        yield DataTable(id="history-table", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.load()
        self.query_one(DataTable).focus()

    def load(self) -> None:
        from quanttui.core.reports.history import HistoryError, Store

        title = self.query_one("#history-title", Line)
        try:
            store = Store()
            self.rows = store.list(LIMIT)
        except HistoryError as e:
            self.rows = []
            title.set(f"[b]History[/b] · [$error]{fmt.escape(str(e))}[/]")
            return
        for w in store.warnings:
            self.notify(w, title="history", severity="warning", markup=False)
        self.draw()

    def draw(self) -> None:
        table = self.query_one(DataTable)
        at = table.cursor_row
        table.clear(columns=True)
        for key, label in (("mark", " "), ("id", "#"), ("when", "started (UTC)"),
                           ("kind", "kind"), ("status", "status"), ("quality", "quality"),
                           ("verdict", "verdict"), ("servers", "servers"),
                           ("quants", "quants")):
            table.add_column(label, key=key)
        for r in self.rows:
            status = Text(r.status, style="yellow" if r.status == "stopped" else "")
            table.add_row(Text("✓", style="bold") if r.id in self.marked else " ",
                          Text(str(r.id), justify="right"),
                          r.created_at[:16].replace("T", " "), r.kind, status, r.quality,
                          Text(r.verdict, style="bold"), r.servers, r.quants, key=str(r.id))
        if self.rows:
            table.move_cursor(row=min(max(at, 0), len(self.rows) - 1))
        n = len(self.rows)
        what = (f"{n} run{'s' if n != 1 else ''} stored, newest first" if n
                else "no runs stored yet: each run from here or `quanttui run --headless` goes "
                     "here")
        marks = (f" · marked {', '.join(f'#{i}' for i in self.marked)} (c compares two)"
                 if self.marked else "")
        self.query_one("#history-title", Line).set(f"[b]History[/b] · {what}{marks}")

    def _current(self) -> RunRow | None:
        table = self.query_one(DataTable)
        if not table.row_count or not self.rows:
            return None
        return self.rows[min(table.cursor_row, len(self.rows) - 1)]

    def action_open(self) -> None:
        row = self._current()
        if row is not None:
            self.post_message(OpenRun(row.id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(OpenRun(int(event.row_key.value)))

    def action_mark(self) -> None:
        row = self._current()
        if row is None:
            return
        if row.id in self.marked:
            self.marked.remove(row.id)
        else:
            self.marked = [*self.marked, row.id][-2:]  # a third mark replaces the oldest
        self.draw()

    def action_compare(self) -> None:
        from quanttui.core.reports.compare import compare_text
        from quanttui.core.reports.history import HistoryError, Store
        from quanttui.core.reports.run_file import RunFileError, results_from_dict

        if len(self.marked) != 2:
            self.notify("Mark two runs with space, then c compares them.", title="compare",
                        severity="warning", markup=False)
            return
        a, b = sorted(self.marked)  # older → newer, as `quanttui compare a b` reads
        try:
            store = Store()
            ra, rb = (results_from_dict(store.get(i)) for i in (a, b))
        except KeyError as e:
            self.notify(f"no run #{e.args[0]} in the history", title="compare",
                        severity="error", markup=False)
            return
        except (HistoryError, RunFileError) as e:
            self.notify(str(e), title="compare", severity="error", markup=False)
            return
        self.app.push_screen(RunsCompareScreen(f"#{a}", f"#{b}",
                                               compare_text(ra, rb, f"#{a}", f"#{b}")))

    def action_close(self) -> None:
        self.app.pop_screen()


class RunsCompareScreen(Screen[None]):
    """`quanttui compare`'s text for two stored runs, scrollable."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,c", "close", "Back", id="runs-compare.close"),
    ]

    def __init__(self, a: str, b: str, text: str) -> None:
        super().__init__(id="runs-compare")
        self.title_text = f"[b]Compare[/b] · run {a} → run {b}"
        self.text = text

    def compose(self) -> ComposeResult:
        yield Line(self.title_text, id="runs-compare-title")
        with VerticalScroll(id="runs-compare-body"):
            yield Line(fmt.escape(self.text.rstrip("\n")), grow=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#runs-compare-body", VerticalScroll).focus()

    def action_close(self) -> None:
        self.app.pop_screen()
