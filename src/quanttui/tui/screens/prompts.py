"""Every prompt of the results view's run, one row each: each server's decode tokens/s and TTFT,
where each other server's output first differs from the reference's, and the prompt. Enter (or a
click) shows the prompt's outputs side by side on the compare screen (`ShowPrompt` up to the app,
which brings that run back there after a typed prompt); there
`[` and `]` step to the previous and next prompt and `d` scrolls to the first divergence.

The figures come from core (`quanttui.tui.results_model.prompt_rows`: `RunResults.per_prompt`
and `compare_run_outputs`); the screen reads the run state the app hands it.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from quanttui.tui import fmt
from quanttui.tui.labels import short_labels
from quanttui.tui.messages import ShowPrompt
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.results_model import PromptRow, prompt_rows
from quanttui.tui.state import RunState
from quanttui.tui.widgets.line import Line

EXCERPT = 60


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

    def compose(self) -> ComposeResult:
        yield Line(id="prompts-title")
        yield DataTable(id="prompts-table", cursor_type="row", zebra_stripes=True)
        yield Line(id="prompt-detail", grow=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.draw()
        self.query_one(DataTable).focus()

    def draw(self) -> None:
        live = self.state.results_run()
        table = self.query_one(DataTable)
        table.clear(columns=True)
        if live is None:
            return
        results = live.results
        self.rows = prompt_rows(results, self.state.prompt_texts)
        names = [s.name for s in results.servers if s.reachable]
        labels = short_labels(names)
        ref = names[0] if names else ""
        # The figures that tell prompts apart first (a narrow screen scrolls to the rest).
        table.add_column("prompt", key="prompt")
        for n in names:
            table.add_column(f"{labels[n]} t/s", key=f"tps-{n}")
        for n in names[1:]:
            table.add_column(f"{labels[n]} vs {labels[ref]}", key=f"div-{n}")
        for n in names:
            table.add_column(f"{labels[n]} TTFT", key=f"ttft-{n}")
        table.add_column("category", key="category")
        table.add_column("text", key="text")
        for row in self.rows:
            cells: list[str | Text] = [row.prompt_id]
            for n in names:
                cells.append(_num(row.decode.get(n), ".1f", row.failed.get(n)))
            for n in names[1:]:
                cells.append(_divergence(row, n, ref))
            for n in names:
                v = row.ttft.get(n)
                cells.append(_num(v, ".0f", row.failed.get(n), " ms"))
            cells.append(row.category)
            text = " ".join(row.text.split())
            cells.append(Text(text[:EXCERPT] + ("…" if len(text) > EXCERPT else ""),
                              style="dim"))
            table.add_row(*cells, key=row.prompt_id)
        focus = live.focus[0] if live.focus is not None else None
        ids = [r.prompt_id for r in self.rows]
        if focus in ids:
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
        detail.set(f"[b]{fmt.escape(row.prompt_id)}[/b] ({fmt.escape(row.category)}) "
                   f"{fmt.escape(short)}{fails}")

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
    return Text("same", style="green") if d is None else Text(f"≠ tok {d}", style="bold")
