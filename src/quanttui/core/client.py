"""Async client for one llama-server: streaming completions timed per event, and utility calls.

The native `/completion` stream (one token per event) is the timing path; `/v1/completions`
and `/v1/chat/completions` stream too. Each network read is stamped once with
`time.perf_counter_ns()` as it leaves httpx, and every event in that read gets that stamp: it is
the closest the client gets to the socket without a thread of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from quanttui.core.errors import (
    AuthenticationError,
    HTTPStatusError,
    MalformedEvent,
    ServerError,
    ServerLoading,
    ServerTimeout,
    ServerUnreachable,
    StreamEndedEarly,
    StreamErrorEvent,
)
from quanttui.core.params import GenerationParams
from quanttui.core.protocol import (
    ErrorBody,
    Health,
    NativeEvent,
    OAIChunk,
    error_decoder,
    native_event_decoder,
    oai_chunk_decoder,
)
from quanttui.core.result import ENDPOINT_PATHS, CompletionResult, Endpoint
from quanttui.core.sse import SSEDecoder

# Called after each network read that added events; the int is the index of the first new event.
ProgressCallback = Callable[[CompletionResult, int], None]
Prompt = str | Sequence[int]

_DONE = b"[DONE]"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `read` bounds the wait for headers and for each next event (a stall)."""

    connect: float = 5.0
    read: float = 120.0
    total: float | None = 900.0


