"""Leaving for sure when the terminal goes away.

Textual writes the screen through a thread fed by a bounded queue (30 writes). When the
terminal is gone (an SSH window closed, a tmux session killed) a write fails with EIO, that
thread ends, and the next repaints fill the queue: the event loop then blocks in `Queue.put`
for good, in the middle of a frame or of the shutdown, and a signal handler on that loop never
runs (the same mechanism as Textualize/textual#6692, there after a failed suspend). Two things
here, so quanttui never outlives its terminal with servers running:

- `drain_after_errors()`: the writer thread keeps draining its queue after a failed write (the
  text is discarded: nobody can see it), so the loop is never blocked by it;
- `ExitDeadline`: armed when the app starts to leave or gets SIGTERM/SIGHUP, it waits a few
  seconds on a thread of its own, then kills the servers quanttui started, stores what the run
  has finished if the app could not (`rescue`), and ends the process, whatever the event loop is
  doing. A clean exit disarms it.

A failed write or read on the terminal is taken as the terminal being gone (`on_terminal_lost`):
SIGHUP does not always come (a process outside the terminal's session, `nohup`), and Textual
would otherwise end the app on a failed read at once (a panic), without storing the run. A
terminal gone before the app asked to be told (while its servers start, or Textual's first
writes) is told as soon as it asks: found by a failed write or read then, or by the terminal's
own state (a hung-up terminal fails every request, EIO), since the servers' start, finding it
gone, sends what it prints to /dev/null. Else, with SIGHUP ignored, the app ran on for good,
its servers with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import termios
import threading
from collections.abc import Callable

from quanttui.core.threads import name_os_thread

DEFAULT_S = 4.0

_lost: list[Callable[[], None]] = []  # what to call when the terminal is gone (any thread)
_gone = threading.Event()  # a write or read on the terminal failed (told or not)


def on_terminal_lost(callback: Callable[[], None] | None) -> None:
    """Call `callback` (from the thread that found out) once a write or read on the terminal
    fails; None: no one to tell. Called at once when the terminal is gone already."""
    _lost[:] = [callback] if callback is not None else []
    if callback is not None and (_gone.is_set() or hung_up()):
        terminal_lost()


def terminal_lost() -> None:
    _gone.set()
    for callback in list(_lost):
        with contextlib.suppress(Exception):  # a writer or input thread must not die of it
            callback()


def hung_up(fd: int = 0) -> bool:
    """Whether the terminal on `fd` (stdin: what the app reads its keys from) has gone away: a
    hung-up terminal answers every request with EIO. False for anything but a terminal."""
    try:
        termios.tcgetattr(fd)
    except termios.error as e:
        return bool(e.args) and e.args[0] == errno.EIO
    except (OSError, ValueError):
        return False
    return False


class ExitDeadline:
    def __init__(self, kill: Callable[[], None], seconds: float = DEFAULT_S) -> None:
        self._kill = kill
        self.seconds = seconds
        # called after the kill: keeps what it can (the app stores its run if it has not yet)
        self.rescue: Callable[[], None] | None = None
        self._armed = threading.Event()
        self._disarmed = threading.Event()
        self._lock = threading.Lock()

    def arm(self, code: int) -> None:
        """From now, `seconds` to leave; then kill the servers and exit with `code`. Safe to call
        from a signal handler or any thread; only the first call counts."""
        with self._lock:
            if self._armed.is_set() or self._disarmed.is_set():
                return
            self._armed.set()
        threading.Thread(target=self._wait, args=(code,), name="quanttui-exit-deadline",
                         daemon=True).start()

    def disarm(self) -> None:
        self._disarmed.set()

    def _wait(self, code: int) -> None:
        if self._disarmed.wait(self.seconds):
            return
        try:
            self._kill()
            if self.rescue is not None:
                with contextlib.suppress(Exception):  # leaving comes first
                    self.rescue()
        finally:
            try:
                sys.stderr.write(f"quanttui: the terminal did not let the app leave within "
                                 f"{self.seconds:g} s; servers stopped, exiting\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass  # the terminal is gone: nobody to tell
            os._exit(code)


def drain_after_errors() -> None:
    """Make Textual's writer thread keep emptying its queue after a write fails, and its input
    thread report a failed read as the terminal lost instead of a crash (see above)."""
    from textual.drivers import _writer_thread

    _report_failed_reads()

    cls = _writer_thread.WriterThread
    if getattr(cls, "_quanttui_drains", False):
        return

    def run(self: _writer_thread.WriterThread) -> None:
        name_os_thread("qt-output")
        get = self._queue.get
        failed = False
        while True:
            text = get()
            if text is None:
                break
            if failed:
                continue
            try:
                self._file.write(text)
                if self._queue.qsize() == 0:
                    self._file.flush()
            except (OSError, ValueError) as e:
                failed = True  # the terminal is gone: keep draining, nobody can see it
                if isinstance(e, OSError):
                    terminal_lost()
        if not failed:
            with contextlib.suppress(OSError, ValueError):
                self._file.flush()

    cls.run = run  # type: ignore[method-assign]
    cls._quanttui_drains = True  # type: ignore[attr-defined]


def _report_failed_reads() -> None:
    try:
        from textual.drivers.linux_driver import LinuxDriver
    except ImportError:  # not on this platform (Windows)
        return
    if getattr(LinuxDriver, "_quanttui_reports", False):
        return

    def run(self: LinuxDriver) -> None:
        # Textual's `_run_input_thread`, but a failed read is the terminal gone: nobody can see
        # a traceback, and its panic would end the app at once, the run not stored.
        try:
            self.run_input_thread()
        except OSError:
            terminal_lost()
        except BaseException:
            import rich.traceback

            self._app.call_later(self._app.panic, rich.traceback.Traceback())

    LinuxDriver._run_input_thread = run  # type: ignore[method-assign]
    LinuxDriver._quanttui_reports = True  # type: ignore[attr-defined]
