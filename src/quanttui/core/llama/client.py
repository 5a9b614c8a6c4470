"""Async client for one llama-server: streaming completions timed per event, and utility calls.

The native `/completion` stream (one token per event) is the timing path; `/v1/completions`
and `/v1/chat/completions` stream too. Each completion streams on a thread of its own
(`StreamJob`) with blocking `http.client` reads (`blocking_http`). The thread stamps each
network read with `time.perf_counter_ns()` as it returns: the first token's arrival (TTFT) is
that stamp. Later tokens are dated in one of two ways:

- by the server's clock (`paced`, the default, where the server sends its running `timings` in
  every event, as llama-server's `/completion` does with `timings_per_token`): the first token's
  arrival plus the server's `predicted_ms` since it. Where a later token arrives sooner after
  the first one's stamp than the server says it was made, the stream thread stamped the first
  one late (it waited for a core): the first token is then dated that much earlier, the others
  with it (`_dated`), so neither TTFT nor the decode rate carries the monitor's own wait. Over
  plain HTTP (not https, where no poll
  says what is waiting) the thread then reads a few times a second (`PACE_S`, once it has read
  all that is waiting) instead of waking once per token: a monitor that woke per token took ~1%
  of a core from the servers it measures. On loopback the two clocks agree to 0.05 ms over a
  1.4 s stream (`tests/test_real_client.py` checks within 2%);
- by arrival: every event in a read gets the read's stamp (other endpoints, servers that send
  no running timings, or `paced=False`), read as it comes.

The event loop collects what arrived a few times a second (`on_progress`), not per token. httpx
does every other call.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import math
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from quanttui.core.llama.blocking_http import STALE_ERRORS, ConnectionPool, RawChunkedBody
from quanttui.core.llama.params import GenerationParams
from quanttui.core.llama.protocol import (
    ErrorBody,
    Health,
    NativeEvent,
    OAIChunk,
    Timings,
    error_decoder,
    native_event_decoder,
    oai_chunk_decoder,
)
from quanttui.core.llama.result import (
    ENDPOINT_PATHS,
    AuthenticationError,
    CompletionResult,
    Endpoint,
    HTTPStatusError,
    MalformedEvent,
    ServerError,
    ServerLoading,
    ServerTimeout,
    ServerUnreachable,
    StreamEndedEarly,
    StreamErrorEvent,
)
from quanttui.core.llama.sse import SSEDecoder, SSETooLarge
from quanttui.core.llama.urls import url_problem
from quanttui.core.secrets import mask_url
from quanttui.core.threads import name_os_thread
from quanttui.core.tls import tls_verify

# Called a few times a second while events arrive, and once at the end: (result, first new
# event's index, index past the last). Events below the second index are complete in every list.
ProgressCallback = Callable[[CompletionResult, int, int], None]
PROGRESS_INTERVAL_S = 0.25  # the TUI draws at 2 Hz by default: 4 Hz keeps each frame fresh
# A paced stream thread reads twice per look of the loop, the second time this long before the
# look, so what it read is there when the loop looks. Twice: a request's end (an EOS no one can
# foresee) is seen 60 ms late on average, not 125; the servers wait that long for the next
# request. Each read costs what one per token did (~0.1 ms of CPU).
PACE_S = PROGRESS_INTERVAL_S / 2
READ_LEAD_S = 0.02
Prompt = str | Sequence[int]

_DONE = b"[DONE]"

# Bounds on what is read from a server, so that a broken or hostile one costs at most this much
# memory: an error body (llama-server's are a few hundred bytes; the rest is cut and the cut said),
# a non-streamed reply (/props with its chat template, /slots, /metrics, a non-streamed completion
# with probabilities: well under a MiB), and what may follow a stream's final event (nothing but
# the end of the chunked body). SSE lines and events are bounded in `sse`.
MAX_ERROR_BYTES = 1 << 20
MAX_REPLY_BYTES = 16 << 20
MAX_AFTER_FINAL_BYTES = 64 << 10
# Events a stream may send beyond its `n_predict` (a token per event at most, plus the role, final,
# usage and [DONE] events); past that the server is not stopping. Without an `n_predict`,
# `Sampling`'s largest.
EXTRA_EVENTS = 64
MAX_PREDICT = 32768


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. `connect` bounds the connection; `read` the wait for a stream's headers and for
    each next complete line of it (a stall, or a trickle of bytes that never makes one), and
    every other call whole (/health, /props, /metrics, ...: headers and body); `total` a stream
    whole."""

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
        paced: bool = True,
    ) -> None:
        """`paced`: date tokens by the server's clock where it sends running timings, and read
        a few times a second (see the module's docstring); False stamps every read."""
        self.url = url.rstrip("/")
        self.paced = paced
        problem = url_problem(self.url)
        if problem is not None:
            raise ValueError(f"not a server URL: {mask_url(url)!r}: {problem}")
        self.shown_url = mask_url(self.url)  # in every message and record: no password
        self.name = name or urlsplit(self.shown_url).netloc
        self.timeouts = timeouts or Timeouts()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers = headers
        t = self.timeouts
        self._pool = ConnectionPool(self.url, connect_timeout=t.connect, read_timeout=t.read)
        self._jobs: set[StreamJob] = set()
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect),
            transport=transport,
            verify=tls_verify(self.url),
            # One connection per in-flight request; keep a few for concurrency sweeps.
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        )

    @property
    def label(self) -> str:
        """How the server is named in every message: `name (url)`."""
        shown = self.shown_url
        return f"{self.name} ({shown})" if self.name != urlsplit(shown).netloc else shown

    async def __aenter__(self) -> LlamaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for job in list(self._jobs):
            job.abort()
        self._pool.close()
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
                # Each event then says how many tokens the server has generated so far: a token
                # that ends inside a UTF-8 character streams no event of its own, and its id is
                # never sent, so only this count says how many tokens an event carries.
                body["timings_per_token"] = True
        return body

    async def _stream(
        self, body: dict[str, Any], result: CompletionResult, on_progress: ProgressCallback | None
    ) -> None:
        loop = asyncio.get_running_loop()
        job = StreamJob(ENDPOINT_PATHS[result.endpoint], msgspec.json.encode(body), result, loop)
        n = body.get("n_predict", body.get("max_tokens"))
        job.n_predict = n if isinstance(n, int) and n > 0 else 0
        job.max_events = (job.n_predict or MAX_PREDICT) + EXTRA_EVENTS
        thread = threading.Thread(target=self._run_job, args=(job,), daemon=True,
                                  name=f"quanttui-stream {self.name}")
        self._jobs.add(job)
        thread.start()
        try:
            if on_progress is None:
                await asyncio.wait((job.done,))
            else:
                # The loop looks a few times a second instead of the thread waking it per read,
                # on one grid of the loop's clock: every stream's look falls in one wake-up.
                while not job.done.done():
                    wait = PROGRESS_INTERVAL_S - loop.time() % PROGRESS_INTERVAL_S
                    await asyncio.wait((job.done,), timeout=wait)
                    job.deliver(on_progress)
        except asyncio.CancelledError:
            job.abort()
            # The thread stops at once when its socket is shut; wait so the partial result is
            # final before the caller reads it.
            await asyncio.wait((job.done,), timeout=2.0)
            job.settle()
            raise
        finally:
            self._jobs.discard(job)
        if on_progress is not None:
            job.deliver(on_progress)  # on the footing of the batches before it
        job.settle()
        if job.error is not None:
            raise job.error

    def _run_job(self, job: StreamJob) -> None:
        """Thread body: the request, start to end; whatever it raises goes to the loop."""
        name_os_thread(f"qt-stream {self.name}")
        try:
            self._stream_blocking(job)
        except BaseException as e:  # handed to the awaiting coroutine
            job.error = e
        finally:
            job.finish()

    def _stream_blocking(self, job: StreamJob) -> None:
        result, pool = job.result, self._pool
        clock = time.perf_counter_ns
        headers = dict(self._headers)
        headers["Content-Type"] = "application/json"
        while True:
            try:
                conn, reused = pool.take()
            except TimeoutError as e:
                raise ServerTimeout(
                    self.label, f"no connection within {self.timeouts.connect:g} s") from e
            except OSError as e:
                raise ServerUnreachable(self.label, f"cannot connect ({e})") from e
            job.conn = conn
            if job.aborted:
                conn.close()
                return
            try:
                result.t_sent_ns = clock()
                conn.request("POST", pool.base_path + job.path, body=job.body, headers=headers)
                response = conn.getresponse()
                break
            except STALE_ERRORS as e:
                conn.close()
                if reused and not job.aborted:
                    continue  # a kept-alive connection the server had closed: nothing was lost
                raise self._socket_error(e, result, "before the response headers") from e
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise self._socket_error(e, result, "before the response headers") from e
        reusable = False
        try:
            result.t_headers_ns = clock()
            if response.status >= 400:
                try:
                    content = response.read(MAX_ERROR_BYTES + 1)
                except (OSError, http.client.HTTPException):
                    content = b""
                raise self._status_error(response.status, content)
            handle = self._native if result.endpoint == "completion" else self._oai
            decoder = SSEDecoder()
            finished = False
            n_events = 0
            sock = conn.sock
            body = (RawChunkedBody(response, sock)
                    if response.chunked and not pool.https and sock is not None else None)
            read = body.read if body is not None else _read1(response)
            # paced (module docstring): plain HTTP only, where a poll can say what is waiting
            paced = body if self.paced else None
            read_s = self.timeouts.read
            # Each next complete line (an event's, or a keep-alive comment) is due within `read`
            # seconds of the last (or of the headers): a server that trickles bytes which never
            # complete one is a stall too. Right after a line the wait is `read` whole, and
            # the socket keeps it: no system call per token to set it again.
            line_due = time.monotonic() + read_s
            n_lines = 0
            fresh = True  # a line has just completed (or the headers came)
            sock_timeout = -1.0
            while not finished:
                try:
                    if sock is not None:
                        want = read_s if fresh else max(line_due - time.monotonic(), 0.001)
                        if want != sock_timeout:
                            sock.settimeout(want)
                            sock_timeout = want
                    chunk = read()
                except (OSError, http.client.HTTPException) as e:
                    raise self._socket_error(e, result, "mid-stream") from e
                if chunk is None:
                    break
                if not chunk:  # framing only
                    fresh = False
                    continue
                now = clock()
                if result.t_first_event_ns is None:
                    result.t_first_event_ns = now
                try:
                    payloads = decoder.feed(chunk)
                except SSETooLarge as e:
                    raise MalformedEvent(self.label, f"stream not read on: {e}") from e
                fresh = decoder.n_lines != n_lines
                if fresh:
                    n_lines = decoder.n_lines
                    line_due = time.monotonic() + read_s
                for k, payload in enumerate(payloads):
                    # counted one by one: a read may bring the final event and more after it
                    n_events += 1
                    if n_events > job.max_events:
                        raise MalformedEvent(
                            self.label, f"the stream went on past {job.max_events} events "
                            f"({job.max_events - EXTRA_EVENTS} tokens were asked for)")
                    if handle(payload, result, now):
                        result.t_done_ns = _final_time(result, now)
                        finished = True
                        # read with it: more events, or the start of one
                        after = b"\n".join(payloads[k + 1:]).strip() or decoder.held()
                        if after:
                            raise self._after_the_final(after, result)
                        break
                job.n_ready = len(result.event_times_ns)
                if (paced is not None and not finished and result.server_dated
                        and not paced.waiting() and not job.near_the_end()):
                    job.pause()
            if not finished:
                for payload in decoder.flush():
                    now = clock()
                    if result.endpoint == "completion" and self._native(payload, result, now):
                        result.t_done_ns = _final_time(result, now)
                        job.n_ready = len(result.event_times_ns)
                        return
                raise StreamEndedEarly(
                    self.label,
                    f"stream ended before the final event after {len(result.event_times_ns)} "
                    "events (server stopped or crashed?)",
                )
            reusable = self._after_final(response, conn, result, read, body)
        finally:
            if reusable:
                pool.give_back(conn)
            else:
                conn.close()

    def _after_final(self, response: http.client.HTTPResponse, conn: http.client.HTTPConnection,
                     result: CompletionResult, read: Callable[[], bytes | None],
                     body: RawChunkedBody | None) -> bool:
        """After the final event: only the body's end may follow. Reads at most
        `MAX_AFTER_FINAL_BYTES` for at most a second; True when the connection can carry the
        next request. Data there (an event after the final one, or anything else) fails the
        request: the server is not speaking llama-server's protocol."""
        sock = conn.sock
        if sock is None:
            return False
        deadline = time.monotonic() + 1.0  # the end of the body follows the final event at once
        seen = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or seen > MAX_AFTER_FINAL_BYTES:
                return False  # no end in sight: the connection is not reused, nothing is read on
            try:
                sock.settimeout(left)
                piece = read()
            except (OSError, http.client.HTTPException):
                return False
            if piece is None:
                break
            seen += len(piece)
            if piece.strip():
                raise self._after_the_final(piece.strip(), result)
        sock.settimeout(self.timeouts.read)
        if body is not None and body.extra:
            return False  # bytes past the body's end: the connection is out of step
        return not response.will_close and response.isclosed() and conn.sock is not None

    def _native(self, payload: bytes, result: CompletionResult, now: int) -> bool:
        try:
            ev: NativeEvent = native_event_decoder.decode(payload)
        except msgspec.DecodeError as e:
            raise self._malformed(payload, e) from e
        if ev.error is not None:
            raise self._stream_error(ev.error)
        if ev.tokens or ev.content:
            result.event_times_ns.append(
                _token_time(result, ev.timings if self.paced else None, now))
            n = len(ev.tokens)
            if ev.timings is not None and not ev.stop:
                n = max(n, ev.timings.predicted_n - result.predicted_so_far)
                result.predicted_so_far = ev.timings.predicted_n
            result.event_ntokens.append(n)
            result.event_nids.append(len(ev.tokens))
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
            lp = choice.logprobs.content if choice.logprobs is not None else None
            if text:
                result.event_times_ns.append(now)
                result.event_ntokens.append(1)
                result.event_nids.append(len(lp) if lp else 0)
                result.event_texts.append(text)
            if lp:
                result.probs.extend(lp)
                result.token_ids.extend(p.id for p in lp)
            if choice.finish_reason is not None:
                result.finish_reason = choice.finish_reason
        if ev.timings is not None:
            result.timings = ev.timings
        if ev.usage is not None:
            result.usage = ev.usage
        return False

    # ----------------------------------------------------------------- errors

    def _after_the_final(self, data: bytes, result: CompletionResult) -> MalformedEvent:
        shown = data[:80].decode("utf-8", "replace")
        return MalformedEvent(self.label, f"data after the final event "
                              f"({len(result.event_times_ns)} events kept): {shown!r}")

    def _malformed(self, payload: bytes, e: Exception) -> MalformedEvent:
        shown = payload[:120].decode("utf-8", "replace")
        return MalformedEvent(self.label, f"malformed SSE event ({e}): {shown!r}")

    def _stream_error(self, body: ErrorBody) -> StreamErrorEvent:
        return StreamErrorEvent(self.label, body.message, body.type, body.code)

    def _status_error(self, status: int, content: bytes) -> HTTPStatusError:
        """`content`: the body as read, at most MAX_ERROR_BYTES + 1 (one more says it was cut)."""
        cut = len(content) > MAX_ERROR_BYTES
        message, etype = _error_text(content[:MAX_ERROR_BYTES])
        if cut:
            message = (f"{message} (the error body was longer than {MAX_ERROR_BYTES:,} bytes; "
                       "the rest was not read)")
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
        if isinstance(e, httpx.ConnectTimeout):
            return ServerTimeout(self.label, f"no connection within {self.timeouts.connect:g} s")
        if isinstance(e, httpx.ConnectError):
            return ServerUnreachable(self.label, f"cannot connect ({e or 'connection refused'})")
        if isinstance(e, httpx.TimeoutException):
            return self._read_timeout(result)
        if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return self._dropped(result, when, str(e) or type(e).__name__)
        return ServerError(self.label, f"{type(e).__name__} {when}: {e}")

    def _socket_error(self, e: BaseException, result: CompletionResult, when: str
                      ) -> ServerError:
        """The stream thread's failures (http.client and sockets), said as `_transport_error`."""
        if isinstance(e, TimeoutError):
            return self._read_timeout(result)
        if isinstance(e, (http.client.HTTPException, ConnectionError)):
            detail = str(e) or type(e).__name__
            if isinstance(e, http.client.IncompleteRead):
                detail = "the response body was cut short"
            return self._dropped(result, when, detail)
        return ServerError(self.label, f"{type(e).__name__} {when}: {e}")

    def _read_timeout(self, result: CompletionResult) -> ServerTimeout:
        if result.t_headers_ns is None:
            what = (f"no response headers within {self.timeouts.read:g} s "
                    "(server busy, all slots taken, or hung)")
        else:
            what = (f"stream stalled: no complete line for {self.timeouts.read:g} s after "
                    f"{len(result.event_times_ns)} events")
        return ServerTimeout(self.label, what)

    def _dropped(self, result: CompletionResult, when: str, detail: str) -> StreamEndedEarly:
        return StreamEndedEarly(
            self.label,
            f"connection dropped {when} after {len(result.event_times_ns)} events "
            f"(server stopped or crashed?): {detail}")

    # ----------------------------------------------------------------- utility calls

    async def _request(self, method: str, path: str, *, within: float | None = None,
                       **kw: Any) -> bytes:
        """The body of a whole call, bounded: done within `within` seconds (default: `read`),
        at most MAX_REPLY_BYTES of reply and MAX_ERROR_BYTES of an error."""
        limit = self.timeouts.read if within is None else within
        try:
            status, content = await asyncio.wait_for(self._fetch(method, path, **kw), limit)
        except asyncio.TimeoutError as e:
            raise ServerTimeout(self.label, f"{method} {path}: no complete answer within "
                                f"{limit:g} s (server busy or hung)") from e
        except httpx.HTTPError as e:
            dummy = CompletionResult(server=self.label, endpoint="completion", t_sent_ns=0)
            raise self._transport_error(e, dummy, f"on {method} {path}") from e
        if status >= 400:
            raise self._status_error(status, content)
        return content

    async def _fetch(self, method: str, path: str, **kw: Any) -> tuple[int, bytes]:
        async with self._http.stream(method, path, **kw) as response:
            status = response.status_code
            cap = MAX_ERROR_BYTES if status >= 400 else MAX_REPLY_BYTES
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > cap:  # one byte more than the cap says it was cut
                    break
        if status < 400 and len(body) > cap:
            raise MalformedEvent(self.label, f"{method} {path}: a reply of more than "
                                 f"{MAX_REPLY_BYTES:,} bytes, not read on")
        return status, bytes(body[:cap + 1])

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        content = await self._request(method, path, **kw)
        try:
            return msgspec.json.decode(content)
        except msgspec.DecodeError as e:
            raise MalformedEvent(self.label, f"{path} returned no JSON: {e}") from e

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        """A non-streaming POST (e.g. `/completion` with `stream: false` and `n_probs`): whole
        tokens' probabilities, which a stream drops for tokens ending mid-UTF-8."""
        return await self._json("POST", path, json=body)

    async def health(self, within: float | None = None) -> Health:
        """200 `{"status":"ok"}` when ready; raises ServerLoading (503) while loading."""
        content = await self._request("GET", "/health", within=within)
        try:
            return msgspec.json.decode(content, type=Health)
        except msgspec.DecodeError as e:
            shown = content[:80].decode("utf-8", "replace")
            raise MalformedEvent(self.label, f"/health returned {shown!r}") from e

    async def wait_ready(self, timeout: float = 60.0, interval: float = 0.2) -> None:
        """Poll /health until 200. Raises the last error if not ready within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                # no single check may outlast the deadline by much
                await self.health(within=min(self.timeouts.read,
                                             max(deadline - time.monotonic(), 1.0)))
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
        return (await self._request("GET", "/metrics")).decode("utf-8", "replace")

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


def _read1(response: http.client.HTTPResponse) -> Callable[[], bytes | None]:
    """A body read through http.client (https, or not chunked): the next bytes, None at the
    end."""
    return lambda: response.read1(65536) or None


def _token_time(result: CompletionResult, timings: Timings | None, now: int) -> int:
    """A token-bearing event's time: see the module's docstring. The first one's arrival
    anchors the server's clock; a later one is the anchor plus the server's `predicted_ms`
    since, never before the previous event's time nor after its own arrival (clocks that
    disagree, or a server's nonsense, never make time run backwards or into the future). An
    event without running timings ends the server's dating: from there on, arrivals."""
    times = result.event_times_ns
    if timings is None or not math.isfinite(timings.predicted_ms):
        if result.server_dated:
            settle_token_times(result)
        result.server_dated = False
        return now
    if not times:
        result.server_dated = True
        result.anchor_ms = timings.predicted_ms
        return now
    if not result.server_dated:
        return now
    return _dated(result, timings.predicted_ms, now)


