"""What one request to a llama-server returned: its events, each with a monotonic timestamp, or
the typed failure that ended it.

The record grows while the stream runs (the session reads it for live views) and is kept as is
when the stream fails, so tokens received before a failure are never lost: every failure
carries what was received before it (`partial`). Every failure's message names the server (its
display name and URL) and says what happened, so a user reading a toast or a log line knows
which of the two servers to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from quanttui.core.llama.protocol import Timings, TokenProb, Usage

Endpoint = Literal["completion", "v1-completions", "chat"]

ENDPOINT_PATHS: dict[Endpoint, str] = {
    "completion": "/completion",
    "v1-completions": "/v1/completions",
    "chat": "/v1/chat/completions",
}


@dataclass(slots=True, eq=False)
class CompletionResult:
    """One request. Times are `time.perf_counter_ns()` values on the client.

    Per token-bearing event: its time (its arrival; or, `server_dated`, the first token's
    arrival plus the server's own running `predicted_ms` since: `core.llama.client`), how many
    tokens it carried (the server's running
    count on /completion, usually one; unknown on chat, where chunks are message diffs, counted
    as 1), how many ids it carried (fewer than its tokens after a byte-fallback) and its text.
    """

    server: str
    endpoint: Endpoint
    t_sent_ns: int
    t_headers_ns: int | None = None
    t_first_event_ns: int | None = None
    t_done_ns: int | None = None
    event_times_ns: list[int] = field(default_factory=list)
    event_ntokens: list[int] = field(default_factory=list)
    event_nids: list[int] = field(default_factory=list)  # ids each event carried
    # the server's count as of the last event (timings_per_token): the next event's count is
    # the difference, taken in O(1) per event
    predicted_so_far: int = 0
    # token times after the first come from the server's clock; `anchor_ms`: its predicted_ms
    # at the first token, whose arrival anchors the rest
    server_dated: bool = False
    anchor_ms: float = 0.0
    # how much earlier the first token came than its stamp, by a later token's arrival less
    # the server's time between the two (the stream thread read it late, waiting for a core):
    # token times stay on the stamp's footing while they stream, and move by this at its end
    late_anchor_ns: int = 0
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
    def n_streamed(self) -> int:
        """Tokens the events carried (an event whose count is unknown counts as one)."""
        return sum(k if k > 0 else 1 for k in self.event_ntokens)

    @property
    def ids_missing(self) -> int:
        """Generated tokens whose ids the stream never sent: a token ending inside a UTF-8
        character is sent with the token that completes it, by the last id only, and a
        character left unfinished at the end is not sent at all. A sampled EOS is counted by
        the server but never streamed, so it is not missing."""
        if self.endpoint == "chat":
            return 0  # chat streams carry no ids at all
        eos = 1 if self.stop_type == "eos" and self.timings is not None else 0
        return max(0, self.n_tokens - eos - len(self.token_ids))

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


# ------------------------------------------------------------------ failures


class ServerError(Exception):
    """Base of every failure talking to one llama-server."""

    kind = "error"

    def __init__(
        self, server: str, detail: str, *, partial: CompletionResult | None = None
    ) -> None:
        self.server = server
        self.detail = detail
        self.partial = partial
        super().__init__(f"{server}: {detail}")


class ServerUnreachable(ServerError):
    """Nothing listens there, or the host can't be resolved (connection refused, DNS)."""

    kind = "unreachable"


class ServerTimeout(ServerError):
    """Connect, headers or the next event took longer than the configured bound."""

    kind = "timeout"


class HTTPStatusError(ServerError):
    """The server answered with an HTTP error; `message` is the server's own text."""

    kind = "http"

    def __init__(
        self,
        server: str,
        status: int,
        message: str,
        error_type: str | None = None,
        *,
        partial: CompletionResult | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.error_type = error_type
        what = f"HTTP {status}"
        if error_type:
            what += f" ({error_type})"
        super().__init__(server, f"{what}: {message}", partial=partial)


class AuthenticationError(HTTPStatusError):
    """401: the API key is missing or wrong."""

    kind = "auth"


class ServerLoading(HTTPStatusError):
    """503 while the model is still loading: retry after /health says ok."""

    kind = "loading"


class MalformedEvent(ServerError):
    """An SSE event whose payload isn't the JSON llama-server sends."""

    kind = "malformed"


class StreamErrorEvent(ServerError):
    """The server sent `data: {"error": ...}` mid-stream (e.g. context overflow)."""

    kind = "stream-error"

    def __init__(
        self,
        server: str,
        message: str,
        error_type: str | None = None,
        code: int | None = None,
        *,
        partial: CompletionResult | None = None,
    ) -> None:
        self.message = message
        self.error_type = error_type
        self.code = code
        label = f" ({error_type})" if error_type else ""
        super().__init__(server, f"error event mid-stream{label}: {message}", partial=partial)


class StreamEndedEarly(ServerError):
    """The connection closed before the final event (server crashed or was killed)."""

    kind = "ended-early"
