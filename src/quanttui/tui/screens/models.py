"""The model pane: GGUF files found on disk, what each is, and llama-server started for the chosen.

Opened with `l` on the servers screen (or from the command palette). Discovery runs on a thread
(it reads every file's header); space or a click marks files, Enter starts llama-server for the
marked ones (or the highlighted one) with the config's `[models.launch]` flags, after the fit
check; `x` stops a server started here. A started server joins the server list, selected for
the comparison. The pane shows the registry's launcher and asks the app, by message, to start,
stop or change flags; the app does it (through `core.launcher`) and says back `LaunchChanged`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from quanttui.config import ModelsConfig
from quanttui.core.models.discovery import (
    REQUANTIZED_MARK,
    DiscoveryResult,
    ModelInfo,
    discover,
    requantized_words,
)
from quanttui.core.models.launcher import Launch
from quanttui.core.models.servers import LaunchSpec
from quanttui.tui import fmt
from quanttui.tui.messages import (
    ChangeLaunchDefaults,
    LaunchChanged,
    StartLadder,
    StartServers,
    StopServer,
)
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.widgets.data_table import DataTable
from quanttui.tui.widgets.line import Line

# (label, key): cells are updated by key (a loading server's time, a mark)
COLUMNS = (("", "mark"), ("model", "model"), ("quant", "quant"), ("params", "params"),
           ("size", "size"), ("ctx", "ctx"), ("arch", "arch"), ("status", "status"),
           ("file", "file"))
# What t and c step through; -1: llama-server's default threads, 0: the model's trained context.
_CORES = os.cpu_count() or 1
THREAD_CHOICES = tuple(sorted({n for n in (1, 2, 4, 8) if n <= _CORES} | {_CORES, -1}))
CTX_CHOICES = (512, 2048, 4096, 8192, 16384, 0)


def _next(choices: tuple[int, ...], current: int) -> int:
    return choices[(choices.index(current) + 1) % len(choices)] if current in choices \
        else choices[0]


class ModelsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "mark", "Mark"),
        Binding("enter", "launch", "Start", priority=True),
        Binding("x,delete", "stop", "Stop"),
        Binding("L", "ladder", "Ladder",
                tooltip="Measure the marked files as a ladder: one model's quants, one after "
                        "another, to a verdict (as quanttui ladder)"),
        Binding("f", "force", "Start anyway", show=False),
        Binding("t", "threads", "Threads", show=False),
        Binding("c", "context", "Context", show=False),
        Binding("p", "pin", "Pin cores", show=False),
        Binding("r", "rescan", "Rescan"),
        Binding("escape,l", "close", "Back"),
    ]

    def __init__(self, registry: ServerRegistry, models: ModelsConfig) -> None:
        super().__init__(id="models")
        self.registry = registry
        self._models = models  # where to look for GGUF files
        self.result: DiscoveryResult | None = None
        self.marked: set[Path] = set()
        self._refused: list[tuple[str, LaunchSpec]] | None = None  # held for `f`

    def compose(self) -> ComposeResult:
        yield Line("[b]Models[/b] · space marks · [b]Enter[/b] starts llama-server for the "
                   "marked files (or the highlighted one) · [b]x[/b] stops one started here · "
                   "[b]L[/b] measures the marked quants as a ladder", id="models-title")
        yield Line(id="models-flags")
        yield DataTable(id="models-table", cursor_type="row")
        yield Line(id="model-detail", grow=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._draw_flags()
        self.query_one(DataTable).focus()
        self.action_rescan()

    def _draw_flags(self) -> None:
        self.query_one("#models-flags", Line).set(
            f"[$text-muted]starts with[/] {fmt.escape(self.registry.launcher.defaults.describe())}"
            " [$text-muted](t threads · c context · p pin cores; defaults: [models.launch] in "
            "the config)[/]")

    # ------------------------------------------------------------------ launch settings

    # For the servers started from now on; running ones keep the flags they have.

    def action_threads(self) -> None:
        self.post_message(ChangeLaunchDefaults(
            lambda d: replace(d, threads=_next(THREAD_CHOICES, d.threads))))

    def action_context(self) -> None:
        self.post_message(ChangeLaunchDefaults(
            lambda d: replace(d, ctx_size=_next(CTX_CHOICES, d.ctx_size))))

    def action_pin(self) -> None:
        self.post_message(ChangeLaunchDefaults(lambda d: replace(d, pin_cores=not d.pin_cores)))

    def on_launch_changed(self, message: LaunchChanged) -> None:
        if message.launch is None:
            self._draw_flags()
        else:
            self._refresh_row(message.launch.model)
        self._detail()

    # ------------------------------------------------------------------ discovery

    def action_rescan(self) -> None:
        self.query_one("#model-detail", Line).set("[$text-muted]looking for GGUF files …[/]")
        cfg = self._models
        dirs, default_places = list(cfg.dirs), cfg.default_places

        def work() -> None:  # a thread: discovery reads file headers
            result = discover(dirs, include_default_places=default_places)
            self.app.call_from_thread(self._discovered, result)

        self.run_worker(work, thread=True, group="discover", exclusive=True,
                        exit_on_error=False)

    def _discovered(self, result: DiscoveryResult) -> None:
        self.result = result
        self.draw()

    # ------------------------------------------------------------------ drawing

    def draw(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        result = self.result
        if result is None:
            return
        for m in result.models:
            table.add_row(*self._cells(m), key=str(m.path))
        muted = Style(dim=True)
        for p in result.problems:
            table.add_row(Text("✗", style=muted), Text(p.path.name, style=muted), "", "", "",
                          "", "", Text(p.reason, style=muted), Text(str(p.path), style=muted),
                          key=f"problem:{p.path}")
        if table.row_count:
            table.move_cursor(row=min(max(row, 0), table.row_count - 1))
        self._detail()

    def _cells(self, m: ModelInfo) -> list[str | Text]:
        colours = self.app.theme_variables
        mark = (Text("✓", style=Style(bold=True, color=colours["accent"]))
                if m.path in self.marked else Text("·", style="dim"))
        return [
            mark,
            Text(m.display_name),
            (m.quant or "?") + (f" {REQUANTIZED_MARK}" if m.requantized_from else ""),
            m.params_label or "?",
            fmt.size(m.size_bytes),
            str(m.context_length) if m.context_length else "?",
            m.architecture or "?",
            self._status(m.path),
            Text(m.path.name + (f" (+{len(m.shards) - 1} shards)" if m.is_split else "")),
        ]

    def _status(self, path: Path) -> Text:
        colours = self.app.theme_variables
        launch = self._launch_of(path)
        if launch is not None:
            if launch.state == "starting":
                return Text(f"loading {launch.elapsed:.0f} s",
                            style=Style(color=colours["warning"]))
            if launch.state == "ready":
                port = launch.url.rsplit(":", 1)[-1]
                return Text(f"● {launch.name} :{port}", style=Style(color=colours["success"]))
            if launch.state == "failed":
                return Text("✗ failed to start", style=Style(color=colours["error"]))
            if launch.state == "exited":
                return Text("✗ exited", style=Style(color=colours["error"]))
        serving = self._served_by(path)
        if serving:
            return Text(f"● {serving}", style=Style(color=colours["success"]))
        return Text("")

    def _launch_of(self, path: Path) -> Launch | None:
        launcher = self.registry.launcher
        live = launcher.by_model(path)
        if live is not None:
            return live
        failed = [la for la in launcher.launches.values()
                  if la.state in ("failed", "exited") and la.model == path]
        return failed[-1] if failed else None

    def _served_by(self, path: Path) -> str | None:
        """A server in the list (configured, demo, added) that has this file loaded."""
        real = str(path.resolve())
        for e in self.registry.entries.values():
            mp = e.info.model_path
            if mp and (mp == str(path) or str(Path(mp).resolve()) == real):
                return e.name
        return None

    def _current(self) -> ModelInfo | None:
        table = self.query_one(DataTable)
        if self.result is None or not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        return next((m for m in self.result.models if str(m.path) == key), None)

    def _detail(self) -> None:
        detail = self.query_one("#model-detail", Line)
        result = self.result
        if result is None:
            return
        if not result.models and not result.problems:
            where = ", ".join(str(p) for p in result.searched) or "nowhere (no such directories)"
            detail.set(f"No GGUF files found. Searched: {fmt.escape(where)}. Add directories "
                       "under [b][models] dirs[/b] in the config.")
            return
        table = self.query_one(DataTable)
        key = (table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
               if table.row_count else "")
        if key.startswith("problem:"):
            problem = next(p for p in result.problems if f"problem:{p.path}" == key)
            detail.set(f"[$error]{fmt.escape(str(problem.path))}[/]: "
                       f"{fmt.escape(problem.reason)}. Not started.")
            return
        m = self._current()
        if m is None:
            return
        facts = [x for x in (
            m.architecture, m.quant,
            requantized_words(m.requantized_from) if m.requantized_from else None,
            f"{m.params_label} params" if m.params_label else None,
            fmt.size(m.size_bytes), f"trained ctx {m.context_length}" if m.context_length
            else None, f"vocab {m.vocab_size}" if m.vocab_size else None,
            f"{len(m.shards)} shards" if m.is_split else None) if x]
        lines = [f"[b]{fmt.escape(m.display_name)}[/b] · {fmt.escape(' · '.join(facts))}",
                 fmt.escape(str(m.path))]
        launch = self._launch_of(m.path)
        if launch is not None and launch.state in ("starting", "ready"):
            s = launch.server
            lines.append(f"llama-server pid {s.pid} at {fmt.escape(launch.url)} · log "
                         f"{fmt.escape(str(s.log_path))}")
        elif launch is not None and launch.error:
            lines.append(f"[$error]{fmt.escape(launch.error)}[/]")
        detail.set("\n".join(lines))

    def _refresh_row(self, path: Path) -> None:
        table = self.query_one(DataTable)
        key = str(path)
        if key in table.rows:
            table.update_cell(key, "status", self._status(path), update_width=True)

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # A click (or Enter, which the screen takes first) on a row: mark it.
        self._toggle(event.row_key.value)

    # ------------------------------------------------------------------ actions

    def action_mark(self) -> None:
        m = self._current()
        if m is not None:
            self._toggle(str(m.path))

    def _toggle(self, key: str | None) -> None:
        if self.result is None or key is None:
            return
        m = next((x for x in self.result.models if str(x.path) == key), None)
        if m is None:
            return
        self.marked.symmetric_difference_update({m.path})
        table = self.query_one(DataTable)
        colours = self.app.theme_variables
        table.update_cell(key, "mark",
                          Text("✓", style=Style(bold=True, color=colours["accent"]))
                          if m.path in self.marked else Text("·", style="dim"))

    def action_launch(self) -> None:
        if self.result is None:
            return
        chosen = [m for m in self.result.models if m.path in self.marked]
        if not chosen and (m := self._current()) is not None:
            chosen = [m]
        launcher = self.registry.launcher
        busy = [m for m in chosen if launcher.by_model(m.path) is not None]
        for m in busy:
            self.notify(f"{m.path.name} is already running here.", severity="warning")
        chosen = [m for m in chosen if m not in busy]
        if not chosen:
            return
        chosen.sort(key=lambda m: -m.size_bytes)  # the most precise first: the reference
        todo = launcher.plan(chosen, taken=self.registry.entries.keys())
        report = launcher.check_fit(todo)
        for w in report.warnings:
            self.notify(w, title="fit check", severity="warning", markup=False, timeout=10)
        if report.refuse:
            self._refused = todo
            self.notify(f"{report.refuse} Press f to start anyway.", title="not started",
                        severity="error", markup=False, timeout=15)
            return
        self._start(todo)

    def action_ladder(self) -> None:
        """The marked files as a ladder (the app checks they are one model's quants)."""
        if self.result is None:
            return
        chosen = [m.path for m in self.result.models if m.path in self.marked]
        if len(chosen) < 2:
            self.notify("Mark two quants of one model or more (space), then L.",
                        severity="warning")
            return
        self.marked.clear()
        self.post_message(StartLadder(chosen))
        self.draw()

    def action_force(self) -> None:
        if self._refused:
            todo, self._refused = self._refused, None
            self._start(todo)

    def _start(self, todo: list[tuple[str, LaunchSpec]]) -> None:
        for _, spec in todo:
            self.marked.discard(spec.model)
        self.post_message(StartServers(todo))  # each launch comes back as LaunchChanged
        self.draw()

    def action_stop(self) -> None:
        m = self._current()
        if m is None:
            return
        launch = self._launch_of(m.path)
        if launch is None or (launch.state not in ("starting", "ready")
                              and launch.name not in self.registry.entries):
            self.notify("Only servers started here can be stopped here.", severity="warning")
            return
        self.post_message(StopServer(launch.name))  # stopped: LaunchChanged

    def action_close(self) -> None:
        self.app.pop_screen()
