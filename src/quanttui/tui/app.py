"""The TUI: `QuantTUI` wires the comparison session to the screens; nothing is measured here.

Build it with `build_app` (the CLI and the tests both do) from a config, the servers, and an
optional hardware poller. Cost rules, because the app runs beside the servers it measures:

- the session runs as an async worker on the app's loop and emits into a `LiveRun` buffer; no
  message per token;
- a timer draws the buffer `run.refresh_hz` times a second (2 by default: every frame costs
  Textual a few ms), only while a run is on, and only what changed: appended text every tick,
  the figures (sparklines, speed, memory, status) once a second in the same frame, paired
  statistics when a prompt has finished everywhere;
- hardware samples arrive as one replaceable message per poll;
- hidden screens are not drawn; they catch up from the buffer when shown again.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Input

from quanttui.config import Config
from quanttui.core.run.events import Event, Notice
from quanttui.core.hardware import HardwarePoller, ProcessTarget
from quanttui.core.hardware.poller import HwSample
from quanttui.core.hardware.summary import summary_sample
from quanttui.core.models.launcher import Launch, Launcher, defaults_from, free_vram
from quanttui.core.run.records import RunResults
from quanttui.core.run.session import SCHEDULES, ServerSpec, Session
from quanttui.tui.live import LiveRun
from quanttui.tui.messages import HardwareSampled, ServersChanged
from quanttui.tui.screens.compare import CompareScreen
from quanttui.tui.screens.models import ModelsScreen
from quanttui.tui.screens.servers import ServersScreen
from quanttui.tui.state import (
    SUITES,
    RunOptions,
    ServerEntry,
    build_plan,
    entries_from_config,
    probe,
    url_problem,
)
from quanttui.tui.themes import DEFAULT_THEME, THEME_256, load_themes

REPETITION_CHOICES = (1, 3, 5, 10)
N_PREDICT_CHOICES = (32, 64, 128, 256, 512)


class QuantTUI(App[None]):
    CSS_PATH = "quanttui.tcss"
    TITLE = "quanttui"
    # Screens taller than this get taller sparklines (the `-tall` class in the stylesheet).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]  # noqa: RUF012 (Textual's own type)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "snapshot", "Save", priority=True,
                tooltip="Save the screen (SVG) and the results (JSON) to the export folder"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        config: Config,
        entries: Sequence[ServerEntry],
        *,
        selected: Sequence[str] | None = None,
        poller: HardwarePoller | None = None,
        animations: bool = True,
        probe_on_start: bool = True,
        theme_dirs: Iterable[Path] | None = None,
        contention: Callable[[list[Any]], list[str]] | None = None,
        notes: Sequence[str] = (),
        few_colours: bool = False,
        llama_server: str | Path | None = None,
        handle_signals: bool = False,
    ) -> None:
        super().__init__()
        self._handle_signals = handle_signals
        self.exit_signal: int | None = None
        # Servers started from the model pane; stopped when the app ends (and by run_tui).
        self.launcher = Launcher(defaults_from(config.models), llama_server=llama_server,
                                 vram_free=free_vram)
        self._notes = list(notes)
        self.few_colours = few_colours  # the terminal shows 256 colours or fewer
        self.config = config
        self.entries: dict[str, ServerEntry] = {e.name: e for e in entries}
        self.selected: list[str] = [n for n in (selected if selected is not None
                                                else self.entries) if n in self.entries]
        self.options = RunOptions.from_config(config)
        self.poller = poller
        self.hw: HwSample | None = None
        self.hw_off_reason = None if poller is not None else "hardware sampling off"
        self.blink = animations
        if not animations:
            self.animation_level = "none"
        self.probe_on_start = probe_on_start
        self.session: Session | None = None
        self.live: LiveRun | None = None
        self.results: RunResults | None = None
        self.contention: list[str] = []
        self._contention_check = contention
        self._drawn_version = -1
        self._toasted: set[tuple[str, str | None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._suite_labels: dict[str, str] = {}
        themes = load_themes(theme_dirs)
        self._theme_errors = themes.errors
        for theme in themes.themes.values():
            self.register_theme(theme)
        self.compare = CompareScreen()

    # ------------------------------------------------------------------ lifecycle

    def get_default_screen(self) -> Screen[Any]:
        return self.compare

    def on_mount(self) -> None:
        wanted = self.config.run.theme
        if wanted == DEFAULT_THEME and self.few_colours:
            # The default's subtle panels collapse to one black on a 256-colour terminal (SSH,
            # tmux): unless a theme was chosen, take the one made of palette colours.
            wanted = THEME_256
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.theme = DEFAULT_THEME
            self.notify(f"theme {wanted!r} not found; using {DEFAULT_THEME}. Built-in and "
                        "user themes are listed under Theme in the command palette (ctrl+p).",
                        severity="warning")
        for err in self._theme_errors:
            self.notify(err, title="theme file skipped", severity="warning")
        for note in self._notes:
            self.notify(note, title="server start", severity="warning", markup=False)
        self._flush_timer = self.set_interval(1 / self.config.run.refresh_hz, self._tick,
                                             pause=True)
        if self.poller is not None:
            def hand_over(sample: HwSample) -> None:  # on the poller's thread
                self.post_message(HardwareSampled(sample))

            self._unsubscribe = self.poller.subscribe(hand_over)
            self._update_targets()
            self.poller.start()
        if self.probe_on_start:
            self.probe_all()
        if not self.entries:
            self.push_screen(ServersScreen())
        if self._handle_signals:
            # SIGTERM, and SIGHUP when an SSH connection drops: leave like `q` does (terminal
            # restored, run stopped, servers stopped), instead of dying mid-screen.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGHUP):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        self.exit_signal = sig
        if self.session is not None:
            self.session.stop()
        self.exit()

    def on_unmount(self) -> None:
        if self.session is not None:
            self.session.stop()
        self.launcher.stop_all()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.poller is not None:
            self.poller.close()

    async def action_quit(self) -> None:
        if self.session is not None:
            self.session.stop()
        self.exit()

    # ------------------------------------------------------------------ servers

    def probe_all(self) -> None:
        if self.running:  # probing adds requests to servers being measured
            return
        for entry in self.entries.values():
            if entry.health != "checking":
                self.run_worker(self._probe(entry), group="probe", exit_on_error=False)

    async def _probe(self, entry: ServerEntry) -> None:
        await probe(entry)
        self.servers_changed()

    def servers_changed(self) -> None:
        self.compare.draw_servers()
        if isinstance(self.screen, ServersScreen):
            self.screen.post_message(ServersChanged())

    def toggle_selected(self, name: str) -> None:
        if self.running:
            self.notify("Stop the run (x) before changing the servers.", severity="warning")
            return
        if name in self.selected:
            self.selected.remove(name)
        else:
            self.selected.append(name)
        self._selection_changed()

    def add_server(self, url: str) -> bool:
        url = url.rstrip("/")
        if not url:
            return False
        if "://" not in url:
            url = "http://" + url
        problem = url_problem(url)
        if problem:
            self.notify(f"{url}: {problem}", severity="error")
            return False
        if any(e.spec.url == url for e in self.entries.values()):
            self.notify(f"{url} is already in the list.", severity="warning")
            return False
        name = url.split("://", 1)[1]
        self._add_entry(ServerEntry(ServerSpec(name, url), source="added"))
        return True

    def add_launched(self, launch: Launch) -> None:
        """A server the model pane started and is now healthy: listed, probed, and selected
        for the next run."""
        s = launch.server
        spec = ServerSpec(launch.name, launch.url, pid=s.pid, launch_args=tuple(s.spawned_args))
        self._add_entry(ServerEntry(spec, source="launched"))

    def _add_entry(self, entry: ServerEntry) -> None:
        """Listed, probed, and selected for the next run (not the one running)."""
        self.entries[entry.name] = entry
        self.run_worker(self._probe(entry), group="probe", exit_on_error=False)
        if not self.running:
            self.selected.append(entry.name)
        self._selection_changed()

    def stop_launched(self, name: str) -> bool:
        """Stop a server the model pane started and take it off the list."""
        if not self._drop_entry(name, "stopping"):
            return False
        self.launcher.stop(name)
        self.notify(f"{name}: llama-server stopped.", markup=False)
        return True

    def remove_server(self, name: str) -> None:
        entry = self.entries.get(name)
        if entry is None or entry.source != "added":
            self.notify("Only servers added here can be removed; deselect the others.",
                        severity="warning")
            return
        self._drop_entry(name, "removing")

    def _drop_entry(self, name: str, doing: str) -> bool:
        """Off the list and the selection; refused for a server the running run compares."""
        if self.running and name in self.selected:
            self.notify(f"Stop the run (x) before {doing} a compared server.",
                        severity="warning")
            return False
        self.entries.pop(name, None)
        if name in self.selected:
            self.selected.remove(name)
        self._selection_changed()
        return True

    def _selection_changed(self) -> None:
        if not self.running:
            self.live = None  # other servers: the last run's view no longer applies
        self._update_targets()
        self.compare.call_later(self.compare.set_columns, list(self.selected))
        self.servers_changed()

    def _update_targets(self) -> None:
        if self.poller is not None:
            self.poller.set_targets(
                ProcessTarget(n, url=self.entries[n].spec.url, pid=self.entries[n].spec.pid)
                for n in self.selected)

    def on_hardware_sampled(self, message: HardwareSampled) -> None:
        self.hw = message.sample
        if self.running:
            self.compare.hw_pending = True  # drawn with the run's figures, in one frame
        elif self.screen is self.compare:
            # A sample queued while the app closes finds the widgets gone: nothing to draw.
            with contextlib.suppress(NoMatches):
                self.compare.draw_hardware(message.sample)

    def on_screen_resume(self) -> None:
        # Back on the compare screen: draw what arrived while it was hidden.
        if self.screen is self.compare:
            self._drawn_version = -1
            self.compare.draw_servers()
            self.compare.draw_hardware(self.hw)
            self._tick()

    # ------------------------------------------------------------------ runs

    @property
    def running(self) -> bool:
        return self.session is not None

    def start_run(self, typed: str | None = None) -> None:
        if self.running:
            self.notify("A run is on: x stops it.", severity="warning")
            return
        if not self.selected:
            self.notify("No server selected: press s to choose the servers to compare.",
                        severity="error")
            return
        from quanttui.core.suites.prompts import PromptFileError

        try:
            plan = build_plan(self.config, self.options, typed)
        except (ValueError, PromptFileError) as e:
            self.notify(str(e), title="cannot start the run", severity="error")
            return
        if len(self.selected) == 1:
            self.notify("One server selected: nothing to compare it with (s to add one).",
                        severity="warning")
        live: LiveRun | None = None

        def emit(ev: Event) -> None:
            # A bug here must never break a measurement: the session calls this per read.
            if live is not None:
                with contextlib.suppress(Exception):
                    live.on_event(ev)

        session = Session([self.entries[n].spec for n in self.selected], plan, emit=emit,
                          contention=self._contention_check)
        live = LiveRun(session.results)  # the results the session fills, read for stats
        self.session, self.live, self.contention = session, live, []
        self._drawn_version = -1
        self._toasted.clear()
        self.compare.reset_columns()
        self.compare.draw_servers()
        self.refresh_bindings()
        self._flush_timer.resume()
        self.run_worker(self._run(session), name="run", group="run", exclusive=True,
                        exit_on_error=False)

    async def _run(self, session: Session) -> None:
        t0 = time.perf_counter_ns()  # the poller's clock
        try:
            await session.run()
        except Exception as e:  # never a crash: say what happened, keep what finished
            self.notify(f"{type(e).__name__}: {e}", title="run failed", severity="error")
        finally:
            if self.poller is not None:  # memory over the run, as the headless run keeps it
                from quanttui.core.hardware.summary import hardware_json

                r = session.results
                r.hardware = hardware_json(self.poller.history(since_ns=t0),
                                           self.poller.host_info(),
                                           [(s.name, s.model_path) for s in r.servers])
            self.results = session.results
            self.session = None
            self._flush_timer.pause()
            self._tick()
            self.refresh_bindings()
            self.compare.draw_status()

    def show_results(self, results: RunResults) -> None:
        """Show a finished run (a stored one, or one built by a test) as a live one ends."""
        from quanttui.tui.live import replay

        for info in results.servers:
            entry = self.entries.get(info.name)
            if entry is None:
                entry = self.entries[info.name] = ServerEntry(
                    ServerSpec(info.name, info.url, pid=info.pid), source="added")
            entry.info = info
            entry.health = "ok" if info.reachable else "down"
            entry.error = info.error
        self.selected = list(results.server_names)
        self._selection_changed()
        # The status bar states the shown run's settings, not the config's next run.
        gen = (results.extra.get("config") or {}).get("generation") or {}
        n_predict = gen.get("n_predict")
        schedule = next((x for x in SCHEDULES if x == results.schedule), self.options.schedule)
        self.options = replace(
            self.options, schedule=schedule, repetitions=results.repetitions,
            n_predict=n_predict if isinstance(n_predict, int) else self.options.n_predict)
        self.results = results
        self.live = replay(results)
        self._drawn_version = -1
        self.compare.call_later(self._tick)
        if results.hardware and self.poller is None:
            # A stored run: its memory peaks instead of "n/a (hardware sampling off)".
            self.hw_off_reason = None
            self.post_message(HardwareSampled(summary_sample(results.hardware)))

    def _tick(self) -> None:
        live = self.live
        if live is None:
            return
        if live.notices:
            notices, live.notices = live.notices, []
            for n in notices:
                self._notice(n)
        if self.screen is not self.compare or live.version == self._drawn_version:
            return
        self._drawn_version = live.version
        self.compare.draw_run(live, time.monotonic())

    def _notice(self, n: Notice) -> None:
        if n.code == "contention":
            self.contention.append(n.message)
            self.notify(n.message, title="CPU contention", severity="warning", timeout=12)
            return
        if n.code == "simultaneous":
            return  # the status line shows the schedule
        # A server that fails keeps failing: one toast per kind and server per run; the
        # column is marked for the rest.
        once = (n.code, n.server)
        if n.code == "request-failed" and once in self._toasted:
            return
        self._toasted.add(once)
        severity = {"info": "information", "warning": "warning", "error": "error"}[n.level]
        title = {"request-failed": "request failed", "server-down": "server down",
                 "server-unreachable": "server unreachable", "interrupted": "stopped",
                 "slots": "slots"}.get(n.code, n.code)
        self.notify(n.message, title=title, severity=severity,  # type: ignore[arg-type]
                    timeout=8 if n.level == "error" else 5, markup=False)

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run_suite":
            return not self.running
        if action == "stop":
            return self.running
        if action == "repetitions":  # "+" and "-" go into a focused input: hide the key
            return not isinstance(self.focused, Input)
        return True

    def action_run_suite(self) -> None:
        self.start_run()

    def action_stop(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.notify("Stopping: requests in flight are cancelled, finished ones kept.")

    def action_servers(self) -> None:
        if not isinstance(self.screen, ServersScreen):
            self.push_screen(ServersScreen())

    def action_models(self) -> None:
        if not isinstance(self.screen, ModelsScreen):
            self.push_screen(ModelsScreen())

    def action_cycle_schedule(self) -> None:
        self.set_schedule(self.options.next_schedule())

    def set_schedule(self, schedule: str) -> None:
        if schedule not in SCHEDULES:
            return
        self.options.schedule = schedule
        self.compare.draw_status()
        if self.running:
            self.notify(f"Schedule {schedule} applies to the next run.")

    def action_cycle_suite(self) -> None:
        self.set_suite(self.options.next_suite())

    def set_suite(self, suite: str) -> None:
        if suite in SUITES:
            self.options.suite = suite
            self.compare.draw_status()

    def action_repetitions(self, delta: int) -> None:
        self.set_repetitions(self.options.repetitions + delta)

    def set_repetitions(self, n: int) -> None:
        self.options.repetitions = min(max(n, 1), 1000)
        self.compare.draw_status()

    def set_n_predict(self, n: int) -> None:
        self.options.n_predict = n
        self.compare.draw_status()

    def suite_label(self) -> str:
        suite = self.options.suite
        if suite not in self._suite_labels:
            try:
                n = len(build_plan(self.config, self.options).prompts)
                self._suite_labels[suite] = f"{suite} ({n})"
            except Exception:  # a bad prompt file is reported when a run starts
                self._suite_labels[suite] = suite
        return self._suite_labels[suite]

    def action_snapshot(self) -> None:
        """The screen as SVG and the results so far as JSON, side by side in the export dir
        (written as the headless run and `quanttui snapshot` write them)."""
        from quanttui.core.reports.snapshot import write_snapshot
        from quanttui.headless import config_to_dict

        out = Path(self.config.run.export_dir)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base, i = f"quanttui-{stamp}", 1
        while (out / f"{base}.svg").exists() or (out / f"{base}.json").exists():
            i += 1
            base = f"quanttui-{stamp}-{i}"
        results = (self.session.results if self.session is not None
                   else self.results or self._no_results())
        results.extra.setdefault("config", config_to_dict(self.config))
        screen = self.export_screenshot()  # now, before the notification covers it
        try:
            files = write_snapshot(results, out, base, ("svg", "json"), svg=lambda _: screen)
        except OSError as e:
            self.notify(f"cannot write to {out}: {e}", title="snapshot failed",
                        severity="error")
            return
        self.notify("\n".join(map(str, files)), title="snapshot saved", markup=False)

    def _no_results(self) -> RunResults:
        o = self.options
        return RunResults(servers=[self.entries[n].info for n in self.selected],
                          schedule=o.schedule, endpoint=self.config.run.endpoint,
                          repetitions=o.repetitions, warmup=self.config.run.warmup,
                          concurrency_levels=(self.config.run.concurrency,))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if self.running:
            yield SystemCommand("Stop run", "Stop the run; finished requests are kept",
                                self.action_stop)
        else:
            yield SystemCommand("Run suite", "Run the chosen prompt suite on the selected "
                                "servers", self.action_run_suite)
        yield SystemCommand("Servers", "Choose the servers to compare, add a URL",
                            self.action_servers)
        yield SystemCommand("Models", "GGUF files on disk: start llama-server for them",
                            self.action_models)
        yield SystemCommand("Save snapshot", "Screen as SVG and results as JSON in "
                            f"{self.config.run.export_dir}", self.action_snapshot)
        for s in SCHEDULES:
            yield SystemCommand(f"Schedule: {s}", f"Run the servers {s}ly" if s != "simultaneous"
                                else "All servers stream at once", lambda s=s: self.set_schedule(s))
        for suite in SUITES:
            yield SystemCommand(f"Prompt suite: {suite}", "The prompts r runs",
                                lambda s=suite: self.set_suite(s))
        for n in REPETITION_CHOICES:
            yield SystemCommand(f"Repetitions: {n}", "Times each prompt runs on each server",
                                lambda n=n: self.set_repetitions(n))
        for n in N_PREDICT_CHOICES:
            yield SystemCommand(f"Tokens per request: {n}", "n_predict of the next run",
                                lambda n=n: self.set_n_predict(n))


def build_app(
    config: Config,
    servers: Sequence[ServerSpec] | None = None,
    *,
    launched: Sequence[ServerSpec] = (),
    selected: Sequence[str] | None = None,
    poller: HardwarePoller | None = None,
    animations: bool = True,
    probe_on_start: bool = True,
    theme_dirs: Iterable[Path] | None = None,
    contention: Callable[[list[Any]], list[str]] | None = None,
    notes: Sequence[str] = (),
    few_colours: bool = False,
    llama_server: str | Path | None = None,
    handle_signals: bool = False,
) -> QuantTUI:
    """The app from its parts; `servers` defaults to the config's servers reached by URL."""
    entries = (entries_from_config(config) if servers is None
               else [ServerEntry(s) for s in servers])
    entries += [ServerEntry(s, source="launched") for s in launched]
    return QuantTUI(config, entries, selected=selected, poller=poller, animations=animations,
                    probe_on_start=probe_on_start, theme_dirs=theme_dirs, contention=contention,
                    notes=notes, few_colours=few_colours, llama_server=llama_server,
                    handle_signals=handle_signals)