class LlamaClient:
    """One llama-server, addressed by base URL. Use as an async context manager."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        api_key: str | None = None,
        timeouts: Timeouts | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.name = name or parts.netloc
        self.timeouts = timeouts or Timeouts()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        t = self.timeouts
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect),
            transport=transport,
            # One connection per in-flight request; keep a few for concurrency sweeps.
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    @property
    def label(self) -> str:
        """How the server is named in every message: `name (url)`."""
        return f"{self.name} ({self.url})" if self.name != urlsplit(self.url).netloc else self.url

    async def __aenter__(self) -> LlamaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ----------------------------------------------------------------- streaming

    async def complete(
        self,
        prompt: Prompt,
        params: GenerationParams | None = None,
        *,
        endpoint: Endpoint = "completion",
        on_progress: ProgressCallback | None = None,
        extra: dict[str, Any] | None = None,
        result: CompletionResult | None = None,
    ) -> CompletionResult:
        """Stream one completion and return it, fully timed.

        Raises a `ServerError` subclass on any failure; its `partial` is the result so far
        (with `error` set), so the caller keeps every token that arrived. A caller that may
        cancel the request passes its own `result` to keep the partial on cancellation too.
        """
        params = params or GenerationParams()
        body = self._body(prompt, params, endpoint)
        if extra:
            body.update(extra)
        if result is None:
            result = self.new_result(endpoint)
        try:
            if self.timeouts.total is None:
                await self._stream(body, result, on_progress)
            else:
                await asyncio.wait_for(
                    self._stream(body, result, on_progress), timeout=self.timeouts.total
                )
        except ServerError as e:
            e.partial = result
            result.error = e
            raise
        except asyncio.TimeoutError as e:
            err = ServerTimeout(
                self.label,
                f"request took longer than {self.timeouts.total:g} s in total "
                f"({len(result.event_times_ns)} events received)",
                partial=result,
            )
            result.error = err
            raise err from e
        return result

    def new_result(self, endpoint: Endpoint = "completion") -> CompletionResult:
        return CompletionResult(server=self.label, endpoint=endpoint, t_sent_ns=0)

    def _body(self, prompt: Prompt, params: GenerationParams, endpoint: Endpoint) -> dict[str, Any]:
        body = params.body()
        body["stream"] = True
        if endpoint == "chat":
            if not isinstance(prompt, str):
                raise ValueError("the chat endpoint takes a text prompt, not token ids")
            body["messages"] = [{"role": "user", "content": prompt}]
            body["stream_options"] = {"include_usage": True}
            if params.n_probs:
                body["logprobs"] = True
                body["top_logprobs"] = params.n_probs
        else:
            body["prompt"] = prompt if isinstance(prompt, str) else list(prompt)
            if endpoint == "completion":
                body["return_tokens"] = True
        return body

    async def _stream(
        self, body: dict[str, Any], result: CompletionResult, on_progress: ProgressCallback | None
    ) -> None:
        path = ENDPOINT_PATHS[result.endpoint]
        native = result.endpoint == "completion"
        request = self._http.build_request("POST", path, content=msgspec.json.encode(body),
                                           headers={"Content-Type": "application/json"})
        clock = time.perf_counter_ns
        result.t_sent_ns = clock()
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as e:
            raise self._transport_error(e, result, "before the response headers") from e
        try:
            result.t_headers_ns = clock()
            if response.status_code >= 400:
                await response.aread()
                raise self._status_error(response.status_code, response.content)
            decoder = SSEDecoder()
            finished = False
            chunks = response.aiter_raw()
            while True:
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except httpx.HTTPError as e:
                    raise self._transport_error(e, result, "mid-stream") from e
                now = clock()
                if result.t_first_event_ns is None:
                    result.t_first_event_ns = now
                first_new = len(result.event_times_ns)
                for payload in decoder.feed(chunk):
                    if native:
                        finished = self._native(payload, result, now)
                    else:
                        finished = self._oai(payload, result, now)
                    if finished:
                        break
                if on_progress is not None and len(result.event_times_ns) > first_new:
                    on_progress(result, first_new)
                if finished:
                    result.t_done_ns = now
                    break
            if not finished:
                for payload in decoder.flush():
                    now = clock()
                    if native and self._native(payload, result, now):
                        result.t_done_ns = now
                        return
                raise StreamEndedEarly(
                    self.label,
                    f"stream ended before the final event after {len(result.event_times_ns)} "
                    "events (server stopped or crashed?)",
                )
        finally:
            await response.aclose()

    def _native(self, payload: bytes, result: CompletionResult, now: int) -> bool:
        try:
            ev: NativeEvent = native_event_decoder.decode(payload)
        except msgspec.DecodeError as e:
            raise self._malformed(payload, e) from e
        if ev.error is not None:
            raise self._stream_error(ev.error)
        if ev.tokens or ev.content:
            result.event_times_ns.append(now)
            result.event_ntokens.append(len(ev.tokens))
            result.event_texts.append(ev.content)
            result.token_ids.extend(ev.tokens)
            if ev.completion_probabilities:
                result.probs.extend(ev.completion_probabilities)
        if ev.stop:
            result.timings = ev.timings
            result.stop_type = ev.stop_type
            result.stopping_word = ev.stopping_word or None
            result.truncated = ev.truncated
            return True
        return False

    def _oai(self, payload: bytes, result: CompletionResult, now: int) -> bool:
        if payload == _DONE:
            return True
        try:
            ev: OAIChunk = oai_chunk_decoder.decode(payload)
        except msgspec.DecodeError as e:
            raise self._malformed(payload, e) from e
        if ev.error is not None:
            raise self._stream_error(ev.error)
        for choice in ev.choices:
            text = choice.text
            if choice.delta is not None:
                text = (choice.delta.content or "") + (choice.delta.reasoning_content or "")
            if text:
                result.event_times_ns.append(now)
                result.event_ntokens.append(1)
                result.event_texts.append(text)
            if choice.logprobs is not None and choice.logprobs.content:
                result.probs.extend(choice.logprobs.content)
                result.token_ids.extend(p.id for p in choice.logprobs.content)
            if choice.finish_reason is not None:
                result.finish_reason = choice.finish_reason
        if ev.timings is not None:
            result.timings = ev.timings
        if ev.usage is not None:
            result.usage = ev.usage
        return False

    # ----------------------------------------------------------------- errors

    def _malformed(self, payload: bytes, e: Exception) -> MalformedEvent:
        shown = payload[:120].decode("utf-8", "replace")
        return MalformedEvent(self.label, f"malformed SSE event ({e}): {shown!r}")

    def _stream_error(self, body: ErrorBody) -> StreamErrorEvent:
        return StreamErrorEvent(self.label, body.message, body.type, body.code)

    def _status_error(self, status: int, content: bytes) -> HTTPStatusError:
        message, etype = _error_text(content)
        cls: type[HTTPStatusError] = HTTPStatusError
        if status == 401:
            cls = AuthenticationError
            if not message:
                message = "missing or wrong API key"
        elif status == 503 and "loading" in message.lower():
            cls = ServerLoading
        return cls(self.label, status, message or "(no message)", etype)

    def _transport_error(self, e: httpx.HTTPError, result: CompletionResult, when: str
                         ) -> ServerError:
        n = len(result.event_times_ns)
        if isinstance(e, httpx.ConnectTimeout):
            return ServerTimeout(self.label, f"no connection within {self.timeouts.connect:g} s")
        if isinstance(e, httpx.ConnectError):
            return ServerUnreachable(self.label, f"cannot connect ({e or 'connection refused'})")
        if isinstance(e, httpx.TimeoutException):
            if result.t_headers_ns is None:
                what = (f"no response headers within {self.timeouts.read:g} s "
                        "(server busy, all slots taken, or hung)")
            else:
                what = f"stream stalled: nothing for {self.timeouts.read:g} s after {n} events"
            return ServerTimeout(self.label, what)
        if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return StreamEndedEarly(
                self.label,
                f"connection dropped {when} after {n} events "
                f"(server stopped or crashed?): {e or type(e).__name__}",
            )
        return ServerError(self.label, f"{type(e).__name__} {when}: {e}")

    # ----------------------------------------------------------------- utility calls

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kw)
        except httpx.HTTPError as e:
            dummy = CompletionResult(server=self.label, endpoint="completion", t_sent_ns=0)
            raise self._transport_error(e, dummy, f"on {method} {path}") from e
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content)
        return response

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = await self._request(method, path, **kw)
        try:
            return msgspec.json.decode(response.content)
        except msgspec.DecodeError as e:
            raise MalformedEvent(self.label, f"{path} returned no JSON: {e}") from e

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        """A non-streaming POST (e.g. `/completion` with `stream: false` and `n_probs`): whole
        tokens' probabilities, which a stream drops for tokens ending mid-UTF-8."""
        return await self._json("POST", path, json=body)

    async def health(self) -> Health:
        """200 `{"status":"ok"}` when ready; raises ServerLoading (503) while loading."""
        response = await self._request("GET", "/health")
        try:
            return msgspec.json.decode(response.content, type=Health)
        except msgspec.DecodeError as e:
            raise MalformedEvent(self.label, f"/health returned {response.text[:80]!r}") from e

    async def wait_ready(self, timeout: float = 60.0, interval: float = 0.2) -> None:
        """Poll /health until 200. Raises the last error if not ready within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.health()
                return
            except (ServerLoading, ServerUnreachable, StreamEndedEarly, ServerTimeout) as e:
                if time.monotonic() >= deadline:
                    raise ServerTimeout(
                        self.label, f"not ready after {timeout:g} s (last: {e.detail})"
                    ) from e
            await asyncio.sleep(interval)

    async def props(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._json("GET", "/props")
        return data

    async def models(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._json("GET", "/v1/models")
        return data

    async def metrics(self) -> str:
        """Prometheus text (server started with --metrics). Each scrape resets its rate gauges."""
        return (await self._request("GET", "/metrics")).text

    async def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        """Token ids as /completion sees them (add_special adds BOS when the model does)."""
        data = await self._json(
            "POST", "/tokenize", json={"content": text, "add_special": add_special}
        )
        return [int(t) for t in data["tokens"]]

    async def detokenize(self, tokens: Sequence[int]) -> str:
        data = await self._json("POST", "/detokenize", json={"tokens": list(tokens)})
        return str(data["content"])

    async def apply_template(self, messages: Sequence[dict[str, str]]) -> str:
        data = await self._json("POST", "/apply-template", json={"messages": list(messages)})
        return str(data["prompt"])


def _error_text(content: bytes) -> tuple[str, str | None]:
    """llama-server's `{"error":{"message","type","code"}}`, or the raw body when it isn't."""
    try:
        env = error_decoder.decode(content)
        return env.error.message, env.error.type
    except msgspec.DecodeError:
        return content[:200].decode("utf-8", "replace").strip(), None
