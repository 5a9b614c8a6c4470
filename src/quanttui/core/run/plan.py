"""What a run will do (`RunPlan`: prompts, generation parameters, schedule, repetitions,
warm-up, concurrency, endpoint, timeouts) and on which servers (`ServerSpec`), and both as the
config describes them. The headless run
and the TUI both build their plan here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from quanttui.core.llama.client import Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.llama.result import Endpoint
from quanttui.core.run.footprint import check_fits
from quanttui.core.run.pairing import DEFAULT_DRIFT_FLOOR
from quanttui.core.run.records import ServerInfo
from quanttui.core.run.schedule import SCHEDULES, Schedule
from quanttui.core.secrets import mask_args, mask_url
from quanttui.core.suites.prompts import Prompt, collect

if TYPE_CHECKING:
    from quanttui.config import Config
    from quanttui.core.models.servers import ManagedServer


@dataclass(frozen=True)
class ServerSpec:
    """A server to compare, as the run knows it: its name (the column), URL and key; the
    process and command line when quanttui started it."""

    name: str
    url: str
    api_key: str | None = field(default=None, repr=False)
    pid: int | None = None  # when quanttui launched it
    launch_args: tuple[str, ...] | None = None  # secrets masked
    log_path: Path | None = None  # its llama-server log, when quanttui started it
    # the llama.cpp release of the binary quanttui started, where the server can't say it
    release: str | None = None

    @classmethod
    def launched(cls, server: ManagedServer) -> ServerSpec:
        """A server quanttui started, with the command line it ran (masked), the key it
        was started with and its log."""
        return cls(server.label, server.url, api_key=server.spec.client_key, pid=server.pid,
                   launch_args=tuple(server.spawned_args), log_path=server.log_path,
                   release=server.binary.release if server.binary is not None else None)

    def info(self) -> ServerInfo:
        """What the run records of it before asking the server anything (secrets masked)."""
        return ServerInfo(name=self.name, url=mask_url(self.url), pid=self.pid,
                          managed=self.pid is not None, build_info=self.release,
                          launch_args=mask_args(self.launch_args) if self.launch_args else None)


def server_logs(specs: Sequence[ServerSpec]) -> dict[str, Path]:
    """The log of each server quanttui started, by name (for hardware_json's breakdown); the
    others are attached."""
    return {s.name: s.log_path for s in specs if s.log_path is not None}


@dataclass(frozen=True)
class RunPlan:
    prompts: tuple[Prompt, ...]
    params: GenerationParams = field(default_factory=GenerationParams)
    schedule: Schedule = "simultaneous"
    repetitions: int = 1
    warmup: int = 1
    concurrency_levels: tuple[int, ...] = (1,)
    endpoint: Endpoint = "completion"
    timeouts: Timeouts = field(default_factory=Timeouts)
    order_seed: int = 0
    warmup_n_predict: int = 8
    # Adaptive length: more repetitions until the decode ratio is decided (within this
    # half-width, or a difference), then as many again to confirm, within the budget
    # (core.run.decide). None: `repetitions`.
    until_decided: float | None = None
    decide_budget_s: float = 600.0
    drift_floor: float = DEFAULT_DRIFT_FLOOR  # core.run.pairing: pairs across blocks of time
    # date tokens by the server's running timings, reads paced (core.llama.client); False: by
    # arrival
    server_times: bool = True

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ValueError("a run needs at least one prompt")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.repetitions < 1 or self.warmup < 0 or not self.concurrency_levels or min(
                self.concurrency_levels) < 1:
            raise ValueError("repetitions and concurrency must be ≥ 1, warm-up ≥ 0")
        if self.until_decided is not None and len(self.concurrency_levels) > 1:
            raise ValueError("--until-decided runs at one concurrency level, not a sweep")
        if self.until_decided is not None and len(self.prompts) < 2:
            raise ValueError("--until-decided needs at least 2 prompts (the interval is over "
                             "prompts)")

    @property
    def units(self) -> list[tuple[Prompt, int]]:
        return [(p, rep) for rep in range(self.repetitions) for p in self.prompts]

    def total_requests(self, n_servers: int) -> int:
        return len(self.units) * len(self.concurrency_levels) * n_servers


def plan_from_config(cfg: Config, concurrency_levels: Sequence[int] | None = None) -> RunPlan:
    """The run `cfg` describes; raises ValueError / PromptFileError for bad prompts."""
    t = cfg.timeouts
    prompts = collect(cfg.prompts.suites, [Path(f) for f in cfg.prompts.files],
                      cfg.prompts.inline)
    plan = RunPlan(
        prompts=tuple(prompts),
        params=GenerationParams.of(cfg.generation),
        schedule=cfg.run.schedule,
        repetitions=cfg.run.repetitions,
        warmup=cfg.run.warmup,
        concurrency_levels=tuple(concurrency_levels or (cfg.run.concurrency,)),
        endpoint=cfg.run.endpoint,
        timeouts=Timeouts(connect=t.connect, read=t.read, total=t.total),
        order_seed=cfg.run.order_seed,
        until_decided=cfg.run.decide_half_width if cfg.run.until_decided else None,
        decide_budget_s=cfg.run.decide_budget_s,
        drift_floor=cfg.run.drift_floor,
        server_times=cfg.run.token_times == "server",
    )
    check_fits(plan, max(len(cfg.servers), 1))
    return plan


def attached_specs(cfg: Config) -> list[ServerSpec]:
    """The config's servers reached by URL (those it names by `model` are started first)."""
    return [ServerSpec(s.name, s.url, api_key=s.api_key) for s in cfg.servers if s.url is not None]
