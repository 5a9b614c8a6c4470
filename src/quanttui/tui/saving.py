"""ctrl+s in the TUI: the screen as SVG (the results view whole, however far it scrolls) and the
run shown as JSON, side by side in the export folder, as the headless run and `quanttui
snapshot` write them; the full path said in the notices log."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from quanttui.core.run.records import RunResults
from quanttui.tui.export import preserve_spaces

if TYPE_CHECKING:
    from quanttui.tui.app import QuantTUI


class TuiSave:
    def __init__(self, app: QuantTUI) -> None:
        self.app = app

    def save(self) -> None:
        from quanttui.config import config_to_dict
        from quanttui.core.reports.snapshot import write_snapshot
        from quanttui.tui.screens.prompts import PromptsScreen
        from quanttui.tui.screens.results import ResultsScreen

        app = self.app
        out = self.export_dir()
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base, i = f"quanttui-{stamp}", 1
        while (out / f"{base}.svg").exists() or (out / f"{base}.json").exists():
            i += 1
            base = f"quanttui-{stamp}-{i}"
        # the run on the screen saved: the results view's (and prompt list's) is not always
        # the last one (a typed prompt since)
        shown = (app.run_state.results_run()
                 if isinstance(app.screen, (ResultsScreen, PromptsScreen)) else None)
        results = (shown.results if shown is not None
                   else app.session.results if app.session is not None
                   else app.results or self._no_results())
        results.extra.setdefault("config", config_to_dict(app.config))
        view = app.screen
        if (isinstance(view, ResultsScreen) and not app.running
                and view.whole_height() > app.size.height):
            # the results view scrolls: all of it, drawn off screen at its full height
            self._whole(results, out, base, (app.size.width, view.whole_height()))
            return
        screen = preserve_spaces(app.export_screenshot())
        try:
            files = write_snapshot(results, out, base, ("svg", "json"), svg=lambda _: screen)
        except OSError as e:
            app.say("error", "snapshot failed", f"cannot write to {out}: {e}", toast=True)
            return
        self._saved(files)

    def _whole(self, results: RunResults, out: Path, base: str, size: tuple[int, int]) -> None:
        """The results view at `size` (taller than the terminal), rendered and written in a
        worker so the screen stays live meanwhile."""
        from quanttui.core.reports.snapshot import write_snapshot
        from quanttui.tui.export import render_svg

        app = self.app

        async def work() -> None:
            try:
                svg = await asyncio.to_thread(render_svg, results, size, app.config)
                files = await asyncio.to_thread(write_snapshot, results, out, base,
                                                ("svg", "json"), lambda _: svg)
            except OSError as e:
                app.say("error", "snapshot failed", f"cannot write to {out}: {e}", toast=True)
                return
            except Exception as e:  # the off-screen render
                app.say("error", "snapshot failed", f"the results view: {e}", toast=True)
                return
            self._saved(files)

        app.run_worker(work(), group="snapshot")

    def _saved(self, files: Sequence[Path]) -> None:
        """Said in full in the notices log, once: the first path whole, the others by what
        differs (".json"). Not a toast over what was saved: the compare screen's log line
        shows it, the results view its title line; other screens a toast."""
        from quanttui.tui.screens.results import ResultsScreen

        paths = [str(f) for f in files]
        said = paths[0] + "".join(f" and {Path(p).suffix}" if Path(p).with_suffix("") == Path(
            paths[0]).with_suffix("") else f" and {p}" for p in paths[1:])
        self.app.say("info", "snapshot saved", said)
        if isinstance(self.app.screen, ResultsScreen):
            self.app.screen.flash(f"saved {said}")

    def export_dir(self) -> Path:
        """Where ctrl+s writes: `run.export_dir` when the config sets it, else `exports/` in
        the user data dir (not wherever quanttui happened to be started); always absolute."""
        from quanttui.config import RunConfig
        from quanttui.core.dirs import data_dir

        configured = self.app.config.run.export_dir
        if configured == RunConfig().export_dir:
            return (data_dir() / "exports").absolute()
        return Path(configured).expanduser().absolute()

    def _no_results(self) -> RunResults:
        app = self.app
        o = app.run_state.options
        return RunResults(servers=[e.info for e in app.registry.chosen()],
                          schedule=o.schedule, endpoint=app.config.run.endpoint,
                          repetitions=o.repetitions, warmup=app.config.run.warmup,
                          concurrency_levels=(app.config.run.concurrency,))
