"""The results view: the answer to "which quant should I run", from core's figures.

One row per server (the reference first): speed with the paired ratio to the reference and its
95% interval, TTFT, memory peaks against the file size, quality against the reference (same
output, first divergence, same-top-1, KLD, Δp), task accuracy per category with its paired
difference, and the verdict (`core.ladder.verdict.decide`, or the stored ladder's). A difference
within noise is marked `≈` and drawn muted. Shown after a suite run finishes and with `v`; it
shows the last suite run (a typed prompt is a run of its own and leaves it) or a run opened
from the history (`h`). `k` runs the quality step, whose figures land here. The screen reads
the run state the app hands it (`quanttui.tui.results_model` builds what it shows) and redraws
on `ResultsChanged`.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import ScrollableContainer
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer

from quanttui.tui import fmt
from quanttui.tui.messages import ResultsChanged
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.results_model import NOISE_LEGEND, ResultsModel, results_model
from quanttui.tui.state import RunState
from quanttui.tui.widgets.gauges import bar
from quanttui.tui.widgets.line import Line
from quanttui.tui.widgets.table import TableView


class ResultsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,v", "close", "Back", tooltip="Back to the outputs"),
        Binding("k", "app.quality", "Quality",
                tooltip="Same-top-1, KLD and task accuracy against the reference"),
        Binding("p", "app.prompts", "Prompts", tooltip="Every prompt with its figures"),
        Binding("h", "app.history", "History", show=False,
                tooltip="The stored runs: open one, compare two"),
        Binding("r", "app.run_suite", "Run"),
        Binding("x", "app.stop", "Stop"),
        # typed here, a prompt's letters would be taken as keys: / goes back to the outputs
        # and types it there (the results stay, for v)
        Binding("slash", "app.type_prompt", "Type a prompt", key_display="/"),
    ]

    def __init__(self, registry: ServerRegistry, state: RunState) -> None:
        super().__init__(id="results")
        self.registry = registry
        self.state = state
        self.model: ResultsModel | None = None
        self._drawn_width = -1
        self._flash: str | None = None
        self._flash_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Line(id="results-title")
        yield ScrollableContainer(id="results-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#results-body").focus()
        self.draw()

    def action_close(self) -> None:
        self.app.pop_screen()

    def on_results_changed(self, _: ResultsChanged) -> None:
        self.draw()

    def on_resize(self) -> None:
        if self.size.width != self._drawn_width:
            self.draw()

    def whole_height(self) -> int:
        """The screen's height with the body shown in full, not scrolled: what ctrl+s saves."""
        body = self.query_one("#results-body", ScrollableContainer)
        return self.size.height + max(0, body.max_scroll_y)

    def flash(self, text: str, seconds: float = 8.0) -> None:
        """A passing word in the title line (a snapshot saved) instead of a toast over the
        figures."""
        self._flash = text
        if self._flash_timer is not None:
            self._flash_timer.stop()
        self._flash_timer = self.set_timer(seconds, self._unflash)
        self.draw_title()

    def _unflash(self) -> None:
        self._flash = None
        self.draw_title()

    def draw_title(self) -> None:
        q = self.state.quality
        text = "[b]Results[/b]"
        if self._flash is not None and q is None:
            text += f" · [$success]{fmt.escape(self._flash)}[/]"
        elif self.model is not None and q is None:  # the step's progress first, while it runs
            text += f" · {fmt.escape(self.model.heading)}"
        if q is not None:
            filled, empty = bar(q.done / q.total if q.total else 0.0, 10)
            what = "stopping …" if q.stopping else "x stops"
            text += (f" │ [$accent]◆[/] quality: {q.words()} "
                     f"[$accent]{filled}[/][$text-muted]{empty}[/] · {what}")
        self.query_one("#results-title", Line).set(text)

    def draw(self) -> None:
        """Build the view from the run shown (its figures so far while it runs)."""
        live = self.state.results_run()
        body = self.query_one("#results-body", ScrollableContainer)
        self._drawn_width = self.size.width
        if live is None:
            self.model = None
            self.draw_title()
            return
        self.model = m = results_model(live.results,
                                       running=self.state.running and live is self.state.live)
        self.draw_title()
        fit = max(self.size.width - 4, 20)  # the body's padding and scrollbar
        parts: list[Widget] = []
        if m.verdict is not None:
            star = "★ " if m.recommended else ""
            parts.append(Line(f"[b $accent]{star}[/][b]{fmt.escape(m.verdict)}[/b]",
                              classes="verdict", grow=True))
        if m.hint:
            parts.append(Line(f"[$text-muted]{fmt.escape(m.hint)}[/]", classes="hint",
                              grow=True))
        for table in m.tables:
            parts.append(TableView(table, fit, classes="table"))
        if m.noise:
            lines = ["[b]Within noise[/b]"] + [f"{fmt.escape('≈ ' + x)}" for x in m.noise]
            parts.append(Line("\n".join(lines), classes="words", grow=True))
        parts.append(Line(f"[$text-muted]{fmt.escape(NOISE_LEGEND)}. ★ the verdict's "
                          "choice; ref the reference every other server is compared with.[/]",
                          classes="words", grow=True))
        if m.answers:
            lines = ["[b]In words[/b]"] + [fmt.escape(a) for a in m.answers]
            parts.append(Line("\n".join(lines), classes="words", grow=True))
        if m.notes:
            lines = ["[b]Notes[/b]"] + [fmt.escape(n) for n in m.notes]
            parts.append(Line("\n".join(lines), classes="words", grow=True))
        with self.app.batch_update():
            body.remove_children()
            body.mount_all(parts)