def run_tui(cfg: Config, *, llama_server: str | None = None, force: bool = False,
            pin_cores: bool = False) -> int:
    """`quanttui` / `quanttui run` / `quanttui demo`: start the config's managed servers (if
    any) as the headless run starts them, open the app, stop them when it closes."""
    import sys

    from rich.console import Console

    from quanttui.core.run.contention import assess
    from quanttui.core.models.servers import ManagedServer, ServerStartError
    from quanttui.headless import HeadlessRun

    managed: list[ManagedServer] = []
    poller: HardwarePoller | None = None
    app: QuantTUI | None = None
    try:
        # The headless run's own start-up (fit check, core pinning, readiness, SIGILL retry),
        # progress on stderr before the screen opens.
        launcher = HeadlessRun(cfg, {}, llama_server=llama_server, force=force,
                               pin_cores=pin_cores)
        managed = asyncio.run(launcher.launch_servers())
        poller = HardwarePoller(interval_s=cfg.hardware.poll_interval)
        app = build_app(cfg, launched=[ServerSpec(m.label, m.url, pid=m.pid,
                                                  launch_args=tuple(m.args)) for m in managed],
                        poller=poller, contention=assess,
                        notes=[f"{m.label}: {n}" for m in managed for n in m.notes],
                        few_colours=Console().color_system in ("256", "standard"),
                        llama_server=llama_server, handle_signals=True)
        app.run()
    except ServerStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped while starting servers", file=sys.stderr)
        return 130
    finally:
        if app is not None:
            app.launcher.stop_all()
        for m in managed:
            m.stop()
        if poller is not None:
            poller.close()
    if app is not None and app.exit_signal is not None:
        print(f"stopped by signal {signal.Signals(app.exit_signal).name}; servers stopped",
              file=sys.stderr)
        return 128 + app.exit_signal
    return 0
