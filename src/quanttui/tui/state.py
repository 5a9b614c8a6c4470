"""What the TUI knows between runs: the servers (configured, typed in, launched) with what each
says about itself, and the run options the user has chosen. No Textual here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from quanttui.config import Config, PromptsConfig
from quanttui.core.llama.client import LlamaClient, Timeouts
from quanttui.core.llama.result import ServerError, ServerLoading
from quanttui.core.run.records import ServerInfo
from quanttui.core.run.session import SCHEDULES, RunPlan, Schedule, ServerSpec

Health = Literal["unknown", "checking", "ok", "loading", "down"]
Source = Literal["config", "added", "launched"]
# "config" runs what [prompts] names (suites, files, inline); the others are one built-in suite.
SUITES = ("config", "quick", "tasks", "long")
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
        self.info = ServerInfo(self.spec.name, self.spec.url, pid=self.spec.pid,
                               managed=self.spec.pid is not None)

    @property
    def name(self) -> str:
        return self.spec.name


async def probe(entry: ServerEntry, timeouts: Timeouts = PROBE_TIMEOUTS) -> None:
    """Ask the server for its health, /props and /v1/models; never raises a ServerError."""
    entry.health = "checking"
    spec = entry.spec
    client = LlamaClient(spec.url, name=spec.name, api_key=spec.api_key, timeouts=timeouts)
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
    finally:
        await client.aclose()
        entry.checked_at = time.time()


def url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as e:
        return str(e)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http(s) URL such as http://127.0.0.1:8080"
    return None


@dataclass
class RunOptions:
    schedule: Schedule
    suite: str
    repetitions: int
    n_predict: int

    @classmethod
    def from_config(cls, cfg: Config) -> RunOptions:
        return cls(cfg.run.schedule, "config", cfg.run.repetitions, cfg.generation.n_predict)

    def next_schedule(self) -> Schedule:
        return SCHEDULES[(SCHEDULES.index(self.schedule) + 1) % len(SCHEDULES)]

    def next_suite(self) -> str:
        return SUITES[(SUITES.index(self.suite) + 1) % len(SUITES)]


def build_plan(cfg: Config, opts: RunOptions, typed: str | None = None) -> RunPlan:
    """The headless path's plan, with the TUI's choices on top: a typed prompt or a suite, the
    schedule, repetitions and tokens. Raises ValueError / PromptFileError for bad prompts."""
    from quanttui.headless import plan_from_config

    if typed is not None:
        prompts = PromptsConfig(suites=(), inline=(typed,))
    elif opts.suite == "config":
        prompts = cfg.prompts
    else:
        prompts = PromptsConfig(suites=(opts.suite,))
    run = msgspec.structs.replace(cfg.run, schedule=opts.schedule, repetitions=opts.repetitions)
    gen = msgspec.structs.replace(cfg.generation, n_predict=opts.n_predict)
    return plan_from_config(msgspec.structs.replace(cfg, prompts=prompts, run=run,
                                                    generation=gen))


def entries_from_config(cfg: Config) -> list[ServerEntry]:
    """The configured servers that are reachable by URL (managed ones are launched first)."""
    return [ServerEntry(ServerSpec(s.name, s.url, api_key=s.api_key))
            for s in cfg.servers if s.url is not None]
