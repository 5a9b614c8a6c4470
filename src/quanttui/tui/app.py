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
  statistics when a prompt has finished everywhere; when the app's own CPU is over
  TEXT_BUDGET (a small machine, or servers streaming hundreds of tokens a second), a frame
  (text and all) comes once a second, and where that is still over, every two seconds
  (SLOW_FRAMES_S); for 2 s every 20 s nothing is drawn, the control against which the run
  measures what drawing cost the servers (core.run.perturbation);
- hardware samples arrive as one replaceable message per poll;
- hidden screens are not drawn; they catch up from the buffer when shown again;
- the hardware poller samples every RUN_POLL_S seconds while a run or the quality step is on
  (`hardware.poll_interval` when the config sets another value than its default) and every
  IDLE_POLL_S seconds in between: a sample costs about 1 ms, and a walk of a server's mappings
  (USS, PSS, model pages; every 30 s, core.hardware.process) 15 ms per 370 MB resident.

What happens is said in the notices log (one line on the compare screen, all of it with `n`);
toasts are short and only answer a key the user pressed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

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
from quanttui.core.run.outside_load import add_load_notices
from quanttui.core.run.perturbation import QuietWindows, add_perturbation
from quanttui.core.run.records import RunResults
from quanttui.core.run.schedule import SCHEDULES
from quanttui.core.run.session import Session
from quanttui.tui.exit_deadline import ExitDeadline, drain_after_errors, on_terminal_lost
from quanttui.tui.input_thread import install as quiet_input_thread
from quanttui.tui.job_control import install as suspend_on_the_loop
from quanttui.tui.labels import short_labels
from quanttui.tui.live import LiveRun
from quanttui.tui.messages import (
    AddServer,
    ChangeLaunchDefaults,
    HardwareSampled,
    LaunchChanged,
    OpenModels,
    OpenRun,
    ProbeServers,
    RemoveServer,
    ResultsChanged,
    ServersChanged,
    ShowPrompt,
    StartLadder,
    StartRun,
    StartServers,
    StopServer,
    ToggleServer,
)
from quanttui.tui.quality_run import TuiQuality
from quanttui.tui.registry import Refused, ServerEntry, ServerRegistry
from quanttui.tui.saving import TuiSave
from quanttui.tui.screens.compare import CompareScreen
from quanttui.tui.screens.notices import NoticesScreen
from quanttui.tui.screens.servers import ServersScreen
from quanttui.tui.state import SUITES, Level, RunOptions, RunState, build_plan
from quanttui.tui.themes import DEFAULT_THEME, THEME_256, load_themes

if TYPE_CHECKING:
    from quanttui.core.run.plan import RunPlan
    from quanttui.tui.ladder_run import TuiLadder

# The views opened later (results, prompts, history, model pane) and the ladder runner are
# imported where they are first used: the first frame waits for every module imported here.

REPETITION_CHOICES = (1, 3, 5, 10)
N_PREDICT_CHOICES = (32, 64, 128, 256, 512)
PROGRESS_S = 0.5  # how often a loading server's row in the model pane shows its time
RUN_POLL_S = 10.0  # hardware samples during a run (unless the config sets poll_interval)
IDLE_POLL_S = 10.0  # hardware samples between runs
START_WAIT_S = 2.0  # a selected server still being asked at a run's start: waited for this long
TOAST_S = 4.0
# Leaving with a run on (q, a signal, the terminal gone): how long to wait for its in-flight
# requests to be recorded as cancelled and the run stored. Well inside the exit deadline
# (tui.exit_deadline.DEFAULT_S), which also has to stop the servers.
LEAVE_WAIT_S = 2.0
# Of one core: the app's own CPU (every thread) above which frames come less often. Under
# the 1.5% quanttui promises with room for a loaded machine's noise: on a 2-core EPYC VM two
# frames a second with two llama-servers streaming cost ~1.5% in all, one ~1.05%; on the same
# VM in a busier hour one a second cost ~1.6% at 160x48.
TEXT_BUDGET = 0.012
# The seconds between frames while over the budget, a step further each window still over it.
SLOW_FRAMES_S = (1.0, 2.0)
BUDGET_S = 5.0  # the window the app's CPU is measured over while a run is on


@dataclass(frozen=True, kw_only=True)
class AppOptions:
    """How the app runs, apart from what it shows."""

    poller: HardwarePoller | None = None  # hardware samples; closed with the app
    animations: bool = True  # off: no animations and no cursor blink (tests, snapshots)
    probe_on_start: bool = True
    theme_dirs: Iterable[Path] | None = None  # None: the built-in and the user's themes
    contention: Callable[[list[Any]], list[str]] | None = None  # CPU-contention check of a run
    notes: Sequence[str] = ()  # for the notices log once the screen is up (server starts)
    few_colours: bool = False  # the terminal shows 256 colours or fewer
    # SIGTERM, SIGHUP, SIGINT and the terminal going away leave as `q` does
    handle_signals: bool = False
    # leave for sure (servers killed) a few seconds after starting to leave (tui.exit_deadline)
    exit_deadline: ExitDeadline | None = None


