"""The app's messages. Up: a screen asks the app for a change (the screens read the registry and
the run state but never change them). Down: the app tells a screen what changed. In: the
hardware poller's thread hands over a sample.

Token events never travel as messages: the session's emit callback buffers them (see
`quanttui.tui.live`) and a timer draws them a few times a second.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.message import Message

from quanttui.core.hardware import HwSample
from quanttui.core.models.launcher import Launch, LaunchDefaults
from quanttui.core.models.servers import LaunchSpec

# ---------------------------------------------------------------------- in


class HardwareSampled(Message):
    """A new hardware sample; only the latest matters, so a queued one is replaced."""

    def __init__(self, sample: HwSample) -> None:
        super().__init__()
        self.sample = sample

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HardwareSampled)


# ---------------------------------------------------------------------- up


class ToggleServer(Message):
    """Select the server (as the last) or deselect it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class AddServer(Message):
    """Add the running server at this typed URL."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url


class RemoveServer(Message):
    """Take a server added by URL off the list."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ProbeServers(Message):
    """Ask every listed server again how it is and what it serves."""


class OpenModels(Message):
    """Open the model pane."""


class StartServers(Message):
    """Start llama-server for these (name, spec), planned and fit-checked by the model pane."""

    def __init__(self, todo: list[tuple[str, LaunchSpec]]) -> None:
        super().__init__()
        self.todo = todo


class StartLadder(Message):
    """Measure these GGUF files as a ladder (quants of one model), as `quanttui ladder` does."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self.paths = paths


class StopServer(Message):
    """Stop a server started here and take it off the list."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ChangeLaunchDefaults(Message):
    """Change the flags of the servers started from now on: `change` is applied to the flags
    as they are when the app handles it, so that keys pressed in a row add up."""

    def __init__(self, change: Callable[[LaunchDefaults], LaunchDefaults]) -> None:
        super().__init__()
        self.change = change


class StartRun(Message):
    """Run the typed prompt (or, with None, the chosen suite) on the selected servers."""

    def __init__(self, typed: str | None = None) -> None:
        super().__init__()
        self.typed = typed


class ShowPrompt(Message):
    """Show one prompt's outputs side by side: the prompt `prompt_id`, or the one `step` away
    from the prompt shown (-1 the previous, 1 the next); neither: follow the run again."""

    def __init__(self, prompt_id: str | None = None, step: int = 0) -> None:
        super().__init__()
        self.prompt_id = prompt_id
        self.step = step


class OpenRun(Message):
    """Show run #`run_id` of the history in the results view."""

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id


# ---------------------------------------------------------------------- down


class ServersChanged(Message, bubble=False):
    """A probe finished or the list or selection changed: redraw what shows servers. `added`:
    the server just added from the URL field."""

    def __init__(self, added: str | None = None) -> None:
        super().__init__()
        self.added = added


class ResultsChanged(Message, bubble=False):
    """The run shown has new figures (a run ended, the quality step ended): redraw them."""


class LaunchChanged(Message, bubble=False):
    """A server started here changed (state, loading time), or with None the launch flags."""

    def __init__(self, launch: Launch | None = None) -> None:
        super().__init__()
        self.launch = launch
