"""The servers the TUI knows: configured, added by URL, launched here; which are compared (A, the
reference, first); what each says about itself; and the `Launcher` of the servers started here.

The app owns one `ServerRegistry` and is the only one to change it (the screens read it and ask
the app by message). No Textual here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from quanttui.config import Config
from quanttui.core.hardware import ProcessTarget
from quanttui.core.llama.client import LlamaClient, Timeouts
from quanttui.core.llama.result import ServerError, ServerLoading
from quanttui.core.llama.urls import url_problem
from quanttui.core.models.discovery import requantized_source
from quanttui.core.models.launcher import Launch, Launcher, defaults_from, free_vram
from quanttui.core.run.plan import ServerSpec
from quanttui.core.run.records import ServerInfo
from quanttui.core.secrets import mask_url

Health = Literal["unknown", "checking", "ok", "loading", "down"]
Source = Literal["config", "added", "launched"]
PROBE_TIMEOUTS = Timeouts(connect=2.0, read=5.0, total=10.0)


@dataclass(eq=False)
class ServerEntry:
    spec: ServerSpec
    source: Source = "config"
    info: ServerInfo = field(init=False)
    health: Health = "unknown"
    error: str | None = None
    checked_at: float | None = None

    def __post_init__(self) -> None:
        self.info = ServerInfo(self.spec.name, mask_url(self.spec.url), pid=self.spec.pid,
                               managed=self.spec.pid is not None, build_info=self.spec.release)

    @property
    def name(self) -> str:
        return self.spec.name


class Refused(Exception):
    """A change the registry won't make; the text says why, for the user."""

    def __init__(self, message: str, severity: Literal["warning", "error"] = "warning") -> None:
        super().__init__(message)
        self.severity = severity


