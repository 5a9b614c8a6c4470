"""Textual's Linux input thread, woken by input alone.

Textual's input thread polls the terminal every 0.1 s so that it sees its exit flag and times out
a lone Escape: ten wake-ups a second, ~0.1% of a core on a small VM, half of what an idle
quanttui costs the servers it measures. Here the thread sleeps until a key (or other input)
comes, until the exit flag is set (setting it writes to a pipe the thread also waits on), or,
only while the key parser is waiting on a timeout (an Escape that may start a sequence), for
Textual's own 0.1 s. The loop is Textual 8's `LinuxDriver.run_input_thread` otherwise.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
from codecs import getincrementaldecoder
from typing import Any

from quanttui.core.threads import name_os_thread

POLL_S = 0.1  # Textual's own tick while the parser has a timeout pending


class WakingEvent(threading.Event):
    """A `threading.Event` whose `set` also makes a pipe readable, for a thread in `select`.

    The pipe lives while an input thread runs: `open` at its start, `close` at its end (Textual
    starts the thread again, with the same event, after a suspend). Set while no pipe is open,
    it is an ordinary event, which a starting thread sees before it waits.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pipe_lock = threading.Lock()  # a closed descriptor's number may name another file
        self._pipe: tuple[int, int] | None = None

    @property
    def read_fd(self) -> int:
        assert self._pipe is not None, "open() first"
        return self._pipe[0]

    def open(self) -> None:
        with self._pipe_lock:
            if self._pipe is None:
                self._pipe = os.pipe()
                for fd in self._pipe:
                    os.set_blocking(fd, False)

    def close(self) -> None:
        with self._pipe_lock:
            if self._pipe is not None:
                for fd in self._pipe:
                    os.close(fd)
                self._pipe = None

    def set(self) -> None:
        super().set()
        with self._pipe_lock, contextlib.suppress(OSError):  # full: readable already
            if self._pipe is not None:
                os.write(self._pipe[1], b"x")

    def clear(self) -> None:
        super().clear()
        self.drain()

    def drain(self) -> None:
        with self._pipe_lock, contextlib.suppress(OSError):
            while self._pipe is not None and os.read(self._pipe[0], 512):
                pass


def install() -> None:
    """Make Textual's Linux driver use the input loop below (once; a no-op elsewhere)."""
    try:
        from textual._loop import loop_last
        from textual._parser import ParseError
        from textual._xterm_parser import XTermParser
        from textual.drivers.linux_driver import LinuxDriver
    except ImportError:  # another platform, or a Textual whose insides moved: keep its own
        return
    if getattr(LinuxDriver, "_quanttui_quiet_input", False):
        return
    original_init = LinuxDriver.__init__

    def __init__(self: LinuxDriver, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.exit_event = WakingEvent()

    def run_input_thread(self: LinuxDriver) -> None:
        name_os_thread("qt-input")
        exit_event = self.exit_event
        if not isinstance(exit_event, WakingEvent):  # made by someone else: Textual's loop
            return original_run(self)
        exit_event.open()
        selector = selectors.SelectSelector()
        fileno = self.fileno
        selector.register(fileno, selectors.EVENT_READ)
        selector.register(exit_event.read_fd, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        feed, tick = parser.feed, parser.tick
        decode = getincrementaldecoder("utf-8")().decode

        def process(events: list[tuple[selectors.SelectorKey, int]], final: bool = False) -> None:
            for last, (key, mask) in loop_last(events):
                if key.fd != fileno:
                    exit_event.drain()
                    continue
                if mask & selectors.EVENT_READ:
                    data = decode(os.read(fileno, 1024 * 4), final=final and last)
                    if not data:
                        break  # stdin piped and at its end
                    for event in feed(data):
                        self.process_message(event)
            for event in tick():
                self.process_message(event)

        try:
            while not exit_event.is_set():
                # The parser's private deadline: where it has none, nothing is due but input.
                pending = getattr(parser, "_timeout_time", POLL_S) is not None
                process(selector.select(POLL_S if pending else None))
            selector.unregister(exit_event.read_fd)
            selector.unregister(fileno)
            process(selector.select(POLL_S), final=True)
        finally:
            selector.close()
            exit_event.close()
            with contextlib.suppress(EOFError, ParseError):
                for _ in feed(""):
                    pass

    original_run = LinuxDriver.run_input_thread
    LinuxDriver.__init__ = __init__  # type: ignore[method-assign]
    LinuxDriver.run_input_thread = run_input_thread  # type: ignore[method-assign]
    LinuxDriver._quanttui_quiet_input = True  # type: ignore[attr-defined]