def _dated(result: CompletionResult, predicted_ms: float, now: int) -> int:
    """The anchor plus the server's time since it, not before the last token's time, on the
    stamp's footing (`late_anchor_ns`, settled at the stream's end).

    Past `now` (the arrival of what carried it), the anchor was stamped late: a token cannot
    arrive before the server made it, so the first one came at most the server's time before
    this arrival, and the anchor moves there (never before the request was sent). Held at
    `now` instead, this token would shorten the stream's span and read its rate high."""
    times = result.event_times_ns
    t = max(times[0] + int((predicted_ms - result.anchor_ms) * 1e6), times[-1])
    over = t - result.late_anchor_ns - now
    if over > 0:
        room = times[0] - result.late_anchor_ns - result.t_sent_ns
        result.late_anchor_ns += min(over, max(room, 0))
        t = min(t, now + result.late_anchor_ns)  # no room left: held at its arrival
    return t


def _final_time(result: CompletionResult, now: int) -> int:
    """The final event's time: its arrival, or, where tokens are dated by the server, the time
    its timings give (the last token's, which a paced read may have reached late)."""
    t = result.timings
    if not result.server_dated or t is None or not result.event_times_ns:
        return now
    return _dated(result, t.predicted_ms, now) - result.late_anchor_ns


def settle_token_times(result: CompletionResult) -> None:
    """Move the server-dated token times by how late the anchor was found to be (`_dated`):
    once, where the server's dating ends (the stream's end, `StreamJob.settle`, or an event
    without timings). The
    first event of any kind, and the headers before it, came no later than the first token
    (http.client may have read the first events with the headers, which then wait in its
    buffer: their stamps are late too)."""
    late = result.late_anchor_ns
    if not late:
        return
    times = result.event_times_ns
    for i in range(len(times)):
        times[i] -= late
    if result.t_first_event_ns is not None:
        result.t_first_event_ns = min(result.t_first_event_ns, times[0])
    if result.t_headers_ns is not None and result.t_first_event_ns is not None:
        result.t_headers_ns = min(result.t_headers_ns, result.t_first_event_ns)
    result.late_anchor_ns = 0


