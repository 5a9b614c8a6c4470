"""The quality step from the TUI (k): on the servers of the run shown, the distributions
(same-top-1, KLD, Δp, teacher-forced on the reference's outputs) and task accuracy per category,
by core.quality.step as the headless run measures them; its progress on the status lines, `x`
stops it (what finished is kept), and the run's entry in the history gets the figures. Nothing
is measured here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from textual.css.query import NoMatches

from quanttui.tui.state import QualityProgress, build_plan

if TYPE_CHECKING:
    from quanttui.core.quality.step import QualityOptions
    from quanttui.core.run.plan import RunPlan
    from quanttui.core.run.records import RunResults
    from quanttui.tui.app import QuantTUI

DRAW_EVERY_S = 0.5  # the progress is redrawn at most this often


class TuiQuality:
    """One quality step at a time, run on the app's loop as a worker."""

    def __init__(self, app: QuantTUI) -> None:
        self.app = app
        self.stop_event: asyncio.Event | None = None
        self._drawn = 0.0

    def start(self) -> None:
        app = self.app
        if (what := app.busy()) is not None:
            app.say("warning", "", f"{what} is on: x stops it.", toast=True)
            return
        shown = app.run_state.results_run()
        results = shown.results if shown is not None else None
        if results is None or not results.measured():
            app.say("warning", "", "Quality compares the servers of a run: r runs the suite "
                    "first.", toast=True)
            return
        names = [s.name for s in results.servers if s.reachable]
        entries = app.registry.entries
        missing = [n for n in names if entries.get(n) is None or entries[n].health == "down"]
        if len(names) < 2 or missing:
            why = (f"{', '.join(missing)} no longer answers" if missing
                   else "it needs two servers")
            app.say("warning", "", f"No quality step: {why}.", toast=True)
            return
        try:
            options, skipped = self.options()
        except ValueError as e:
            app.say("error", "quality", str(e), toast=True)
            return
        if skipped:
            app.say("warning", "quality", skipped)
        specs = [entries[n].spec for n in names]
        plan = app.last_plan or build_plan(app.config, app.run_state.options)
        self.stop_event = asyncio.Event()
        app.run_state.quality = QualityProgress()
        app.registry.frozen = True
        app.poll_pace()
        self.draw_progress(force=True)
        app.refresh_bindings()
        app.run_worker(self._run(results, specs, plan, options), name="quality",
                       group="quality", exclusive=True, exit_on_error=False)

    def stop(self) -> bool:
        """Ask the step to end after the requests in flight; False when none is on."""
        q = self.app.run_state.quality
        if self.stop_event is None or q is None:
            return False
        self.stop_event.set()
        q.stopping = True
        self.draw_progress(force=True)
        return True

    def options(self) -> tuple[QualityOptions, str | None]:
        """Distributions and tasks; the tasks of the config's [quality] (else the built-in
        set), without those that run model-written code (only the command line allows
        that)."""
        from quanttui.core.quality.step import QualityOptions
        from quanttui.core.suites.task_sets import TaskSetError, load_task_sets

        app = self.app
        plan = app.last_plan or build_plan(app.config, app.run_state.options)
        qc = app.config.quality
        items = None
        skipped = None
        if qc.tasks:
            try:
                loaded = load_task_sets(qc.tasks, qc.tasks_limit)
            except TaskSetError as e:
                raise ValueError(str(e)) from None
            items = tuple(i for i in loaded if i.kind != "program")
            if len(items) < len(loaded):
                skipped = (f"{len(loaded) - len(items)} task item(s) run model-written code "
                           "(HumanEval): left out here; `quanttui run --headless --quality "
                           "--allow-code-execution` scores them")
            if not items:
                items = None
        return QualityOptions(distribution=True, tasks=True, run_params=plan.params,
                              timeouts=plan.timeouts, task_items=items), skipped

    async def _run(self, results: RunResults, specs: list[Any], plan: RunPlan,
                   options: QualityOptions) -> None:
        from quanttui.core.quality.step import QualityProgress as Step
        from quanttui.core.quality.step import compare_quality, quality_dict
        from quanttui.tui.messages import ResultsChanged
        from quanttui.tui.screens.results import ResultsScreen

        app = self.app

        def progress(p: Step) -> None:
            q = app.run_state.quality
            if q is not None:
                q.stage, q.done, q.total, q.servers = p.stage, p.done, p.total, p.servers
                self.draw_progress()

        t0 = time.monotonic()
        try:
            report = await compare_quality(results, specs, plan.prompts, options=options,
                                           on_progress=progress, stop=self.stop_event)
        except Exception as e:  # a server gone, a bug: say it, keep the app
            app.say("error", "quality step failed", f"{type(e).__name__}: {e}")
        else:
            results.extra["quality"] = quality_dict(report)
            how = "stopped early" if report.interrupted else "done"
            app.say("info", "quality", f"quality step {how} in {time.monotonic() - t0:.0f} s;"
                    " its figures are in the results (v) and the snapshot (ctrl+s)")
        finally:
            app.run_state.quality = None
            self.stop_event = None
            app.registry.frozen = False
            app.poll_pace()
            self.draw_progress(force=True)
            app.refresh_bindings()
        if "quality" in results.extra:
            await app.update_history(results)
            if isinstance(app.screen, ResultsScreen):
                app.screen.post_message(ResultsChanged())
            elif app.screen is app.compare:
                app.action_results()

    def draw_progress(self, force: bool = False) -> None:
        """The quality step's progress on the status lines, at most twice a second."""
        from quanttui.tui.screens.results import ResultsScreen

        now = time.monotonic()
        if not force and now - self._drawn < DRAW_EVERY_S:
            return
        self._drawn = now
        app = self.app
        with contextlib.suppress(NoMatches):
            app.compare.draw_status()
            if isinstance(app.screen, ResultsScreen):
                app.screen.draw_title()
