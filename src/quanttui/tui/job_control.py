"""A stop (SIGTSTP) and a continue (SIGCONT) handled on the event loop, not inside a handler.

Textual's Linux driver leaves application mode inside the SIGTSTP handler itself: it writes to
the screen's queue, stops the input thread and waits for it. Python runs a handler between two
bytecodes of the main thread, wherever that thread is; when it is inside the screen queue's
`put` (the event loop writes every frame through it), the handler's own write waits for a lock
that its own thread holds, for good: the process neither stops nor draws again (a `kill -TSTP`,
or a job-control stop, at the wrong moment). Here the handler only wakes the loop (asyncio's
signal handling), and the suspend runs as a callback, where the loop holds no lock. In that
callback the process stops (SIGSTOP) and, once continued, takes application mode back before
any other callback can write a frame to the stopped writer. SIGCONT itself is left to the
system: a continue after a plain `kill -STOP`, which left application mode alone, no longer
starts a second input thread and a second writer thread, as Textual's handler did.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any


def install() -> None:
    """Make Textual's Linux driver suspend from its event loop (once; a no-op elsewhere)."""
    try:
        from textual.drivers.linux_driver import LinuxDriver
    except ImportError:  # another platform
        return
    if getattr(LinuxDriver, "_quanttui_job_control", False) or not all(
            hasattr(LinuxDriver, m) for m in ("_sigtstp_application", "_sigcont_application")):
        return  # done already, or a Textual whose insides moved: keep its own handlers
    original_init = LinuxDriver.__init__

    def __init__(self: LinuxDriver, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)  # puts Textual's handlers in place
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTSTP, suspend, self)
        except (RuntimeError, ValueError):  # no loop running here, or not the main thread
            return
        signal.signal(signal.SIGCONT, signal.SIG_DFL)

    LinuxDriver.__init__ = __init__  # type: ignore[method-assign]
    LinuxDriver._quanttui_job_control = True  # type: ignore[attr-defined]


def suspend(driver: Any) -> None:
    """On the loop: leave application mode, stop, and take it back once continued.

    A driver whose writer has ended (the app is leaving, or the terminal is gone) has nothing
    to give back or take back: the process just stops."""
    writer = getattr(driver, "_writer_thread", None)
    if writer is None or not writer.is_alive():
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    driver._sigtstp_application()  # application mode off, then SIGSTOP: returns once continued
    driver._sigcont_application()  # application mode on again (both as Textual's own handlers)