def _error_text(content: bytes) -> tuple[str, str | None]:
    """llama-server's `{"error":{"message","type","code"}}`, or the raw body when it isn't."""
    try:
        env = error_decoder.decode(content)
        message = env.error.message
        if len(message) > 1000:  # it goes into every failed request's record
            message = message[:1000] + f"… ({len(message):,} characters)"
        return message, env.error.type
    except msgspec.DecodeError:
        return content[:200].decode("utf-8", "replace").strip(), None


class StreamJob:
    """One streamed request: its thread fills `result`; the event loop awaits `done`.

    Shared state is handed over one way: the thread appends to the result and then advances
    `n_ready`; the loop reads only events below `n_ready`.
    """

    def __init__(self, path: str, body: bytes, result: CompletionResult,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self.body = body
        self.result = result
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.conn: http.client.HTTPConnection | None = None
        self.aborted = False
        self.error: BaseException | None = None
        self.n_ready = 0
        self.n_delivered = 0
        self._woken = threading.Event()  # set by abort: a paused thread reads on at once
        self.n_predict = 0  # the limit asked for (0: none)
        self.max_events = MAX_PREDICT + EXTRA_EVENTS  # see LlamaClient._stream

    def deliver(self, on_progress: ProgressCallback) -> None:
        """On the loop: pass on the events that arrived since the last call."""
        n = self.n_ready
        if n > self.n_delivered:
            first, self.n_delivered = self.n_delivered, n
            on_progress(self.result, first, n)

    def settle(self) -> None:
        """On the loop, once the thread has ended and its last events were passed on: the
        token times as final (`settle_token_times`); the live batches before kept one footing."""
        if self.done.done() and self.result.server_dated:
            settle_token_times(self.result)

    def abort(self) -> None:
        """From the loop: stop the thread by shutting its socket (a blocked read returns)."""
        self.aborted = True
        self._woken.set()
        conn = self.conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def near_the_end(self) -> bool:
        """On the thread: the server's count is within a pause's worth of tokens of the limit
        asked for (at the server's rate so far; before a rate is known, any count is), so its
        end is read as it comes."""
        res = self.result
        times = res.event_times_ns
        span_s = (times[-1] - times[0]) / 1e9 if times else 0.0
        if span_s <= 0:
            return True  # no rate yet: read on until a second token gives one
        if self.n_predict <= 0:
            return False  # no limit asked for: nothing to foresee
        left = self.n_predict - res.predicted_so_far
        return left <= (res.predicted_so_far - 1) / span_s * PACE_S + 1

    def pause(self) -> None:
        """On the thread: wait until the next read on the pacing grid (`PACE_S`, on the loop's
        clock, `READ_LEAD_S` before the loop's looks in `LlamaClient._stream`), or an abort."""
        wait = PACE_S - (time.monotonic() + READ_LEAD_S) % PACE_S
        self._woken.wait(wait)

    def finish(self) -> None:
        """From the thread, last: wake the loop."""
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self.loop.call_soon_threadsafe(self._set_done)

    def _set_done(self) -> None:
        if not self.done.done():
            self.done.set_result(None)
