"""The notices log: everything the runs, the servers and the app said, oldest first (the compare
screen shows the last one on a line of its own, so that no toast covers the figures)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer

from quanttui.tui import fmt
from quanttui.tui.state import RunState
from quanttui.tui.widgets.line import Line

MARK = {"info": "[$text-muted]·[/]", "warning": "[$warning]⚠[/]", "error": "[$error]✗[/]"}


class NoticesScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "close", "Back"),
    ]

    def __init__(self, state: RunState) -> None:
        super().__init__(id="notices")
        self.state = state

    def compose(self) -> ComposeResult:
        n = len(self.state.notices)
        yield Line(f"[b]Notices[/b] · {n} so far, the latest at the bottom", id="notices-title")
        lines = [f"{MARK[e.level]} {fmt.escape(e.line())}" for e in self.state.notices]
        with VerticalScroll(id="notices-body"):
            yield Line("\n".join(lines) or "[$text-muted]Nothing said yet.[/]", grow=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        body = self.query_one("#notices-body", VerticalScroll)
        body.focus()
        body.scroll_end(animate=False)

    def action_close(self) -> None:
        self.app.pop_screen()
