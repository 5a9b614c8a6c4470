"""A ladder started from the model pane (L on the marked files): the quants measured one after
another by core.ladder.runner, as `quanttui ladder` measures them; its progress and time left on
the status line (core.ladder.progress's words), `x` stops it (what was measured is kept), and at
the end it is stored in the history and shown in the results view, verdict first. Nothing is
measured here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from quanttui.tui.state import LadderStatus

if TYPE_CHECKING:
    from quanttui.core.ladder.progress import LadderProgress
    from quanttui.core.ladder.verdict import Constraints
    from quanttui.core.quality.step import QualityOptions
    from quanttui.core.run.events import Event
    from quanttui.core.run.records import RunResults
    from quanttui.core.run.session import Session
    from quanttui.tui.app import QuantTUI


class TuiLadder:
    """One ladder at a time, run on the app's loop as a worker."""

    def __init__(self, app: QuantTUI) -> None:
        self.app = app
        self.stop_event: asyncio.Event | None = None
        self.ended = asyncio.Event()  # set when a ladder has ended (stored and shown, or not)
        self.ended.set()
        # None: as `quanttui ladder` by default (tests turn quality off). Imported when a
        # ladder starts: the ladder's modules stay out of the app's first frame.
        self.quality: QualityOptions | None = None
        self.constraints: Constraints | None = None

    @property
    def on(self) -> bool:
        return self.stop_event is not None

    def stop(self) -> bool:
        """Ask the ladder to stop after the requests in flight; False when none is on."""
        status = self.app.run_state.ladder
        if self.stop_event is None or status is None:
            return False
        self.stop_event.set()
        status.stopping = True
        self.app.compare.draw_status()
        return True

    def refused(self, paths: list[Path]) -> str | None:
        """Why a ladder of these files can't start now, in words; None when it can."""
        app = self.app
        if (what := app.busy()) is not None:
            return f"{what} is on: x stops it, then L starts the ladder."
        launcher = app.registry.launcher
        busy = [p.name for p in paths if launcher.by_model(p) is not None]
        if busy:
            # the ladder starts each file's server itself, one configuration per pass
            return (f"{', '.join(busy)} is running from the model pane: x stops it there, then "
                    "L starts the ladder")
        return None

    async def run(self, paths: list[Path]) -> None:
        self.ended.clear()
        try:
            await self._run(paths)
        finally:
            self.ended.set()

    async def _run(self, paths: list[Path]) -> None:
        from quanttui.core.ladder.lineup import LadderError, collect_models, lineup
        from quanttui.core.ladder.progress import step_text, time_left
        from quanttui.core.ladder.runner import LadderOptions, run_ladder
        from quanttui.core.ladder.section import ladder_section, merged_results
        from quanttui.core.ladder.verdict import Constraints
        from quanttui.core.models.servers import ServerStartError
        from quanttui.core.quality.step import QualityOptions
        from quanttui.tui.state import build_plan

        app = self.app
        try:
            lu = await asyncio.to_thread(lambda: lineup(collect_models(paths)))
        except (LadderError, OSError) as e:
            app.say("error", "ladder", str(e), toast=True)
            return
        taken = [r.name for r in lu.rungs if r.name in app.registry.entries
                 and app.registry.entries[r.name].health in ("ok", "loading")]
        if taken:
            app.say("error", "ladder", f"{', '.join(taken)}: a server of that name is in the "
                    "list and answering; the ladder names its rungs by quant (s: remove it)",
                    toast=True)
            return
        self.stop_event = stop = asyncio.Event()
        status = app.run_state.ladder = LadderStatus()
        app.refresh_bindings()
        app.compare.draw_status()
        app.say("info", "ladder", f"{len(lu.rungs)} quants, reference {lu.reference}: "
                f"{', '.join(lu.names)} (x stops; what is measured is kept)")

        def progress(p: LadderProgress) -> None:
            status.step, status.left, status.fraction = step_text(p), time_left(p.eta_s), \
                p.fraction
            app.compare.draw_status()

        ticker = asyncio.ensure_future(self._tick(app.compare.draw_status))
        try:
            options = LadderOptions(plan=build_plan(app.config, app.run_state.options),
                                    quality=self.quality or QualityOptions())
            run = await run_ladder(lu, options, app.registry.launcher,
                                   say=lambda line: app.say("info", "ladder", line), stop=stop,
                                   poll_interval=app.config.hardware.poll_interval,
                                   progress=progress, watch=self._watch)
        except ServerStartError as e:
            app.say("error", "ladder", str(e))
            return
        except Exception as e:  # never a crash: say what happened
            app.say("error", "ladder", f"{type(e).__name__}: {e}")
            return
        finally:
            ticker.cancel()
            app.show_live(None)
            self.stop_event = None
            app.run_state.ladder = None
            app.refresh_bindings()
            app.compare.draw_status()
        if not run.passes:
            app.say("warning", "ladder", "stopped before anything was measured; nothing stored"
                    if stop.is_set() else "no quant but the reference started: nothing to "
                    "compare, nothing stored")
            return
        results = merged_results(run, ladder_section(run, self.constraints or Constraints()))
        if stop.is_set():
            results.interrupted = True
        await self._show(results)

    def _watch(self, session: Session) -> Callable[[Event], None]:
        """Each pass streams on the compare screen, as a run does."""
        from quanttui.tui.live import LiveRun

        live = LiveRun(session.results)
        self.app.show_live(live)
        return live.on_event

    async def _tick(self, draw: Callable[[], None]) -> None:
        """The time left counts down between progress reports (a server loading sends none)."""
        while True:
            await asyncio.sleep(1.0)
            draw()

    async def _show(self, results: RunResults) -> None:
        app = self.app
        await app.keep(results)
        if not app.leaving:
            app.open_results(results, app.stored_id(results))