class QuantTUI(App[None]):
    CSS_PATH = "quanttui.tcss"
    TITLE = "quanttui"
    # Screens taller than this get taller sparklines (the `-tall` class in the stylesheet).
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]  # noqa: RUF012 (Textual's own type)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "snapshot", "Save", priority=True,
                tooltip="Save the screen (SVG) and the results (JSON) to the export folder"),
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "keys", "Keys", key_display="?",
                tooltip="Show or hide every key of this screen"),
    ]

    def __init__(self, config: Config, registry: ServerRegistry, options: AppOptions) -> None:
        super().__init__()
        self._handle_signals = options.handle_signals
        self._exit_deadline = options.exit_deadline
        self.exit_signal: int | None = None  # the signal it left on (terminal lost: SIGHUP)
        self.terminal_gone = False
        self._leaving = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._run_over = asyncio.Event()  # the run's worker has ended (its run stored or not)
        # A run goes into the history once: claimed by the loop, or by the exit deadline's
        # thread when the loop is stuck (then `_stored_event` says the loop's store ended).
        self._claim_lock = threading.Lock()
        self._claimed: RunResults | None = None
        self._stored_event = threading.Event()
        # the history id of a run stopped by leaving; 0: it had nothing finished to store
        self.stored_on_leaving: int | None = None
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
        self._last_session: Session | None = None  # what the exit deadline may have to store
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
        self._starting = False  # a run asked for: waiting for servers still being asked
        self._plan: RunPlan | None = None  # the last run's plan (its prompts, for quality)
        self._typed_run = False
        # runs in the history and their ids (the last one stored, and the results view's):
        # a quality step run on one later updates its entry
        self._stored: list[tuple[RunResults, int]] = []
        self._first_probe: set[str] = set()  # servers whose first answer is still due
        self._probed = asyncio.Event()  # set whenever a probe ends
        self._drawn_at = 0.0
        self._budget_at: tuple[float, float] | None = None  # (monotonic, process CPU)
        self._quiet = QuietWindows()  # when a run's screen is not drawn (its own cost)
        self.quality_step = TuiQuality(self)  # the quality step on the run shown
        self.saving = TuiSave(self)  # ctrl+s
        self._slow_level = 0  # frames every SLOW_FRAMES_S[level - 1] s; 0: refresh_hz

    @functools.cached_property
    def ladder(self) -> TuiLadder:
        """A ladder started from the model pane (made, and its runner imported, when first
        asked about)."""
        from quanttui.tui.ladder_run import TuiLadder

        return TuiLadder(self)

    @property
    def ladder_on(self) -> bool:
        """Whether a ladder is on (False, without making one, when none was ever asked for)."""
        return "ladder" in self.__dict__ and self.ladder.on

    # ------------------------------------------------------------------ lifecycle

    def get_default_screen(self) -> Screen[Any]:
        return self.compare

    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, self._screen_changed)
        wanted = self.config.run.theme
        if wanted == DEFAULT_THEME and self.few_colours:
            # The default's subtle panels collapse to one black on a 256-colour terminal (SSH,
            # tmux): unless a theme was chosen, take the one made of palette colours.
            wanted = THEME_256
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            self.theme = DEFAULT_THEME
            self.say("warning", "theme", f"{wanted!r} not found; using {DEFAULT_THEME} "
                     "(themes: ctrl+p, Theme)", toast=True)
        for err in self._theme_errors:
            self.say("warning", "theme file skipped", err)
        for note in self._notes:
            self.say("warning", "server start", note)
        self._flush_timer = self.set_interval(1 / self.config.run.refresh_hz, self._tick,
                                             pause=True)
        if self.poller is not None:
            def hand_over(sample: HwSample) -> None:  # on the poller's thread
                self.post_message(HardwareSampled(sample))

            self._unsubscribe = self.poller.subscribe(hand_over)
            self._update_targets()
            self.poll_pace()
            self.poller.start()
        if self.probe_on_start:
            self._first_probe = set(self.registry.entries)
            self.probe_all()
        if not self.registry.entries:
            self.push_screen(ServersScreen(self.registry, blink=self._blink))
        self._loop = asyncio.get_running_loop()
        if self._exit_deadline is not None:
            self._exit_deadline.rescue = self._rescue
        if self._handle_signals:
            # SIGTERM, SIGHUP when an SSH connection drops, SIGINT (kill -INT; the ctrl+c key
            # is Textual's "press q to quit"), and a terminal that fails a write or a read: leave
            # like `q` does (run stopped and stored, terminal restored, servers stopped) instead
            # of dying mid-screen. A plain handler, not one on the event loop: it runs even when
            # the loop is blocked (a terminal that is gone can block it, see
            # tui.exit_deadline), and arms the deadline.
            def on_signal(sig: int, _frame: object) -> None:
                self._leave_soon(sig)

            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                with contextlib.suppress(ValueError):  # not the main thread (tests)
                    signal.signal(sig, on_signal)
            on_terminal_lost(self._terminal_lost)
            # The app owns the process: once the screen is up, what exists (modules, classes,
            # widgets: ~80k objects) lives as long as the app, and the collector need not walk
            # it again. Its full collections during a run took 0.16% of a core.
            self.call_after_refresh(gc.freeze)

    def _leave_soon(self, sig: int) -> None:
        """From a signal handler or any thread: arm the deadline now, then leave on the loop."""
        if self._exit_deadline is not None:
            self._exit_deadline.arm(128 + sig)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the app has ended
                self._loop.call_soon_threadsafe(self._start_leaving, sig)

    def _terminal_lost(self) -> None:
        """A write or read on the terminal failed (any thread): it is gone, as on a hang-up.
        Whatever is written from now on (Textual restoring the screen, the last words on
        stderr, Python's final flush) goes to /dev/null: on the dead terminal it fails (EIO),
        which made the exit status 1 instead of 129."""
        self.terminal_gone = True
        silence_terminal()
        self._leave_soon(signal.SIGHUP)

    def _start_leaving(self, sig: int | None) -> None:
        if self._leaving:  # a second signal, or q again: the first way out stands
            return
        self._leaving = True
        self.exit_signal = sig
        if self._exit_deadline is not None:
            self._exit_deadline.arm(128 + sig if sig else 0)
        self.run_worker(self._leave(), name="leave", group="leave", exit_on_error=False)

    async def _leave(self) -> None:
        """Every way out: a run that is on stops, its in-flight requests are recorded as
        cancelled and what finished goes into the history (LEAVE_WAIT_S at most for the run to
        end; then the run is stored as it stands); a ladder stops and is stored as it stands
        if it ends within LEAVE_WAIT_S; then the app ends."""
        self._starting = False
        if self.ladder_on and self.ladder.stop():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ladder.ended.wait(), LEAVE_WAIT_S)
        session = self.session
        if session is not None:
            session.stop()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._run_over.wait(), LEAVE_WAIT_S)
            if not self._run_over.is_set():
                session.results.interrupted = True
                await self._keep(session.results)
        self.exit()

    def _rescue(self) -> None:
        """On the exit deadline's thread, the loop stuck or too slow: store what the run had
        finished, unless the loop has (then wait briefly for its store to end)."""
        session = self._last_session
        if session is None or not session.results.records:
            return
        results = session.results
        if not self._claim(results):
            self._stored_event.wait(1.0)
            return
        if not keepable(results):
            return
        results.interrupted = True
        self.stored_on_leaving = self._store(results)

    def _claim(self, results: RunResults) -> bool:
        """Whether this caller stores `results` (only the first one does)."""
        with self._claim_lock:
            if self._claimed is results:
                return False
            self._claimed = results
            self._stored_event.clear()
            return True

    def on_unmount(self) -> None:
        if self._exit_deadline is not None:  # what follows writes to the terminal
            self._exit_deadline.arm(128 + self.exit_signal if self.exit_signal else 0)
        if self.session is not None:
            self.session.stop()
        self.registry.launcher.stop_all()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.poller is not None:
            self.poller.close()

    async def action_quit(self) -> None:
        self._start_leaving(None)

    # ------------------------------------------------------------------ notices

    def say(self, level: Level, title: str, text: str, *, toast: bool = False) -> None:
        """Into the notices log (the compare screen's last line; all of it with n). A toast
        too when asked (the answer to a key), or when the log isn't on the screen shown."""
        from quanttui.tui.screens.results import ResultsScreen

        self.run_state.say(level, title, text)
        with contextlib.suppress(NoMatches):
            self.compare.draw_log()
        if toast or not isinstance(self.screen, (CompareScreen, ResultsScreen)):
            severity = {"info": "information", "warning": "warning", "error": "error"}[level]
            self.notify(text, title=title, severity=severity,  # type: ignore[arg-type]
                        timeout=TOAST_S, markup=False)

    def poll_pace(self) -> None:
        """Samples every RUN_POLL_S while something is measured (or as the config says),
        every IDLE_POLL_S in between."""
        if self.poller is not None:
            from quanttui.config import HardwareConfig

            busy = self.running or self.run_state.quality is not None
            every = self.config.hardware.poll_interval
            if every == HardwareConfig().poll_interval:  # the default: the TUI's own pace
                every = RUN_POLL_S
            self.poller.interval_s = every if busy else max(every, IDLE_POLL_S)

    # ------------------------------------------------------------------ servers

    def probe_all(self) -> None:
        if self.running:  # probing adds requests to servers being measured
            return
        for entry in self.registry.to_probe():
            self._probe(entry)

    def _probe(self, entry: ServerEntry, *, select: bool = False) -> None:
        """Ask a server how it is. `select`: a URL just typed in, selected once it answers.
        A server that answers nothing at its first probe is not selected (it would only be
        left out of every run)."""
        async def probe() -> None:
            try:
                await self.registry.probe(entry, answered=self.compare.draw_status)
            finally:
                self._probed.set()
            first = entry.name in self._first_probe
            self._first_probe.discard(entry.name)
            label = entry.name
            if entry.health in ("ok", "loading"):
                if select and not self.registry.frozen and entry.name in self.registry.entries \
                        and entry.name not in self.registry.selected:
                    self.registry.toggle(entry.name)
                    self.say("info", "server added", f"{label} ({entry.spec.url}) answers; "
                             "selected for the comparison.")
                    self._selection_changed(added=entry.name)
                    return
            elif (select or first) and entry.name in self.registry.selected \
                    and not self.registry.frozen:
                self.registry.toggle(entry.name)
                self.say("warning", "not selected", f"{label}: no answer at {entry.spec.url} "
                         f"({entry.error or entry.health}); s selects it again.")
                self._selection_changed()
                return
            elif select:
                self.say("warning", "not selected", f"{label}: no answer at {entry.spec.url} "
                         f"({entry.error or entry.health}); listed, not selected.", toast=True)
            self.servers_changed(added=entry.name if select else None)

        self.run_worker(probe(), group="probe", exit_on_error=False)

    def servers_changed(self, added: str | None = None) -> None:
        self.compare.draw_servers()
        self.compare.draw_status()  # its readiness: what the probes found
        if isinstance(self.screen, ServersScreen):
            self.screen.post_message(ServersChanged(added))

    def _refused(self, refused: Refused) -> None:
        self.say(refused.severity, "", str(refused), toast=True)

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
            # Listed now, selected once it answers: a URL that answers nothing never joins a
            # comparison (nor holds up the next run's start).
            self._probe(entry, select=True)
            self.servers_changed(added=entry.name)

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
            # other servers: the last runs' views no longer apply
            self.run_state.live = self.run_state.suite_run = None
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
                self.say("error", f"{name} not started", launch.error or "failed")
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
                # One notice per server: the start, and what happened on the way (a restart).
                notes = "".join(f" {n}." for n in launch.notes)
                self.say("warning" if notes else "info", "server started",
                         f"{launch.name}: {launch.model.name} at {launch.url}, ready in "
                         f"{time.monotonic() - t0:.1f} s; selected for the comparison.{notes}")
            elif launch.state == "failed":
                self.say("error", f"{launch.name} did not start", launch.error or "failed")

    def on_stop_server(self, message: StopServer) -> None:
        try:
            self.registry.stop_launched(message.name)
        except Refused as e:
            self._refused(e)
            return
        self.say("info", "server stopped", f"{message.name}: llama-server stopped.")
        self._selection_changed()
        launch = self.registry.launcher.launches.get(message.name)
        if launch is not None:
            self._launch_changed(launch)

    def on_change_launch_defaults(self, message: ChangeLaunchDefaults) -> None:
        launcher = self.registry.launcher
        launcher.defaults = message.change(launcher.defaults)
        self._launch_changed(None)

    def _launch_changed(self, launch: Launch | None) -> None:
        from quanttui.tui.screens.models import ModelsScreen

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

    def _screen_changed(self, screen: Screen[Any]) -> None:
        """Back on the compare screen: draw what arrived while it was hidden (a run that ended
        meanwhile left its last frame undrawn). Textual tells the screen, not the app, that it
        is back; the app hears it from `screen_change_signal`."""
        if screen is not self.compare or self.screen is not self.compare:
            return
        self._drawn_version = -1
        with contextlib.suppress(NoMatches):  # the app closing: its widgets are going
            self.compare.draw_servers()
            self.compare.draw_hardware(self.run_state.hw)
            self.compare.draw_log()
            self._tick()

    # ------------------------------------------------------------------ runs

    @property
    def running(self) -> bool:
        """A run is on, or starting (waiting for servers still being asked)."""
        return self.session is not None or self._starting

    def busy(self) -> str | None:
        """What is on, in words ('A ladder', 'A run', 'The quality step'), that a run, the
        quality step, a ladder or opening a stored run waits for; None when nothing is."""
        if self.ladder_on:
            return "A ladder"
        if self.running:
            return "A run"
        if self.run_state.quality is not None:
            return "The quality step"
        return None

    def _set_session(self, session: Session | None) -> None:
        """A run starts (the selection is fixed) or ends."""
        self.session = session
        self.run_state.running = self.registry.frozen = self.running
        self.compare.set_class(session is not None, "-streaming")
        self.poll_pace()

    def on_start_run(self, message: StartRun) -> None:
        self.start_run(message.typed)

    def start_run(self, typed: str | None = None) -> None:
        if (what := self.busy()) is not None:
            self.say("warning", "", f"{what} is on: x stops it.", toast=True)
            return
        if not self.registry.selected:
            self.say("error", "", "No server selected: press s to choose the servers to "
                     "compare.", toast=True)
            return
        from quanttui.core.suites.prompts import PromptFileError

        try:
            plan = build_plan(self.config, self.run_state.options, typed)
        except (ValueError, PromptFileError) as e:
            self.say("error", "cannot start the run", str(e), toast=True)
            return
        _, asking, _ = self.registry.answering()
        if not asking:
            self._begin(plan, typed)
            return
        # Servers still being asked (just added, or probed at start): wait a little for their
        # answer, never longer: a URL that answers nothing must not hold up the run.
        self._starting = True
        self._set_session(None)
        self.compare.draw_status()
        self.refresh_bindings()
        for entry in asking:
            if entry.health == "unknown":
                self._probe(entry)

        async def wait() -> None:
            deadline = time.monotonic() + START_WAIT_S
            while self.registry.answering()[1] and self._starting:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._probed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._probed.wait(), left)
            if self._starting:
                self._starting = False
                self._begin(plan, typed)
            else:  # x pressed meanwhile
                self._set_session(None)
                self.compare.draw_status()
                self.refresh_bindings()

        self.run_worker(wait(), name="start", group="run", exclusive=True, exit_on_error=False)

    def _begin(self, plan: RunPlan, typed: str | None) -> None:
        """Start the session on the selected servers that answer; the others are left out, and
        their columns say why."""
        ok, asking, down = self.registry.answering()
        left = {e.name: (f"no answer at {e.spec.url} ({e.error})" if e.error
                         else f"no answer at {e.spec.url}") for e in down}
        left |= {e.name: f"no answer within {START_WAIT_S:g} s at {e.spec.url}" for e in asking}
        labels = short_labels(list(self.registry.selected))
        for name, why in left.items():
            self.say("warning", "left out of the run", f"{labels.get(name, name)}: {why}")
        if not ok:
            self._set_session(None)
            self.compare.draw_status()
            self.refresh_bindings()
            self.say("error", "cannot start the run", "No selected server answers: s shows "
                     "them and what each said.", toast=True)
            return
        if len(ok) == 1:
            self.say("warning", "one server", "One server in this run: nothing to compare it "
                     "with (s to select another).")
        live: LiveRun | None = None

        def emit(ev: Event) -> None:
            # A bug here must never break a measurement: the session calls this per read.
            if live is not None:
                with contextlib.suppress(Exception):
                    live.on_event(ev)

        session = Session([e.spec for e in ok], plan, emit=emit,
                          contention=self._contention_check)
        live = LiveRun(session.results)  # the results the session fills, read for stats
        live.left = left
        self._typed_run = typed is not None
        if not self._typed_run:
            # the results view's run; a typed prompt leaves it (and its plan, which the
            # quality step measures) as it was
            self._plan = plan
            self.run_state.suite_run = live
            self.run_state.prompt_texts = {}
        self.run_state.prompt_texts |= {p.id: p.text for p in plan.prompts}
        self._set_session(session)
        self._last_session = session
        self._run_over.clear()
        self.run_state.live, self.run_state.contention = live, []
        self._drawn_version = -1
        self._toasted.clear()
        self.compare.reset_columns()
        self.compare.draw_servers()
        self.refresh_bindings()
        self._flush_timer.resume()
        if self.screen is not self.compare:  # a run is watched where the outputs stream
            self._back_to_compare()
        self.run_worker(self._run(session), name="run", group="run", exclusive=True,
                        exit_on_error=False)

    async def _run(self, session: Session) -> None:
        try:
            await self._run_and_keep(session)
        finally:
            self._run_over.set()

    async def _run_and_keep(self, session: Session) -> None:
        t0 = time.perf_counter_ns()  # the poller's clock
        self._quiet.start(t0)
        try:
            await session.run()
        except Exception as e:  # never a crash: say what happened, keep what finished
            self.say("error", "run failed", f"{type(e).__name__}: {e}")
        finally:
            for n in add_perturbation(session.results, self._quiet):
                self._notice(n)
            if self.poller is not None:  # memory over the run, as the headless run keeps it
                from quanttui.core.hardware.summary import hardware_json
                from quanttui.core.run.plan import server_logs

                # One sample now, the servers still up: a run shorter than the pace between
                # samples has its memory figures too. Not when leaving: storing comes first.
                if not self._leaving:
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self.poller.sample_once)
                r = session.results
                r.hardware = hardware_json(self.poller.history(since_ns=t0),
                                           self.poller.host_info(),
                                           [(s.name, s.model_path) for s in r.servers],
                                           logs=server_logs(session.servers))
                for n in add_load_notices(r):
                    self._notice(n)
            self.results = session.results
            self._set_session(None)
            self._flush_timer.pause()
            self._tick()
            self.refresh_bindings()
            self.compare.draw_status()
        await self._keep(session.results)
        if self._leaving:
            return
        from quanttui.tui.screens.results import ResultsScreen

        if isinstance(self.screen, ResultsScreen):
            self.screen.post_message(ResultsChanged())
        live = self.run_state.live
        if (not self._typed_run and live is not None and live.results is session.results
                and not session.results.interrupted and len(live.servers) > 1
                and self.screen is self.compare):
            self.action_results()  # the answer, once the suite has run

    async def _keep(self, results: RunResults) -> None:
        """The run into the history, as a headless run goes there (with the config and where
        the numbers come from; model files are not hashed here: that would take a core for
        seconds to minutes beside servers the next run measures). A stopped run in which no
        measured request finished is not stored: it has nothing to show or compare."""
        if not results.records or not self._claim(results):
            return
        if not keepable(results):
            self._stored_event.set()
            if self._leaving:
                self.stored_on_leaving = 0
            self.say("info", "history", "run stopped before any measured request finished: "
                     "not stored in the history")
            return
        from quanttui.core.reports.history import HistoryError

        try:
            run_id = await asyncio.to_thread(self._store, results)
        except (HistoryError, OSError) as e:
            self.say("warning", "history", f"run not stored in the history: {e}")
            return
        finally:
            self._stored_event.set()
        self._remember(results, run_id)
        if self._leaving:
            self.stored_on_leaving = run_id
        self.say("info", "history", f"run stored in the history as #{run_id} "
                 "(quanttui history, quanttui compare)")

    def _store(self, results: RunResults) -> int:
        """Into the history (on a thread of its own: the loop's worker or the exit deadline)."""
        from quanttui.config import config_to_dict
        from quanttui.core.reports.history import Store
        from quanttui.core.reports.provenance import provenance
        from quanttui.core.reports.run_file import results_dict

        results.extra.setdefault("config", config_to_dict(self.config))
        results.extra.setdefault("provenance", provenance(results, hash_models=False))
        return Store().add(results_dict(results))

    def _remember(self, results: RunResults, run_id: int) -> None:
        """`results` is run #`run_id` in the history; of the others only the results view's
        run is kept (a typed prompt after a suite run must not forget the suite run's id)."""
        shown = self.run_state.suite_run
        self._stored = [(r, i) for r, i in self._stored
                        if shown is not None and r is shown.results] + [(results, run_id)]

    async def update_history(self, results: RunResults) -> None:
        """A run stored in the history, measured further (the quality step): its entry gets
        the new figures, so `quanttui history` and `compare` see them."""
        run_id = next((i for r, i in self._stored if r is results), None)
        if run_id is None:
            return
        from quanttui.core.reports.history import HistoryError, Store
        from quanttui.core.reports.run_file import results_dict

        try:
            await asyncio.to_thread(lambda: Store().update(run_id, results_dict(results)))
        except (HistoryError, OSError, KeyError) as e:
            msg = f"no run #{e.args[0]}" if isinstance(e, KeyError) else str(e)
            self.say("warning", "history", f"quality figures not stored in the history: {msg}; "
                     "ctrl+s writes them to a snapshot")
            return
        self.say("info", "history", f"run #{run_id} in the history updated with the quality "
                 "figures")

    def show_results(self, results: RunResults, run_id: int | None = None) -> None:
        """Show a finished run (a stored one, `run_id` in the history, or one built by a test)
        as a live one ends."""
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
        state.live = state.suite_run = replay(results)
        self._plan = None  # the quality step on this run: the prompts of the chosen suite
        if run_id is not None:
            self._remember(results, run_id)
        state.prompt_texts = builtin_prompt_texts({r.prompt_id for r in results.records})
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
        # A few seconds without drawing now and then: the control against which the run
        # measures what drawing costs the servers (core.run.perturbation).
        if self.running and not live.finished and self._quiet.quiet():
            return
        # Drawn already, unless the status and figures wait for their once-a-second frame: a
        # stream that pauses (a held or slow request, a long prompt) sends no event to bring it.
        if self.screen is not self.compare or (live.version == self._drawn_version
                                               and not self.compare.slow_owed):
            return
        now = time.monotonic()
        level = self._budget_level(now) if self.running and not live.finished else 0
        if level and now - self._drawn_at < SLOW_FRAMES_S[level - 1]:
            return  # over budget: fewer frames (what arrived waits for the next)
        self._drawn_version, self._drawn_at = live.version, now
        self.compare.draw_run(live, now)

    def _budget_level(self, now: float) -> int:
        """How far the frames are spaced to keep the app's own CPU (all its threads: the
        streams, the poller, the drawing) within TEXT_BUDGET of a core, judged over each
        BUDGET_S seconds of the run: 0, `run.refresh_hz` frames a second; each window over the
        budget, one step further along SLOW_FRAMES_S (a frame costs Textual a few ms; on a
        small machine two a second are most of the budget); one step back below 60% of it."""
        cpu = time.process_time()
        if self._budget_at is None or now - self._budget_at[0] > 3 * BUDGET_S:
            self._budget_at = (now, cpu)  # a new run, or a pause: measure afresh
        elif now - self._budget_at[0] >= BUDGET_S:
            share = (cpu - self._budget_at[1]) / (now - self._budget_at[0])
            self._budget_at = (now, cpu)
            if share > TEXT_BUDGET:
                self._slow_level = min(self._slow_level + 1, len(SLOW_FRAMES_S))
            elif share < 0.6 * TEXT_BUDGET:
                self._slow_level = max(self._slow_level - 1, 0)
        return self._slow_level

    def _notice(self, n: Notice) -> None:
        """What the session says goes to the notices log; no toast covers the figures."""
        if n.code == "contention":
            self.run_state.contention.append(n.message)
        if n.code == "simultaneous":
            return  # the status line shows the schedule
        # A server that fails keeps failing: one notice per kind and server per run; the
        # column is marked for the rest.
        once = (n.code, n.server)
        if n.code == "request-failed" and once in self._toasted:
            return
        self._toasted.add(once)
        title = {"request-failed": "request failed", "server-down": "server down",
                 "server-unreachable": "server unreachable", "interrupted": "stopped",
                 "slots": "slots", "contention": "CPU contention"}.get(n.code, n.code)
        self.say(n.level, title, n.message)

    # ------------------------------------------------------------------ quality

    def action_quality(self) -> None:
        """The quality step on the servers of the run shown (tui.quality_run)."""
        self.quality_step.start()

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        quality = self.run_state.quality is not None
        ladder = self.ladder_on
        if action == "run_suite":
            return not self.running and not quality and not ladder
        if action == "stop":
            return self.running or quality or ladder
        if action == "quality":
            return not self.running and not quality and not ladder
        if action == "repetitions":  # "+" and "-" go into a focused input: hide the key
            return not isinstance(self.focused, Input)
        return True

    def action_run_suite(self) -> None:
        self.start_run()

    def action_stop(self) -> None:
        if self.ladder_on and self.ladder.stop():
            self.say("info", "stopping", "The ladder ends after the requests in flight; what it "
                     "measured is kept and shown.", toast=True)
        elif self.session is not None:
            self.session.stop()
            self.say("info", "stopping", "Requests in flight are cancelled, finished ones kept.",
                     toast=True)
        elif self._starting:
            self._starting = False
        elif self.quality_step.stop():
            self.say("info", "stopping", "The quality step ends after the requests in flight; "
                     "what finished is kept.", toast=True)

    def _bring_back(self, kind: type[Screen[Any]]) -> bool:
        """Close the screens above one of `kind` already open, which then shows again (redrawn
        for the run shown). Screens have fixed ids: a second one of a kind on the stack is an
        error (the results view reached from the history, say, while it was open below)."""
        open_ = [s for s in self.screen_stack if isinstance(s, kind)]
        if not open_:
            return False
        while self.screen is not open_[-1]:
            self.pop_screen()
        open_[-1].post_message(ResultsChanged())
        return True

    def action_results(self) -> None:
        """The comparison table and the verdict of the run shown."""
        from quanttui.tui.screens.results import ResultsScreen

        if isinstance(self.screen, ResultsScreen):
            return
        if self.run_state.results_run() is None:
            self.say("warning", "", "No run yet: r runs the suite, and its results show here.",
                     toast=True)
            return
        if not self._bring_back(ResultsScreen):
            self.push_screen(ResultsScreen(self.registry, self.run_state))

    def action_prompts(self) -> None:
        """Every prompt of the run shown, with its figures; Enter shows its outputs."""
        from quanttui.tui.screens.prompts import PromptsScreen

        if isinstance(self.screen, PromptsScreen):
            return
        if self.run_state.results_run() is None:
            self.say("warning", "", "No run yet: r runs the suite, and its prompts list here.",
                     toast=True)
            return
        if not self._bring_back(PromptsScreen):
            self.push_screen(PromptsScreen(self.registry, self.run_state))

    def action_history(self) -> None:
        """The stored runs: Enter opens one in the results view, c compares two."""
        from quanttui.tui.screens.history import HistoryScreen

        if not isinstance(self.screen, HistoryScreen) and not self._bring_back(HistoryScreen):
            self.push_screen(HistoryScreen())

    def on_open_run(self, message: OpenRun) -> None:
        """Show a stored run in the results view (and its outputs on the compare screen)."""
        from quanttui.core.reports.history import HistoryError, Store
        from quanttui.core.reports.run_file import RunFileError, results_from_dict

        if (what := self.busy()) is not None:
            self.say("warning", "", f"{what} is on: x stops it, then a stored run can be "
                     "opened.", toast=True)
            return
        try:
            results = results_from_dict(Store().get(message.run_id))
        except KeyError:
            self.say("error", "history", f"no run #{message.run_id} in the history",
                     toast=True)
            return
        except (HistoryError, RunFileError) as e:
            self.say("error", "history", f"run #{message.run_id}: {e}", toast=True)
            return
        self.open_results(results, message.run_id)
        self.say("info", "history", f"run #{message.run_id} opened from the history")

    def open_results(self, results: RunResults, run_id: int | None) -> None:
        """A finished run (stored as #`run_id`, or not stored) in the results view."""
        from quanttui.tui.screens.results import ResultsScreen

        self.show_results(results, run_id)
        if not self._bring_back(ResultsScreen):
            self._back_to_compare()
            self.push_screen(ResultsScreen(self.registry, self.run_state))

    # ------------------------------------------------------------------ ladder

    def on_start_ladder(self, message: StartLadder) -> None:
        """The model pane's marked files as a ladder (tui.ladder_run)."""
        why = self.ladder.refused(message.paths)
        if why is not None:
            self.say("warning", "ladder", why, toast=True)
            return
        self._back_to_compare()  # its status line shows the ladder's progress
        self.run_worker(self.ladder.run(message.paths), name="ladder", group="ladder",
                        exclusive=True, exit_on_error=False)

    @property
    def leaving(self) -> bool:
        return self._leaving

    def show_live(self, live: LiveRun | None) -> None:
        """A run measured elsewhere (a ladder's pass) shown on the compare screen as it streams;
        None: it has ended, the screen stops drawing it."""
        if live is None:
            self._flush_timer.pause()
            self._tick()
            return
        self.registry.adopt(live.results.servers)  # the pass's servers are its columns
        self._selection_changed()
        self.run_state.live = live
        self._drawn_version = -1
        self.compare.reset_columns()
        self.compare.draw_servers()
        self._flush_timer.resume()

    @property
    def last_plan(self) -> RunPlan | None:
        """The plan of the run shown (its prompts: the quality step forces them)."""
        return self._plan

    async def keep(self, results: RunResults) -> None:
        """Into the history as a run is stored (tui.ladder_run stores its ladder so)."""
        await self._keep(results)

    def stored_id(self, results: RunResults) -> int | None:
        return next((i for r, i in self._stored if r is results), None)

    def action_notices(self) -> None:
        if not isinstance(self.screen, NoticesScreen):
            self.push_screen(NoticesScreen(self.run_state))

    def action_keys(self) -> None:
        """Show every key of the screen (the footer shows the most used), or hide them."""
        from textual.widgets import HelpPanel

        if self.screen.query(HelpPanel):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def on_show_prompt(self, message: ShowPrompt) -> None:
        """Show a prompt's outputs side by side (picked in the list, or the next or previous
        one), or follow the run again."""
        shown = self.run_state.results_run()
        if message.prompt_id is not None and shown is not self.run_state.live \
                and shown is not None and not self.running:
            # picked in the list of the results view's run: its outputs replace the typed
            # prompt's on the compare screen
            self.run_state.live = shown
            self.compare.reset_columns()
        live = self.run_state.live
        if live is None:
            return
        keys = live.keys()
        if message.prompt_id is not None:
            key = next((k for k in keys if k[0] == message.prompt_id), None)
        elif message.step and keys:
            at = keys.index(live.focus) if live.focus in keys else -1
            key = keys[min(max(at + message.step, 0), len(keys) - 1)]
        else:
            key = None
        if key is None:
            live.unpin()
        else:
            live.pin(key)
        self._back_to_compare()
        self._drawn_version = -1
        self.compare.redraw()

    def action_type_prompt(self) -> None:
        """/ from another view: back to the outputs, the prompt typed there."""
        self._back_to_compare()
        self.compare.action_focus_prompt()

    def _back_to_compare(self) -> None:
        while self.screen is not self.compare and len(self.screen_stack) > 1:
            self.pop_screen()

    def action_servers(self) -> None:
        if not isinstance(self.screen, ServersScreen):
            self.push_screen(ServersScreen(self.registry, blink=self._blink))

    def action_models(self) -> None:
        from quanttui.tui.screens.models import ModelsScreen

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
            self.say("info", "", f"Schedule {schedule} applies to the next run.", toast=True)

    def action_cycle_suite(self) -> None:
        """The next prompt suite, said in the log line (not only in the status bar's field)."""
        self.set_suite(self.run_state.options.next_suite())
        self.say("info", "prompt suite", f"r now runs {self.run_state.suite_label()}; "
                 "u the next")

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
        """ctrl+s: the screen and the run shown, to the export folder (tui.saving)."""
        self.saving.save()

    def export_dir(self) -> Path:
        return self.saving.export_dir()

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
                            f"{self.export_dir()}", self.action_snapshot)
        yield SystemCommand("Results", "The comparison table and the verdict",
                            self.action_results)
        yield SystemCommand("Prompts", "Every prompt of the run with its figures",
                            self.action_prompts)
        if not self.running and self.run_state.quality is None:
            yield SystemCommand("Quality step", "Same-top-1, KLD and task accuracy against the "
                                "reference, on the servers of the run shown",
                                self.action_quality)
        yield SystemCommand("History", "The stored runs: open one in the results view, "
                            "compare two", self.action_history)
        yield SystemCommand("Notices", "Everything said so far", self.action_notices)
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


