"""The typed events a comparison run emits; the TUI, the headless run and tests consume them.

Events are small frozen records. A token batch carries what arrived on one request since the
session last collected its stream (a few times a second), not a message per token; `t_ns` is the
stamp of the batch's last event, `t_first_ns` its first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo


@dataclass(frozen=True, slots=True)
class RunStarted:
    servers: tuple[ServerInfo, ...]
    total_requests: int  # measured requests planned (warm-ups excluded)


@dataclass(frozen=True, slots=True)
class RequestStarted:
    request_id: int
    server: str
    prompt_id: str
    repetition: int
    warmup: bool


@dataclass(frozen=True, slots=True)
class TokenBatch:
    request_id: int
    server: str
    t_sent_ns: int  # when the request was sent (TTFT shows with the first batch)
    t_first_ns: int  # the batch's first event (a live rate counts its tokens from there)
    t_ns: int  # the batch's last event
    text: str
    token_ids: tuple[int, ...]
    n_events: int  # token-bearing events in this batch
    n_tokens: int  # tokens they carried (the server's count; ids may be fewer)
    warmup: bool


@dataclass(frozen=True, slots=True)
class RequestFinished:
    record: RequestRecord  # record.error is set when it failed


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    failed: int
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True, slots=True)
class Notice:
    level: Literal["info", "warning", "error"]
    code: str  # stable identifier, e.g. "contention", "server-down"
    message: str
    server: str | None = None


@dataclass(frozen=True, slots=True)
class RunFinished:
    results: RunResults


Event = RunStarted | RequestStarted | TokenBatch | RequestFinished | Progress | Notice | RunFinished
