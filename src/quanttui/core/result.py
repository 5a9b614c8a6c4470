"""What one streamed request returned, with a monotonic timestamp per event.

The record grows while the stream runs (the session reads it for live views) and is kept as is
when the stream fails, so tokens received before a failure are never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from quanttui.core.errors import ServerError
    from quanttui.core.protocol import Timings, TokenProb, Usage

Endpoint = Literal["completion", "v1-completions", "chat"]

ENDPOINT_PATHS: dict[Endpoint, str] = {
    "completion": "/completion",
    "v1-completions": "/v1/completions",
    "chat": "/v1/chat/completions",
}


@dataclass(slots=True, eq=False)
class CompletionResult:
    """One request. Times are `time.perf_counter_ns()` values on the client.

    Per token-bearing event: its arrival time, how many tokens it carried (one on /completion;
    unknown on chat, where chunks are message diffs, counted as 1) and its text.
    """

    server: str
    endpoint: Endpoint
    t_sent_ns: int
    t_headers_ns: int | None = None
    t_first_event_ns: int | None = None
    t_done_ns: int | None = None
    event_times_ns: list[int] = field(default_factory=list)
    event_ntokens: list[int] = field(default_factory=list)
    event_texts: list[str] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    probs: list[TokenProb] = field(default_factory=list)
    timings: Timings | None = None
    usage: Usage | None = None
    stop_type: str | None = None
    stopping_word: str | None = None
    finish_reason: str | None = None
    truncated: bool = False
    error: ServerError | None = None

    @property
    def text(self) -> str:
        return "".join(self.event_texts)

    @property
    def done(self) -> bool:
        return self.t_done_ns is not None

    @property
    def ok(self) -> bool:
        return self.done and self.error is None

    @property
    def n_events(self) -> int:
        return len(self.event_times_ns)

    @property
    def t_first_token_ns(self) -> int | None:
        return self.event_times_ns[0] if self.event_times_ns else None

    @property
    def n_tokens(self) -> int:
        """Generated tokens as the server counts them when it said, else as streamed."""
        if self.timings is not None and self.timings.predicted_n:
            return self.timings.predicted_n
        if self.usage is not None and self.usage.completion_tokens:
            return self.usage.completion_tokens
        return sum(self.event_ntokens)

    @property
    def stop_reason(self) -> str | None:
        return self.stop_type or self.finish_reason
