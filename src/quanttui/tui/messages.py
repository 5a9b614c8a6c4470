"""Messages into the app from outside its event loop.

Token events never travel as messages: the session's emit callback buffers them (see
`quanttui.tui.live`) and a timer draws them a few times a second. Only the hardware poller's
thread posts here, once per sample.
"""

from __future__ import annotations

from textual.message import Message

from quanttui.core.hardware import HwSample


class HardwareSampled(Message):
    """A new hardware sample; only the latest matters, so a queued one is replaced."""

    def __init__(self, sample: HwSample) -> None:
        super().__init__()
        self.sample = sample

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HardwareSampled)


class ServersChanged(Message):
    """A probe finished or the list or selection changed: redraw what shows servers."""