class ServerRegistry:
    """The server list, the selection, and the launcher of the servers started here.

    `frozen` is set while a run compares the selection: it can't change then (a server added
    meanwhile is listed, not selected) and a compared server can't be dropped.
    """

    def __init__(self, entries: Iterable[ServerEntry] = (), *,
                 selected: Sequence[str] | None = None,
                 launcher: Launcher | None = None) -> None:
        self.entries: dict[str, ServerEntry] = {e.name: e for e in entries}
        self.selected: list[str] = [n for n in (selected if selected is not None
                                                else self.entries) if n in self.entries]
        self.launcher = launcher or Launcher()
        self.frozen = False
        self.probe_timeouts = PROBE_TIMEOUTS

    @classmethod
    def from_config(cls, cfg: Config, servers: Sequence[ServerSpec] | None = None, *,
                    selected: Sequence[str] | None = None,
                    llama_server: str | Path | None = None) -> ServerRegistry:
        """`servers` (default: the config's servers reached by URL; managed ones are launched
        and added later), all selected unless `selected` says which; the launcher starts with
        the config's `[models.launch]` flags."""
        if servers is None:
            servers = [ServerSpec(s.name, s.url, api_key=s.api_key)
                       for s in cfg.servers if s.url is not None]
        launcher = Launcher(defaults_from(cfg.models), llama_server=llama_server,
                            vram_free=free_vram)
        return cls([ServerEntry(s) for s in servers], selected=selected, launcher=launcher)

    # ------------------------------------------------------------------ reading

    def chosen(self) -> list[ServerEntry]:
        """The selected entries, the reference (A) first."""
        return [self.entries[n] for n in self.selected]

    def letter(self, name: str) -> str | None:
        """A, B, C … for a selected server (its column), None for the others."""
        return chr(ord("A") + self.selected.index(name)) if name in self.selected else None

    def targets(self) -> list[ProcessTarget]:
        """The selected servers as the hardware poller watches them."""
        return [ProcessTarget(e.name, url=e.spec.url, pid=e.spec.pid) for e in self.chosen()]

    # ------------------------------------------------------------------ changing

    def toggle(self, name: str) -> None:
        """Select a server (as the last) or deselect it."""
        if self.frozen:
            raise Refused("Stop the run (x) before changing the servers.")
        if name in self.selected:
            self.selected.remove(name)
        elif name in self.entries:
            self.selected.append(name)

    def add_url(self, text: str) -> ServerEntry | None:
        """A running server typed in (http:// assumed), listed but not selected: the app
        selects it once it answers. None for an empty text."""
        url = text.strip().rstrip("/")
        if not url:
            return None
        if "://" not in url:
            url = "http://" + url
        problem = url_problem(url)
        if problem:
            raise Refused(f"{url}: {problem}", "error")
        if any(e.spec.url == url for e in self.entries.values()):
            raise Refused(f"{url} is already in the list.")
        return self._add(ServerEntry(ServerSpec(url.split("://", 1)[1], url), source="added"),
                         select=False)

    def add_launched(self, launch: Launch) -> ServerEntry:
        """A server started here that is now healthy."""
        # its name, URL, process, command line and the key it was started with
        spec = ServerSpec.launched(launch.server)
        return self._add(ServerEntry(spec, source="launched"))

    def _add(self, entry: ServerEntry, *, select: bool = True) -> ServerEntry:
        """Listed, and (`select`) selected for the next run (not for the one running)."""
        self.entries[entry.name] = entry
        if select and not self.frozen:
            self.selected.append(entry.name)
        return entry

    def remove(self, name: str) -> None:
        """Take a server added by URL off the list (the others can only be deselected)."""
        entry = self.entries.get(name)
        if entry is None or entry.source != "added":
            raise Refused("Only servers added here can be removed; deselect the others.")
        self._drop(name, "removing")

    def stop_launched(self, name: str) -> None:
        """Stop a server started here and take it off the list."""
        self._drop(name, "stopping")
        self.launcher.stop(name)

    def _drop(self, name: str, doing: str) -> None:
        if self.frozen and name in self.selected:
            raise Refused(f"Stop the run (x) before {doing} a compared server.")
        self.entries.pop(name, None)
        if name in self.selected:
            self.selected.remove(name)

    def adopt(self, servers: Sequence[ServerInfo]) -> None:
        """Show these servers as a finished run saw them, selected in its order (a server not
        listed is added)."""
        for info in servers:
            entry = self.entries.get(info.name)
            if entry is None:
                entry = self.entries[info.name] = ServerEntry(
                    ServerSpec(info.name, info.url, pid=info.pid), source="added")
            entry.info = info
            entry.health = "ok" if info.reachable else "down"
            entry.error = info.error
        self.selected = [s.name for s in servers]

    # ------------------------------------------------------------------ probing

    def answering(self) -> tuple[list[ServerEntry], list[ServerEntry], list[ServerEntry]]:
        """The selected entries as a run's start sees them: those that answered (ok, or still
        loading their model), those still being asked, and those that answered nothing."""
        chosen = self.chosen()
        return ([e for e in chosen if e.health in ("ok", "loading")],
                [e for e in chosen if e.health in ("unknown", "checking")],
                [e for e in chosen if e.health == "down"])

    def to_probe(self) -> list[ServerEntry]:
        """The entries not being probed now."""
        return [e for e in self.entries.values() if e.health != "checking"]

    async def probe(self, entry: ServerEntry, timeouts: Timeouts | None = None,
                    answered: Callable[[], None] | None = None) -> None:
        """Ask the server for its health, /props and /v1/models and note the answers in its
        entry; never raises a ServerError. `answered`: called once its health is known, before
        its model file is read for what it was requantized from (the first read imports numpy:
        ~0.4 s the screen need not wait for)."""
        entry.health = "checking"
        spec = entry.spec
        client = LlamaClient(spec.url, name=spec.name, api_key=spec.api_key,
                             timeouts=timeouts or self.probe_timeouts)
        try:
            await client.health()
            props = await client.props()
            models = await client.models()
        except ServerLoading as e:
            entry.health, entry.error = "loading", e.detail
        except ServerError as e:
            entry.health, entry.error = "down", e.detail
        else:
            entry.info.update_from(props, models)
            entry.health, entry.error = "ok", None
            if answered is not None:
                answered()
            if entry.info.model_path:  # a file on this machine says what it was made from
                entry.info.requantized_from = await asyncio.to_thread(
                    requantized_source, entry.info.model_path)
        finally:
            await client.aclose()
            entry.checked_at = time.time()
