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
  seconds on a thread of its own, then kills the servers quanttui started and ends the process,
  whatever the event loop is doing. A clean exit disarms it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable

DEFAULT_S = 4.0


class ExitDeadline:
    def __init__(self, kill: Callable[[], None], seconds: float = DEFAULT_S) -> None:
        self._kill = kill
        self.seconds = seconds
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
        finally:
            try:
                sys.stderr.write(f"quanttui: the terminal did not let the app leave within "
                                 f"{self.seconds:g} s; servers stopped, exiting\n")
                sys.stderr.flush()
            except (OSError, ValueError):
                pass  # the terminal is gone: nobody to tell
            os._exit(code)


def drain_after_errors() -> None:
    """Make Textual's writer thread keep emptying its queue after a write fails (see above)."""
    from textual.drivers import _writer_thread

    cls = _writer_thread.WriterThread
    if getattr(cls, "_quanttui_drains", False):
        return

    def run(self: _writer_thread.WriterThread) -> None:
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
            except (OSError, ValueError):
                failed = True  # the terminal is gone: keep draining, nobody can see it
        if not failed:
            with contextlib.suppress(OSError, ValueError):
                self._file.flush()

    cls.run = run  # type: ignore[method-assign]
    cls._quanttui_drains = True  # type: ignore[attr-defined]
