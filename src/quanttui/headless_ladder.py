"""`quanttui ladder`: several quants of one model measured one after another, and the verdict.

Never imports Textual unless an SVG is asked for. Progress goes to stderr; the verdict and the
summary table to stdout; the run JSON (with its `ladder` section), Markdown and the rest to
files; the run is stored in the history like any other. Exit codes as `run --headless`: 0 all
went well, 1 requests failed or a server would not start, 2 usage errors (files that are not
one model's quants), 4 the files could not be written (the error says where the results are),
130 stopped by the user (what was measured is still written).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from quanttui.config import Config, config_to_dict
from quanttui.core.ladder.lineup import Lineup
from quanttui.core.ladder.progress import LadderProgress, later, progress_text
from quanttui.core.ladder.runner import LadderOptions, LadderRun, run_ladder
from quanttui.core.ladder.section import ladder_section, merged_results
from quanttui.core.ladder.verdict import Constraints, constraints_text
from quanttui.core.models.launcher import Launcher, defaults_from
from quanttui.core.models.servers import ServerStartError
from quanttui.core.quality.step import QualityOptions
from quanttui.core.reports.ladder import summary_table
from quanttui.core.reports.provenance import provenance
from quanttui.core.reports.snapshot import save_run
from quanttui.core.run.plan import plan_from_config
from quanttui.core.run.records import RunResults
from quanttui.headless import SIGNALS, quiet, stop_while_writing

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_EXPORT, EXIT_INTERRUPTED = 0, 1, 2, 4, 130
PLAIN_EVERY_S = 10.0  # a plain progress line at most (and, while work goes on, about) this often


class LadderProgressLine:
    """The whole ladder's progress: on a terminal one line with a bar, rewritten in place;
    otherwise plain lines, at most one per PLAIN_EVERY_S. `tick` is called every second or so,
    so that a long step with no news (a server loading) still shows the time left counting."""

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.clock = clock
        self._latest: tuple[LadderProgress, float] | None = None  # and when it came
        self._printed: float | None = None
        self._shown = False

    def __call__(self, p: LadderProgress) -> None:
        self._latest = (p, self.clock())
        self.tick()

    def tick(self) -> None:
        if self._latest is None:
            return
        now = self.clock()
        if not self.tty and self._printed is not None and now - self._printed < PLAIN_EVERY_S:
            return
        p, at = self._latest
        text = progress_text(later(p, now - at))
        if self.tty:
            frac = later(p, now - at).fraction
            bar = "[" + ("#" * int((frac or 0.0) * 20)).ljust(20) + "] "
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + (bar + text)[:width].ljust(width))
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._printed = now

    def clear(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False

    def say(self, line: str) -> None:
        """A line of its own (what the ladder does next, a warning), above the bar."""
        self.clear()
        self.stream.write(line + "\n")
        self.stream.flush()
        if self.tty:
            self.tick()


@dataclass
class HeadlessLadder:
    cfg: Config
    lineup: Lineup
    constraints: Constraints
    quality: QualityOptions = field(default_factory=QualityOptions)
    output: Path | None = None
    formats: Sequence[str] = ("json", "md")
    svg: Callable[[RunResults], str] | None = None
    llama_server: str | None = None
    force: bool = False
    together: bool | None = None
    fill: float | None = None  # share of each context filled (None: LadderOptions' default)
    history: bool = True
    launcher: Launcher | None = None  # None: one from the config (tests give a fake)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    run: LadderRun | None = None
    results: RunResults | None = None
    written: list[Path] = field(default_factory=list)
    progress: LadderProgressLine | None = None

    def execute(self) -> int:
        # a terminal or pipe gone mid-ladder ends the printing, not the ladder (QuietStream)
        self.stderr, self.stdout = quiet(self.stderr), quiet(self.stdout)
        return asyncio.run(self._main())

    def _say(self, line: str) -> None:
        if self.progress is not None:
            self.progress.say(line)
            return
        self.stderr.write(line + "\n")
        self.stderr.flush()

    async def _ticking(self, progress: LadderProgressLine) -> None:
        while True:
            await asyncio.sleep(1.0)
            progress.tick()

    async def _main(self) -> int:
        plan = plan_from_config(self.cfg)
        launcher = self.launcher or Launcher(defaults_from(self.cfg.models),
                                             llama_server=self.llama_server)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        self.progress = progress = LadderProgressLine(self.stderr)
        ticker = asyncio.ensure_future(self._ticking(progress))
        try:
            opts = LadderOptions(plan=plan, quality=self.quality, force=self.force,
                                 together=self.together)
            if self.fill is not None:
                opts.fill = self.fill
            run = await run_ladder(self.lineup, opts,
                launcher, say=self._say, stop=stop, poll_interval=self.cfg.hardware.poll_interval,
                progress=progress)
        except ServerStartError as e:
            self._say(f"error: {e}")
            return EXIT_FAILED
        finally:
            ticker.cancel()
            self.progress = None
            progress.clear()
            launcher.stop_all()
            for sig in SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        self.run = run
        if not run.passes:
            if run.not_started and not stop.is_set():
                self._say("no quant but the reference started: nothing to compare, nothing "
                          "written")
                return EXIT_FAILED
            self._say("stopped before anything was measured; nothing written")
            return EXIT_INTERRUPTED
        if run.interrupted or stop.is_set():
            self._say("stopped: what was measured is written, the rest is named in the notes")
        section = ladder_section(run, self.constraints)
        results = merged_results(run, section)
        self.results = results
        results.extra["config"] = config_to_dict(self.cfg)
        late = stop_while_writing(loop, self.stderr)
        results.extra["provenance"] = await asyncio.to_thread(provenance, results, stop=late)
        if late.is_set():
            stop.set()
        out = self.output or Path(self.cfg.run.export_dir) / (
            f"ladder-{datetime.now():%Y%m%d-%H%M%S}.json")
        # the history first, then the files (core.reports.snapshot.save_run)
        saved = save_run(results, out.parent, out.stem, self.formats, svg=self.svg,
                         history=self.history)
        self.written = saved.written
        self.stdout.write(_verdict_text(results) + "\n")
        if saved.written:
            self.stdout.write("results: " + ", ".join(map(str, saved.written)) + "\n")
        if saved.run_id is not None:
            self.stdout.write(f"stored in the run history as #{saved.run_id}\n")
        elif self.history:
            self._say(f"warning: run not stored in the history: {saved.history_error}")
        for w in saved.warnings:
            self._say(f"warning: {w}")
        if saved.export_error is not None:
            self._say(f"error: {saved.export_error}\nthe results are kept in {saved.kept_in()}")
        if run.interrupted or stop.is_set():
            return EXIT_INTERRUPTED
        if saved.export_error is not None:
            return EXIT_EXPORT
        return EXIT_FAILED if results.failures or run.not_started else EXIT_OK


def _verdict_text(results: RunResults) -> str:
    from quanttui.core.reports.ladder import section_of

    sec = section_of(results.extra)
    assert sec is not None
    lines = ["verdict: " + sec.verdict.reason]
    if sec.verdict.by_context or sec.verdict.constraints.ctx_size is not None:
        lines.append(f"constraints: {constraints_text(sec.verdict)}")  # naming the context
    if sec.verdict.within_noise:
        lines += ["within noise:"] + [f"  {x}" for x in sec.verdict.within_noise]
    lines += [f"warning: {w}" for w in sec.verdict.warnings]
    lines += ["", *summary_table(sec)]
    if sec.notes:
        lines += [""] + [f"note: {n}" for n in sec.notes]
    return "\n".join(lines)


def constraints_from(kw: dict[str, Any]) -> Constraints:
    """The verdict's constraints from command-line values (None: the default)."""
    c = Constraints()
    changes = {k: v for k, v in (("memory_budget_bytes", kw.get("memory_budget")),
                                 ("min_speedup", kw.get("min_speedup")),
                                 ("max_kld", kw.get("max_kld")),
                                 ("min_same_top1", kw.get("min_same_top1")),
                                 ("max_accuracy_drop", kw.get("max_accuracy_drop")))
               if v is not None}
    import msgspec

    return msgspec.structs.replace(c, **changes) if changes else c
