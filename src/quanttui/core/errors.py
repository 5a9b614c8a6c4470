"""Typed failures of talking to a llama-server.

Every message names the server (its display name and URL) and says what happened, so a user
reading a toast or a log line knows which of the two servers to look at. A streaming failure
carries what was received before it (`partial`), so nothing measured is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quanttui.core.result import CompletionResult


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
