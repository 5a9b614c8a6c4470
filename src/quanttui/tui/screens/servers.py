"""Model selection: the configured servers and any typed URL, what each serves, its health, and
which ones to compare. It shows the registry the app hands it; every change goes up as a message
(`quanttui.tui.messages`) and comes back as `ServersChanged`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input

from quanttui.core.models.discovery import REQUANTIZED_MARK, requantized_words
from quanttui.tui import fmt
from quanttui.tui.messages import (
    AddServer,
    OpenModels,
    ProbeServers,
    RemoveServer,
    ServersChanged,
    ToggleServer,
)
from quanttui.tui.registry import ServerEntry, ServerRegistry
from quanttui.tui.widgets.data_table import DataTable
from quanttui.tui.widgets.line import Line
from quanttui.tui.widgets.server_column import HEALTH_MARK

LAUNCH_NOTE = ("[$text-muted][b]l[/b]: pick GGUF files on this machine and start llama-server "
               "for them.[/]")
COLUMNS = ("", "name", "health", "quant", "model file", "weights", "params", "ctx", "slots",
           "url")
REFRESH_S = 5.0


class ServersScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_server", "Select"),
        Binding("a", "add", "Add URL"),
        Binding("r", "refresh", "Refresh"),
        Binding("d,delete", "remove", "Remove", show=False),
        Binding("l", "launch", "Models"),
        Binding("escape,s", "close", "Done"),
    ]

    def __init__(self, registry: ServerRegistry, *, blink: bool = True) -> None:
        super().__init__(id="servers")
        self.registry = registry
        self._blink = blink
        self._cursor_to: str | None = None  # a server just added: put the cursor on it

    def compose(self) -> ComposeResult:
        yield Line("[b]Servers[/b] · space, Enter or a click on the marked row selects; the "
                   "first selected (A) is the reference", id="servers-title")
        yield DataTable(id="servers-table", cursor_type="row")
        yield Line(id="server-detail", grow=True)
        yield Input(id="add-url", compact=True,
                    placeholder="a to add a running llama-server: http://host:port, Enter")
        yield Line(LAUNCH_NOTE, id="launch", grow=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        self.query_one("#add-url", Input).cursor_blink = self._blink
        self.draw()
        table.focus()
        # Health changes (a server restarted, finished loading): re-ask while this screen shows.
        self.set_interval(REFRESH_S, self.action_refresh)

    def on_servers_changed(self, message: ServersChanged) -> None:
        if message.added is not None:  # the typed URL was taken: on to the table, cursor on it
            self._cursor_to = message.added
            self.query_one("#add-url", Input).clear()
            self.query_one(DataTable).focus()
        self.draw()

    def draw(self) -> None:
        entries = self.registry.entries
        table = self.query_one(DataTable)
        row = table.cursor_row
        # Columns too: an auto width keeps the widest text it ever saw ("checking").
        table.clear(columns=True)
        table.add_columns(*COLUMNS)
        for entry in entries.values():
            table.add_row(*self._cells(entry), key=entry.name)
        names = list(entries)
        if self._cursor_to in names:
            row = names.index(self._cursor_to)
            self._cursor_to = None
        if table.row_count:
            table.move_cursor(row=min(max(row, 0), table.row_count - 1))
        self._detail()

    def _cells(self, entry: ServerEntry) -> list[str | Text]:
        # DataTable cells take Rich text, which knows no theme variables: look the colours up.
        colours = self.app.theme_variables
        info = entry.info
        letter = self.registry.letter(entry.name)
        if letter is not None:
            mark = Text(letter, style=Style(bold=True, color=colours["accent"]))
        else:
            mark = Text("·", style="dim")
        health_colour = {"ok": "success", "loading": "warning", "down": "error"}.get(entry.health)
        health = Text(entry.health, style=Style(color=colours[health_colour]) if health_colour
                      else "dim")
        return [
            mark,
            Text(entry.name),
            health,
            Text((info.model_ftype or "?") + (f" {REQUANTIZED_MARK}" if info.requantized_from
                                              else "")),
            Text(Path(info.model_path).name if info.model_path else "?"),
            fmt.size(info.model_size) if info.model_size else "?",
            fmt.count(info.n_params) if info.n_params else "?",
            str(info.n_ctx) if info.n_ctx else "?",
            str(info.total_slots) if info.total_slots else "?",
            Text(entry.spec.url),
        ]

    def _current(self) -> ServerEntry | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.registry.entries.get(key or "")

    def _detail(self) -> None:
        e = self._current()
        detail = self.query_one("#server-detail", Line)
        if e is None:
            detail.set("No servers yet: press [b]a[/b] and type the URL of a running "
                       "llama-server, or [b]l[/b] to start one for a GGUF file.")
            return
        i = e.info
        facts = [x for x in (
            i.model_ftype, requantized_words(i.requantized_from) if i.requantized_from else None,
            f"weights {fmt.size(i.model_size)}" if i.model_size else None,
            f"{fmt.count(i.n_params)} params" if i.n_params else None,
            f"ctx {i.n_ctx}" if i.n_ctx else None,
            f"{i.total_slots} slot(s)" if i.total_slots else None,
            f"build {i.build_info}" if i.build_info else None,
            f"pid {e.spec.pid}" if e.spec.pid else None,
        ) if x]
        lines = [f"[b]{fmt.escape(e.name)}[/b] {fmt.escape(e.spec.url)} ({e.source}) · "
                 f"{HEALTH_MARK[e.health]} {e.health}",
                 f"model {fmt.escape(i.model_path or 'unknown')}",
                 fmt.escape(" · ".join(facts)) if facts else ""]
        if e.error:
            lines.append(f"[$error]{fmt.escape(e.error)}[/]")
        detail.set("\n".join(x for x in lines if x))

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.post_message(ToggleServer(event.row_key.value))

    def action_toggle_server(self) -> None:
        e = self._current()
        if e is not None:
            self.post_message(ToggleServer(e.name))

    def action_add(self) -> None:
        self.query_one("#add-url", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.post_message(AddServer(event.value))  # taken: ServersChanged(added=...)

    def action_refresh(self) -> None:
        self.post_message(ProbeServers())

    def action_remove(self) -> None:
        e = self._current()
        if e is not None:
            self.post_message(RemoveServer(e.name))

    def action_launch(self) -> None:
        self.post_message(OpenModels())

    def action_close(self) -> None:
        if self.query_one("#add-url", Input).has_focus:
            self.query_one(DataTable).focus()
            return
        self.app.pop_screen()
