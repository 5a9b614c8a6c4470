"""The TUI: `QuantTUI` wires the comparison session to the screens; nothing is measured here.

Build it with `build_app` (the CLI and the tests both do) from a config, a `ServerRegistry`
(default: the config's servers) and `AppOptions`. State goes down, messages come up: the screens
draw the registry and the `RunState` they are handed and post `quanttui.tui.messages` for every
change; only the app changes either. Cost rules, because the app runs beside the servers it
measures:

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
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Input

from quanttui.config import Config
from quanttui.core.hardware import HardwarePoller
from quanttui.core.hardware.poller import HwSample
from quanttui.core.hardware.summary import summary_sample
from quanttui.core.models.launcher import Launch
from quanttui.core.run.events import Event, Notice
from quanttui.core.run.records import RunResults
from quanttui.core.run.schedule import SCHEDULES
from quanttui.core.run.session import Session
from quanttui.tui.live import LiveRun
from quanttui.tui.messages import (
    AddServer,
    ChangeLaunchDefaults,
    HardwareSampled,
    LaunchChanged,
    OpenModels,
    ProbeServers,
    RemoveServer,
    ServersChanged,
    StartRun,
    StartServers,
    StopServer,
    ToggleServer,
)
from quanttui.tui.registry import Refused, ServerEntry, ServerRegistry
from quanttui.tui.screens.compare import CompareScreen
from quanttui.tui.screens.models import ModelsScreen
from quanttui.tui.screens.servers import ServersScreen
from quanttui.tui.state import SUITES, RunOptions, RunState, build_plan
from quanttui.tui.themes import DEFAULT_THEME, THEME_256, load_themes

REPETITION_CHOICES = (1, 3, 5, 10)
N_PREDICT_CHOICES = (32, 64, 128, 256, 512)
PROGRESS_S = 0.5  # how often a loading server's row in the model pane shows its time


@dataclass(frozen=True, kw_only=True)
class AppOptions:
    """How the app runs, apart from what it shows."""

    poller: HardwarePoller | None = None  # hardware samples; closed with the app
    animations: bool = True  # off: no animations and no cursor blink (tests, snapshots)
    probe_on_start: bool = True
    theme_dirs: Iterable[Path] | None = None  # None: the built-in and the user's themes
    contention: Callable[[list[Any]], list[str]] | None = None  # CPU-contention check of a run
    notes: Sequence[str] = ()  # toasts once the screen is up (what the servers' start said)
    few_colours: bool = False  # the terminal shows 256 colours or fewer
    handle_signals: bool = False  # SIGTERM and SIGHUP leave as `q` does


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

    def __init__(self, config: Config, registry: ServerRegistry, options: AppOptions) -> None:
        super().__init__()
        self._handle_signals = options.handle_signals
        self.exit_signal: int | None = None
        self._notes = list(options.notes)
        self.few_colours = options.few_colours
        self.config = config
        # The servers, the selection, and the launcher of the servers started here (stopped
        # when the app ends, and by run_tui).
        self.registry = registry
        self.poller = options.poller
        self.run_state = RunState(config, RunOptions.from_config(config), hw_off_reason=(
            None if options.poller is not None else "hardware sampling off"))
        self._blink = options.animations
        if not options.animations:
            self.animation_level = "none"
        self.probe_on_start = options.probe_on_start
        self.session: Session | None = None
        self.results: RunResults | None = None
        self._contention_check = options.contention
        self._drawn_version = -1
        self._toasted: set[tuple[str, str | None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        themes = load_themes(options.theme_dirs)
        self._theme_errors = themes.errors
        for theme in themes.themes.values():
            self.register_theme(theme)
        self.compare = CompareScreen(registry, self.run_state, blink=self._blink)

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
        if not self.registry.entries:
            self.push_screen(ServersScreen(self.registry, blink=self._blink))
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
        self.registry.launcher.stop_all()
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
        for entry in self.registry.to_probe():
            self._probe(entry)

    def _probe(self, entry: ServerEntry) -> None:
        async def probe() -> None:
            await self.registry.probe(entry)
            self.servers_changed()

        self.run_worker(probe(), group="probe", exit_on_error=False)

    def servers_changed(self, added: str | None = None) -> None:
        self.compare.draw_servers()
        if isinstance(self.screen, ServersScreen):
            self.screen.post_message(ServersChanged(added))

    def _refused(self, refused: Refused) -> None:
        self.notify(str(refused), severity=refused.severity)

    def on_toggle_server(self, message: ToggleServer) -> None:
        try:
            self.registry.toggle(message.name)
        except Refused as e:
            self._refused(e)
            return
        self._selection_changed()

    def on_add_server(self, message: AddServer) -> None:
        try:
            entry = self.registry.add_url(message.url)
        except Refused as e:
            self._refused(e)
            return
        if entry is not None:
            self._probe(entry)
            self._selection_changed(added=entry.name)

    def on_remove_server(self, message: RemoveServer) -> None:
        try:
            self.registry.remove(message.name)
        except Refused as e:
            self._refused(e)
            return
        self._selection_changed()

    def on_probe_servers(self, _: ProbeServers) -> None:
        self.probe_all()

    def on_open_models(self, _: OpenModels) -> None:
        self.action_models()

    def _selection_changed(self, added: str | None = None) -> None:
        if not self.running:
            self.run_state.live = None  # other servers: the last run's view no longer applies
        self._update_targets()
        self.compare.call_later(self.compare.set_columns, list(self.registry.selected))
        self.servers_changed(added)

    def _update_targets(self) -> None:
        if self.poller is not None:
            self.poller.set_targets(self.registry.targets())

    # ------------------------------------------------------------------ servers started here

    def on_start_servers(self, message: StartServers) -> None:
        """Start what the model pane planned (and fit-checked); each joins the list, selected,
        once healthy."""
        launcher = self.registry.launcher
        started: list[Launch] = []
        for name, spec in message.todo:
            launch = launcher.start(name, spec)  # on the loop's (main) thread: see core.launcher
            if launch.state == "failed":
                self.notify(launch.error or "failed", title=f"{name} not started",
                            severity="error", markup=False, timeout=15)
            else:
                started.append(launch)
            self._launch_changed(launch)
        if started:
            self.run_worker(self._wait_ready(started), group="launch", exit_on_error=False)

    async def _wait_ready(self, launches: list[Launch]) -> None:
        """Wait for servers started together; add the healthy ones in the order they were
        started (largest file first: the reference, A, is the most precise quant)."""
        launcher = self.registry.launcher
        shown_at: dict[str, float] = {}

        def progress(la: Launch) -> None:
            now = time.monotonic()
            if now - shown_at.get(la.name, 0.0) >= PROGRESS_S:
                shown_at[la.name] = now
                self._launch_changed(la)

        async def one(launch: Launch) -> bool:
            try:
                return await launcher.wait_ready(launch, on_progress=progress)
            except Exception as e:  # never leave a server half-started and unowned
                launcher.stop(launch.name)
                launch.state, launch.error = "failed", f"{launch.name}: {e!r}"
                return False
            finally:
                self._launch_changed(launch)

        t0 = time.monotonic()
        oks = await asyncio.gather(*(one(la) for la in launches))
        for launch, ok in zip(launches, oks, strict=True):
            if ok:
                self._probe(self.registry.add_launched(launch))
                self._selection_changed()
                # One toast per server: the start, and what happened on the way (a restart).
                notes = "".join(f"\n{n}" for n in launch.notes)
                self.notify(f"{launch.name}: {launch.model.name} at {launch.url}, ready in "
                            f"{time.monotonic() - t0:.1f} s; selected for the comparison."
                            f"{notes}", title="server started", markup=False,
                            severity="warning" if notes else "information")
            elif launch.state == "failed":
                self.notify(launch.error or "failed", title=f"{launch.name} did not start",
                            severity="error", markup=False, timeout=20)

    def on_stop_server(self, message: StopServer) -> None:
        try:
            self.registry.stop_launched(message.name)
        except Refused as e:
            self._refused(e)
            return
        self.notify(f"{message.name}: llama-server stopped.", markup=False)
        self._selection_changed()
        launch = self.registry.launcher.launches.get(message.name)
        if launch is not None:
            self._launch_changed(launch)

    def on_change_launch_defaults(self, message: ChangeLaunchDefaults) -> None:
        launcher = self.registry.launcher
        launcher.defaults = message.change(launcher.defaults)
        self._launch_changed(None)

    def _launch_changed(self, launch: Launch | None) -> None:
        if isinstance(self.screen, ModelsScreen):
            self.screen.post_message(LaunchChanged(launch))

    def on_hardware_sampled(self, message: HardwareSampled) -> None:
        self.run_state.hw = message.sample
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
            self.compare.draw_hardware(self.run_state.hw)
            self._tick()

    # ------------------------------------------------------------------ runs

    @property
    def running(self) -> bool:
        return self.session is not None

    def _set_session(self, session: Session | None) -> None:
        """A run starts (the selection is fixed) or ends."""
        self.session = session
        self.run_state.running = self.registry.frozen = session is not None

    def on_start_run(self, message: StartRun) -> None:
        self.start_run(message.typed)

    def start_run(self, typed: str | None = None) -> None:
        if self.running:
            self.notify("A run is on: x stops it.", severity="warning")
            return
        if not self.registry.selected:
            self.notify("No server selected: press s to choose the servers to compare.",
                        severity="error")
            return
        from quanttui.core.suites.prompts import PromptFileError

        try:
            plan = build_plan(self.config, self.run_state.options, typed)
        except (ValueError, PromptFileError) as e:
            self.notify(str(e), title="cannot start the run", severity="error")
            return
        if len(self.registry.selected) == 1:
            self.notify("One server selected: nothing to compare it with (s to add one).",
                        severity="warning")
        live: LiveRun | None = None

        def emit(ev: Event) -> None:
            # A bug here must never break a measurement: the session calls this per read.
            if live is not None:
                with contextlib.suppress(Exception):
                    live.on_event(ev)

        session = Session([e.spec for e in self.registry.chosen()], plan, emit=emit,
                          contention=self._contention_check)
        live = LiveRun(session.results)  # the results the session fills, read for stats
        self._set_session(session)
        self.run_state.live, self.run_state.contention = live, []
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
            self._set_session(None)
            self._flush_timer.pause()
            self._tick()
            self.refresh_bindings()
            self.compare.draw_status()

    def show_results(self, results: RunResults) -> None:
        """Show a finished run (a stored one, or one built by a test) as a live one ends."""
        from quanttui.tui.live import replay

        self.registry.adopt(results.servers)
        self._selection_changed()
        # The status bar states the shown run's settings, not the config's next run.
        gen = (results.extra.get("config") or {}).get("generation") or {}
        n_predict = gen.get("n_predict")
        state = self.run_state
        schedule = next((x for x in SCHEDULES if x == results.schedule), state.options.schedule)
        state.options = replace(
            state.options, schedule=schedule, repetitions=results.repetitions,
            n_predict=n_predict if isinstance(n_predict, int) else state.options.n_predict)
        self.results = results
        state.live = replay(results)
        self._drawn_version = -1
        self.compare.call_later(self._tick)
        if results.hardware and self.poller is None:
            # A stored run: its memory peaks instead of "n/a (hardware sampling off)".
            state.hw_off_reason = None
            self.post_message(HardwareSampled(summary_sample(results.hardware)))

    def _tick(self) -> None:
        live = self.run_state.live
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
            self.run_state.contention.append(n.message)
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
            self.push_screen(ServersScreen(self.registry, blink=self._blink))

    def action_models(self) -> None:
        if not isinstance(self.screen, ModelsScreen):
            self.push_screen(ModelsScreen(self.registry, self.config.models))

    def action_cycle_schedule(self) -> None:
        self.set_schedule(self.run_state.options.next_schedule())

    def set_schedule(self, schedule: str) -> None:
        if schedule not in SCHEDULES:
            return
        self.run_state.options.schedule = schedule
        self.compare.draw_status()
        if self.running:
            self.notify(f"Schedule {schedule} applies to the next run.")

    def action_cycle_suite(self) -> None:
        self.set_suite(self.run_state.options.next_suite())

    def set_suite(self, suite: str) -> None:
        if suite in SUITES:
            self.run_state.options.suite = suite
            self.compare.draw_status()

    def action_repetitions(self, delta: int) -> None:
        self.set_repetitions(self.run_state.options.repetitions + delta)

    def set_repetitions(self, n: int) -> None:
        self.run_state.options.repetitions = min(max(n, 1), 1000)
        self.compare.draw_status()

    def set_n_predict(self, n: int) -> None:
        self.run_state.options.n_predict = n
        self.compare.draw_status()

    def action_snapshot(self) -> None:
        """The screen as SVG and the results so far as JSON, side by side in the export dir
        (written as the headless run and `quanttui snapshot` write them)."""
        from quanttui.config import config_to_dict
        from quanttui.core.reports.snapshot import write_snapshot

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
        o = self.run_state.options
        return RunResults(servers=[e.info for e in self.registry.chosen()],
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


def build_app(config: Config, registry: ServerRegistry | None = None,
              **options: Any) -> QuantTUI:
    """The app for `config`, showing `registry` (default: the config's servers reached by URL);
    `options` are `AppOptions`' fields."""
    if registry is None:
        registry = ServerRegistry.from_config(config)
    return QuantTUI(config, registry, AppOptions(**options))


def run_tui(cfg: Config, *, llama_server: str | None = None, force: bool = False,
            pin_cores: bool = False) -> int:
    """`quanttui` / `quanttui run` / `quanttui demo`: start the config's managed servers (if
    any) as the headless run starts them, open the app, stop them when it closes."""
    import sys

    from rich.console import Console

    from quanttui.core.models.launcher import specs_from_config
    from quanttui.core.models.servers import ServerStartError
    from quanttui.core.run.contention import assess

    # The app's own registry and launcher: the servers started here and those started from the
    # model pane are stopped by its one stop_all, also when the start fails half-way.
    registry = ServerRegistry.from_config(cfg, llama_server=llama_server)
    poller: HardwarePoller | None = None
    app: QuantTUI | None = None
    try:
        # The one start path (fit check, core pinning, readiness, SIGILL retry), progress on
        # stderr before the screen opens.
        launches = asyncio.run(registry.launcher.start_together(
            specs_from_config(cfg, pin_cores), force=force,
            say=lambda line: print(line, file=sys.stderr)))
        for la in launches:
            registry.add_launched(la)
        poller = HardwarePoller(interval_s=cfg.hardware.poll_interval)
        app = build_app(cfg, registry, poller=poller, contention=assess,
                        notes=[f"{la.name}: {n}" for la in launches for n in la.notes],
                        few_colours=Console().color_system in ("256", "standard"),
                        handle_signals=True)
        app.run()
    except ServerStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped while starting servers", file=sys.stderr)
        return 130
    finally:
        registry.launcher.stop_all()
        if poller is not None:
            poller.close()
    if app is not None and app.exit_signal is not None:
        print(f"stopped by signal {signal.Signals(app.exit_signal).name}; servers stopped",
              file=sys.stderr)
        return 128 + app.exit_signal
    return 0