def keepable(results: RunResults) -> bool:
    """Whether a run is worth a place in the history: it ran to its end, or a measured request
    finished (answered, or failed by the server) before it was stopped."""
    return not results.interrupted or any(
        not r.warmup and r.error_kind not in ("cancelled", "skipped") for r in results.records)


def silence_terminal() -> None:
    """Point stdout and stderr at /dev/null: the terminal is gone (see QuantTUI._terminal_lost)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                os.dup2(null, fd)
    finally:
        os.close(null)


def builtin_prompt_texts(ids: set[str]) -> dict[str, str]:
    """The text of the built-in suites' prompts among `ids` (a stored run keeps only ids)."""
    from quanttui.core.suites.prompts import SUITE_NAMES, builtin_suite

    return {p.id: p.text for s in SUITE_NAMES for p in builtin_suite(s) if p.id in ids}


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
    deadline = ExitDeadline(registry.launcher.kill_all)

    def tell(line: str) -> None:
        try:
            print(line, file=sys.stderr, flush=True)
        except OSError:  # the terminal is gone (EIO): nobody to tell, and no failing exit
            silence_terminal()

    poller: HardwarePoller | None = None
    app: QuantTUI | None = None
    try:
        # The one start path (fit check, core pinning, readiness, SIGILL retry), progress on
        # stderr before the screen opens.
        launches = asyncio.run(registry.launcher.start_together(
            specs_from_config(cfg, pin_cores), force=force,
            say=tell))
        for la in launches:
            registry.add_launched(la)
        poller = HardwarePoller(interval_s=cfg.hardware.poll_interval)
        drain_after_errors()
        quiet_input_thread()
        suspend_on_the_loop()
        app = build_app(cfg, registry, poller=poller, contention=assess,
                        notes=[f"{la.name}: {n}" for la in launches for n in la.notes],
                        few_colours=Console().color_system in ("256", "standard"),
                        handle_signals=True, exit_deadline=deadline)
        app.run()
        deadline.disarm()
    except ServerStartError as e:
        tell(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        tell("stopped while starting servers")
        return 130
    finally:
        registry.launcher.stop_all()
        if poller is not None:
            poller.close()
    if app is None:
        return 0
    if app.stored_on_leaving == 0:
        tell("the stopped run had no finished request: not stored in the history")
    elif app.stored_on_leaving is not None:
        tell(f"the stopped run is in the history as #{app.stored_on_leaving} (quanttui history)")
    if app.exit_signal is not None:
        how = ("the terminal went away" if app.terminal_gone
               else f"stopped by signal {signal.Signals(app.exit_signal).name}")
        tell(f"{how}; servers stopped")
        return 128 + app.exit_signal
    return 0
