"""`quanttui run --headless`: the comparison without a UI.

Never imports Textual (a test checks). Progress goes to stderr, the JSON results to a file and
the summary table to stdout; every run with a request is also stored in the history, before the
files are written. A terminal or pipe that goes away mid-run (an SSH connection dropped,
`| head`) ends the printing, not the run (`QuietStream`). Exit codes: 0 all went well,
1 requests failed, 2 usage or config errors, 3 a CI gate was not met, 4 the results could not
be written where asked (they are in the history and the user data dir, and the message says
where), 130 stopped by the user or a signal (results so far are still written).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any, cast

from quanttui.config import Config
from quanttui.core.hardware import HardwarePoller, ProcessTarget
from quanttui.core.hardware.remote_watch import RemoteTarget, RemoteWatcher
from quanttui.core.hardware.summary import hardware_json
from quanttui.core.models.launcher import Launcher, specs_from_config
from quanttui.core.models.servers import ManagedServer, ServerStartError
from quanttui.core.quality.step import (
    QualityOptions,
    QualityReport,
    compare_quality,
    format_quality,
    progress_printer,
    quality_dict,
)
from quanttui.core.reports.gates import evaluate
from quanttui.core.reports.provenance import provenance
from quanttui.core.reports.snapshot import save_run
from quanttui.core.reports.summary import format_summary
from quanttui.core.run.events import Event, Notice, Progress, RunStarted
from quanttui.core.run.outside_load import add_load_notices
from quanttui.core.run.plan import (
    RunPlan,
    ServerSpec,
    attached_specs,
    plan_from_config,
    server_logs,
)
from quanttui.core.run.records import RunResults
from quanttui.core.run.session import Session

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_GATES, EXIT_EXPORT, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class QuietStream:
    """A text stream (stderr, stdout) that goes quiet once its terminal or pipe is gone. A write
    to a terminal that went away fails (EIO), as does one into a pipe closed early (EPIPE, as
    with `| head`); raised, that ended the run with exit 1, nothing written and nothing stored.
    Here the first failure ends the printing only, and points the descriptor at /dev/null, so
    that nothing written to it later (Python's flush at exit included) fails again. A hang-up
    that comes with a lost terminal still stops the run, as any signal does."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self.stream.write(text)
            except (OSError, ValueError):  # ValueError: the stream was closed
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self._lose()

    def isatty(self) -> bool:
        try:
            return not self.lost and self.stream.isatty()
        except (OSError, ValueError):
            return False

    def _lose(self) -> None:
        self.lost = True
        try:
            fd = self.stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
        except (OSError, ValueError):  # no descriptor (a StringIO): nothing more to do
            return
        try:
            os.dup2(null, fd)
        except OSError:
            pass
        finally:
            os.close(null)


def quiet(stream: IO[str]) -> IO[str]:
    """`stream` as a `QuietStream` (it has the parts of IO[str] that quanttui writes with)."""
    return stream if isinstance(stream, QuietStream) else cast(IO[str], QuietStream(stream))


class ProgressLine:
    """A one-line progress bar on a terminal; plain lines every few seconds otherwise."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._shown = False

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, Progress):
            now = time.monotonic()
            final = ev.done >= ev.total
            if not final and now - self._last < (0.2 if self.tty else 5.0):
                return
            self._last = now
            frac = ev.done / ev.total if ev.total else 1.0
            bar = "#" * int(frac * 24)
            eta = "" if ev.eta_s is None else f"  {_hms(ev.eta_s)} left"
            fails = f"  {ev.failed} failed" if ev.failed else ""
            text = f"[{bar:<24}] {ev.done}/{ev.total} requests{fails}{eta}"
            if self.tty:
                self.stream.write("\r" + text.ljust(70))
                self._shown = True
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
        elif isinstance(ev, Notice) and ev.level != "info" and ev.code != "request-failed":
            self.clear()
            self.stream.write(f"{ev.level}: {ev.message}\n")
        elif isinstance(ev, Notice) and ev.code == "request-failed":
            self.clear()
            self.stream.write(f"request failed: {ev.message}\n")
        elif isinstance(ev, Notice) and ev.code in ("server-loading", "deciding", "decided",
                                                    "confirmed"):
            self.clear()
            self.stream.write(ev.message + "\n")
        elif isinstance(ev, RunStarted):
            for s in ev.servers:
                if s.reachable:
                    self.stream.write(f"{s.name}: {s.url}  {s.model_ftype or ''}  "
                                      f"{Path(s.model_path).name if s.model_path else ''}\n")
            self.stream.write(f"{ev.total_requests} requests planned\n")

    def clear(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r" + " " * 70 + "\r")
            self._shown = False


def _hms(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"



SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_while_writing(loop: asyncio.AbstractEventLoop, stderr: IO[str]) -> threading.Event:
    """Once the servers are done: a signal now (an impatient second Ctrl+C) skips hashing the
    model files, which takes seconds to minutes, so what was measured is still written and
    stored instead of lost to a KeyboardInterrupt. Without a signal the handlers go when the
    loop closes; after one, the signals are ignored until the process exits."""
    late = threading.Event()

    def on_signal() -> None:
        first = not late.is_set()
        late.set()
        # An impatient second one must change nothing, also after the loop has closed (it
        # then puts back the default handler: a KeyboardInterrupt while exiting, killed by
        # SIGINT instead of exit 130). Taken off the loop first, or its close would do that.
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
        if first:  # said once the signals are ignored: what follows it changes nothing
            stderr.write("stopping: writing what was measured, without the model files' "
                         "hashes\n")
            stderr.flush()

    for sig in SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal)
    return late

@dataclass
class HeadlessRun:
    cfg: Config
    config_dict: dict[str, Any]
    output: Path | None = None
    concurrency_levels: Sequence[int] | None = None
    llama_server: str | None = None
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    extra_servers: list[ServerSpec] = field(default_factory=list)
    contention: Callable[[list[Any]], list[str]] | None = None
    force: bool = False  # start servers even when the fit check says they won't fit
    pin_cores: bool = False  # give each managed server its own cores
    formats: Sequence[str] = ("json",)
    svg: Callable[[RunResults], str] | None = None
    history: bool = True
    min_decode_ratio: float | None = None
    min_same_top1: float | None = None
    # --quality: distribution comparison and task accuracy after the run (the run's outputs are
    # compared in any case); None: outputs only.
    quality: QualityOptions | None = None
    quality_reference: str | None = None
    written: list[Path] = field(default_factory=list)
    results: RunResults | None = None
    output_path: Path | None = None

    def default_output(self) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return Path(self.cfg.run.export_dir) / f"run-{stamp}.json"

    def execute(self) -> int:
        self.stderr, self.stdout = quiet(self.stderr), quiet(self.stdout)
        return asyncio.run(self._main())

    async def _main(self) -> int:
        plan = plan_from_config(self.cfg, self.concurrency_levels)
        specs = attached_specs(self.cfg) + self.extra_servers
        names = [s.name for s in self.cfg.servers] + [s.name for s in self.extra_servers]
        if self.quality_reference is not None and self.quality_reference not in names:
            self.stderr.write(f"error: --quality-reference {self.quality_reference!r} is not "
                              f"one of the servers: {', '.join(names) or '(none)'}\n")
            return EXIT_USAGE
        managed: list[ManagedServer] = []
        loop = asyncio.get_running_loop()
        session: Session | None = None
        quality: QualityReport | None = None
        interrupted = False
        quality_stop = asyncio.Event()

        def on_signal() -> None:
            nonlocal interrupted
            interrupted = True
            quality_stop.set()
            if session is not None:
                session.stop()
            elif main is not None:
                main.cancel()

        main = asyncio.current_task()
        for sig in SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal)
        try:
            try:
                managed = await self.launch_servers()
            except asyncio.CancelledError:
                self.stderr.write("stopped while starting servers\n")
                return EXIT_INTERRUPTED
            except ServerStartError as e:
                self.stderr.write(f"error: {e}\n")
                return EXIT_FAILED
            specs += [ServerSpec.launched(m) for m in managed]
            if not specs:
                self.stderr.write("error: no servers to compare: add [[servers]] to the config "
                                  "or pass --server NAME=URL / --model PATH\n")
                return EXIT_USAGE
            progress = ProgressLine(self.stderr)
            session = Session(specs, plan, emit=progress, contention=self.contention)
            poller = HardwarePoller([ProcessTarget(s.name, url=s.url, pid=s.pid) for s in specs],
                                    interval_s=self.cfg.hardware.poll_interval)
            remote = RemoteWatcher(self._remote_targets(managed),
                                   interval_s=self.cfg.hardware.poll_interval)
            poller.start()
            remote.start()
            try:
                results = await session.run()
            finally:
                poller.stop()
                await remote.stop()
            progress.clear()
            results.hardware = hardware_json(
                poller.history(), poller.host_info(),
                [(s.name, s.model_path) for s in results.servers], logs=server_logs(specs))
            if remote.targets:
                results.hardware["remote"] = remote.to_json()
            for n in add_load_notices(results):
                progress(n)
            poller.close()
            for m in managed:
                for note in m.notes:
                    results.notices.append({"level": "warning", "code": "launch",
                                            "message": f"{m.label}: {note}", "server": m.label})
            if not (results.interrupted or interrupted):  # the servers are still up here
                quality = await self._quality(results, specs, plan, quality_stop)
            _keep_failed_logs(managed, results)
        except BaseException:
            for m in managed:  # whatever went wrong, the servers' logs may tell
                m.keep_log = True
            raise
        finally:
            for m in managed:
                m.stop()
            for sig in SIGNALS:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        for m in managed:
            if m.keep_log and m.log_path is not None and m.log_path.exists():
                results.notices.append({"level": "warning", "code": "server-log",
                                        "message": f"{m.label}: its llama-server log is kept: "
                                                   f"{m.log_path}", "server": m.label})
                self.stderr.write(f"{m.label}: llama-server log kept: {m.log_path}\n")
        self.results = results
        results.extra["config"] = self.config_dict
        late = stop_while_writing(loop, self.stderr)
        results.extra["provenance"] = await asyncio.to_thread(provenance, results, stop=late)
        interrupted |= late.is_set()
        out = self.output or self.default_output()
        self.output_path = out
        saved = save_run(results, out.parent, out.stem, self.formats, svg=self.svg,
                         history=self.history)
        self.written = saved.written
        self.stdout.write(format_summary(results))
        if quality is not None and (quality.pairs or quality.accuracy):
            self.stdout.write(format_quality(quality))
        if saved.written:
            self.stdout.write("results: " + ", ".join(map(str, saved.written)) + "\n")
        if saved.run_id is not None:
            self.stdout.write(f"stored in the run history as #{saved.run_id} "
                              "(quanttui history, quanttui compare)\n")
        elif self.history:
            self.stderr.write(f"warning: run not stored in the history: "
                              f"{saved.history_error}\n")
        for w in saved.warnings:
            self.stderr.write(f"warning: {w}\n")
        if saved.export_error is not None:
            self.stderr.write(f"error: {saved.export_error}\n"
                              f"the results are kept in {saved.kept_in()}\n")
        gates = evaluate(results, self.min_decode_ratio, self.min_same_top1)
        for g in gates:
            (self.stdout if g.passed else self.stderr).write(g.message + "\n")
        if results.interrupted or interrupted:
            return EXIT_INTERRUPTED
        if saved.export_error is not None:
            return EXIT_EXPORT
        bad = bool(results.failures) or any(not s.reachable for s in results.servers)
        if bad:
            return EXIT_FAILED
        return EXIT_GATES if any(not g.passed for g in gates) else EXIT_OK

    def _remote_targets(self, managed: list[ManagedServer]) -> list[RemoteTarget]:
        """Exporters named in the config, for attached and started servers alike, and /metrics
        of the servers quanttui started (an attached server's /metrics is left alone: a scrape
        resets its rate gauges for whoever else reads them)."""
        out = [RemoteTarget(s.name, s.url, s.node_exporter_url, s.dcgm_exporter_url,
                            scrape_server_metrics=False)
               for s in self.cfg.servers if s.url and (s.node_exporter_url or s.dcgm_exporter_url)]
        configured = {s.name: s for s in self.cfg.servers if s.model}
        for m in managed:
            c = configured.get(m.label)
            out.append(RemoteTarget(m.label, m.url, c.node_exporter_url if c else None,
                                    c.dcgm_exporter_url if c else None,
                                    api_key=m.spec.client_key))
        return out

    async def _quality(self, results: RunResults, specs: list[ServerSpec], plan: RunPlan,
                       stop: asyncio.Event) -> QualityReport | None:
        opts = replace(self.quality or QualityOptions(distribution=False, tasks=False),
                       run_params=plan.params, timeouts=plan.timeouts)
        try:
            report = await compare_quality(
                results, specs, plan.prompts, reference=self.quality_reference, options=opts,
                on_progress=progress_printer(self.stderr), stop=stop)
        except ValueError as e:  # e.g. an unknown --quality-reference
            self.stderr.write(f"quality: {e}\n")
            return None
        results.extra["quality"] = quality_dict(report)  # what the reports and gates read
        return report

    async def launch_servers(self) -> list[ManagedServer]:
        """The config's servers, started through the one start path (core.models.launcher)."""
        todo = specs_from_config(self.cfg, self.pin_cores)
        if not todo:
            return []
        if self.quality is not None and self.quality.distribution:
            # Flash attention on the CPU makes log-probs depend on batch layout (~2e-3 KLD
            # between two runs of one model): off, so the noise floor stays near zero.
            todo = [(n, s if {"-fa", "--flash-attn"} & set(s.extra_args)
                     else replace(s, extra_args=(*s.extra_args, "-fa", "off")))
                    for n, s in todo]
        launcher = Launcher(llama_server=self.llama_server)
        launches = await launcher.start_together(
            todo, force=self.force, say=lambda line: self.stderr.write(line + "\n"))
        return [la.server for la in launches]


def _keep_failed_logs(managed: list[ManagedServer], results: RunResults) -> None:
    """A started server that ended on its own, or had a request fail, keeps its log."""
    for m in managed:
        if m.exited or any(r.server == m.label and r.error_kind not in (None, "cancelled")
                           for r in results.records):
            m.keep_log = True
