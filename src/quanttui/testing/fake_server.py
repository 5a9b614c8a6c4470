"""A fake llama-server on loopback, for what a real one won't do on demand.

It speaks the b11434 wire formats (native `/completion` SSE without `[DONE]`, `/v1/completions`
and `/v1/chat/completions` with `[DONE]`, chunked transfer encoding, llama-server's error JSON)
as llama-server writes them: each SSE event in a chunk of its own, one write per event, with the
running `timings` in every event when the request asks for `timings_per_token`; and it injects
faults: refuse, slow headers, stall or drop mid-stream, hold a stream until the test says so,
malformed JSON, an `error` event, HTTP errors, 503 while loading, 401 without the API key; and
the hostile ones: a reply trickled a byte at a time, an oversized error body, a huge event, and
streams that never end (events, an event's data, a line, or data after the final event).
Claims about the real server's behaviour are tested against the real one; this is for failures
and for full-speed load.

Raw asyncio instead of an ASGI framework: faults such as a connection cut in the middle of a
chunked body need control of the socket.

    with FakeLlamaServer() as fake:         # runs its own loop in a thread
        fake.fault = Fault("drop", after=3)
        url = fake.url
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from quanttui.core.models.ports import free_port

__all__ = ["FakeLlamaServer", "Fault", "free_port", "running"]

FaultKind = Literal[
    "refuse",  # close the connection without answering
    "slow_headers",  # wait `delay` seconds before the status line
    "stall",  # stop sending after `after` tokens, keep the connection open
    "hold",  # pause after `after` tokens until `release` is set (`delay` at most), then go on
    "drop",  # cut the connection after `after` tokens (no final chunk)
    "malformed",  # send a non-JSON event after `after` tokens
    "error_event",  # send `data: {"error": ...}` after `after` tokens, then end
    "http_error",  # answer `status` with llama-server's error JSON
    "loading",  # 503 "Loading model" on every route, like a server still loading
    "trickle",  # answer normally, but one byte of the body every `delay` seconds
    "big_error",  # answer `status` with an error JSON body of `size` bytes
    "huge_event",  # after `after` tokens, one token event of `size` bytes
    "endless_tokens",  # token events past n_predict, without end
    "endless_event",  # after `after` tokens, `data:` lines without end and no blank line
    "endless_line",  # after `after` tokens, one line without end and no newline
    "after_final",  # after the final event, `size` bytes of data (-1: without end)
]


@dataclass
class Fault:
    kind: FaultKind
    after: int = 0
    delay: float = 30.0
    status: int = 500
    error_type: str = "server_error"
    message: str = "fake failure"
    times: int | None = None  # apply to this many requests, then stop (None: always)
    # Routes it hits; None: the completion routes for mid-stream faults, every route otherwise.
    paths: tuple[str, ...] | None = None
    # "hold": the test sets it once it has seen what the held stream shows. A request shorter
    # than `after` tokens (a warm-up's few) is not held.
    release: threading.Event = field(default_factory=threading.Event)
    size: int = 0  # bytes, for the faults that send too much
    # Set by the fake once a request has got to the fault, for a test that acts then.
    reached: threading.Event = field(default_factory=threading.Event)

    def applies(self, path: str) -> bool:
        if self.paths is not None:
            return path in self.paths
        if self.kind in MID_STREAM:
            return path in COMPLETION_PATHS
        return True


MID_STREAM = ("stall", "hold", "drop", "malformed", "error_event", "huge_event",
              "endless_tokens", "endless_event", "endless_line", "after_final")
COMPLETION_PATHS = ("/completion", "/completions", "/v1/completions", "/v1/chat/completions",
                    "/chat/completions")


VOCAB = [" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", "."]


@dataclass
class FakeLlamaServer:
    """Fake llama-server. `token_delay` is seconds between tokens, kept by the clock (0.001:
    1,000 tok/s; 0: as fast as the loop writes)."""

    host: str = "127.0.0.1"
    port: int = 0
    token_delay: float = 0.0
    prompt_delay: float = 0.0
    api_key: str | None = None
    model: str = "fake-model-Q4_K_M.gguf"
    model_path: str | None = None  # /props' model_path (default: /models/<model>)
    ftype: str = "Q4_K - Medium"
    n_ctx: int = 4096
    total_slots: int = 1
    # From this token on, the output follows another pattern: two fakes that differ only here
    # answer alike up to it and differently after it (None: never).
    diverge_at: int | None = None
    fault: Fault | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0  # TCP connections accepted so far
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    # ------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeLlamaServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-llama-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake llama-server did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            # handlers still sleeping (a trickle, a stall) end now, not destroyed pending
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in others:
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), 2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    @property
    def open_connections(self) -> int:
        return len(self._writers)

    def close_connections(self) -> None:
        """Close every open connection, as a server does to idle keep-alive connections."""
        loop = self._loop
        if loop is not None:
            for w in list(self._writers):
                loop.call_soon_threadsafe(w.transport.abort)

    def __enter__(self) -> FakeLlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take_fault(self, path: str) -> Fault | None:
        f = self.fault
        if f is None or not f.applies(path):
            return None
        if f.times is not None:
            f.times -= 1
            if f.times <= 0:
                self.fault = None
        return f

    # ------------------------------------------------------------- HTTP

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                           ) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        raw = await reader.readexactly(n) if n else b""
        body: dict[str, Any] = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                await self._error(writer, 400, "invalid_request_error", "Failed to parse JSON")
                return True
        path = path.split("?", 1)[0]
        self.requests.append({"method": method, "path": path, "headers": headers, "body": body})

        fault = self._take_fault(path)
        if fault is not None and fault.kind == "refuse":
            writer.transport.abort()
            return False
        if fault is not None and fault.kind == "loading" and path not in ("/",):
            await self._error(writer, 503, "unavailable_error", "Loading model")
            return True
        if fault is not None and fault.kind == "slow_headers":
            await asyncio.sleep(fault.delay)
        if self.api_key and path not in ("/health", "/v1/health"):
            auth = headers.get("authorization", "") or headers.get("x-api-key", "")
            if auth.removeprefix("Bearer ").strip() != self.api_key:
                await self._error(writer, 401, "authentication_error", "Invalid API Key")
                return True
        if fault is not None and fault.kind == "http_error":
            await self._error(writer, fault.status, fault.error_type, fault.message)
            return True
        if fault is not None and fault.kind == "big_error":
            fault.reached.set()
            head = b'{"error":{"code":%d,"type":"%s","message":"' % (
                fault.status, fault.error_type.encode())
            tail = b'"}}'
            await self._send_head(writer, fault.status, "application/json; charset=utf-8",
                                  fault.size)
            writer.write(head)
            await _write_filler(writer, fault.size - len(head) - len(tail))
            writer.write(tail)
            await writer.drain()
            return True
        if fault is not None and fault.kind == "trickle":
            fault.reached.set()
            return await self._trickle(writer, path, fault.delay)

        if method == "GET" and path in ("/health", "/v1/health"):
            await self._json(writer, {"status": "ok"})
        elif method == "GET" and path == "/props":
            await self._json(writer, self._props())
        elif method == "GET" and path in ("/v1/models", "/models"):
            await self._json(writer, self._models())
        elif method == "GET" and path == "/metrics":
            await self._error(writer, 501, "not_supported_error",
                              "This server does not support metrics endpoint. Start it with "
                              "`--metrics`")
        elif method == "POST" and path == "/tokenize":
            toks = _tokenize(str(body.get("content", "")))
            await self._json(writer, {"tokens": toks})
        elif method == "POST" and path == "/detokenize":
            text = "".join(VOCAB[t % len(VOCAB)] for t in body.get("tokens", []))
            await self._json(writer, {"content": text})
        elif method == "POST" and path == "/apply-template":
            msgs = body.get("messages", [])
            prompt = "".join(f"<{m['role']}>{m['content']}\n" for m in msgs) + "<assistant>"
            await self._json(writer, {"prompt": prompt})
        elif method == "POST" and path in COMPLETION_PATHS:
            return await self._complete(writer, path, body, fault)
        else:
            await self._error(writer, 404, "not_found_error", "File Not Found")
        return True

    async def _trickle(self, writer: asyncio.StreamWriter, path: str, delay: float) -> bool:
        """The route's JSON, one byte every `delay` seconds: every read returns data, and the
        whole takes hours."""
        if path in COMPLETION_PATHS:  # a stream whose first event never completes
            await self._send_head(writer, 200, "text/event-stream")
            data = b'data: {"index":0,"content":" the","tokens":[0],"stop":false}\n\n'
            for i in range(len(data)):
                writer.write(b"1\r\n%s\r\n" % data[i:i + 1])
                await writer.drain()
                await asyncio.sleep(delay)
            return False
        obj = (self._props() if path == "/props" else
               self._models() if path in ("/v1/models", "/models") else {"status": "ok"})
        data = json.dumps(obj).encode()
        await self._send_head(writer, 200, "application/json; charset=utf-8", len(data))
        for i in range(len(data)):
            writer.write(data[i:i + 1])
            await writer.drain()
            await asyncio.sleep(delay)
        return True

    async def _send_head(self, writer: asyncio.StreamWriter, status: int, ctype: str,
                         length: int | None = None) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                  500: "Internal Server Error", 501: "Not Implemented",
                  503: "Service Unavailable"}.get(status, "Error")
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nServer: llama.cpp\r\n"
        if length is None:
            head += "Transfer-Encoding: chunked\r\nX-Accel-Buffering: no\r\n"
        else:
            head += f"Content-Length: {length}\r\n"
        writer.write((head + "Keep-Alive: timeout=5, max=100\r\n\r\n").encode())

    async def _json(self, writer: asyncio.StreamWriter, obj: Any, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        await self._send_head(writer, status, "application/json; charset=utf-8", len(data))
        writer.write(data)
        await writer.drain()

    async def _error(self, writer: asyncio.StreamWriter, status: int, etype: str, msg: str
                     ) -> None:
        await self._json(writer, {"error": {"code": status, "message": msg, "type": etype}},
                         status)

    def _props(self) -> dict[str, Any]:
        return {
            "default_generation_settings": {"params": {"temperature": 0.8}, "n_ctx": self.n_ctx},
            "total_slots": self.total_slots,
            "model_alias": self.model,
            "model_ftype": self.ftype,
            "model_path": self.model_path or f"/models/{self.model}",
            "build_info": "b0-unknown",
            "is_sleeping": False,
        }

    def _models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{
                "id": self.model, "object": "model", "owned_by": "llamacpp", "created": 0,
                "meta": {"vocab_type": 2, "n_vocab": 262144, "n_ctx": self.n_ctx,
                         "n_ctx_train": 32768, "n_embd": 640, "n_params": 268098176,
                         "size": 253000000, "ftype": self.ftype},
            }],
        }

    # ------------------------------------------------------------- completions

    async def _complete(self, writer: asyncio.StreamWriter, path: str, body: dict[str, Any],
                        fault: Fault | None) -> bool:
        prompt = body.get("prompt", body.get("messages", ""))
        n_prompt = len(prompt) if isinstance(prompt, list) else len(_tokenize(str(prompt)))
        n_predict = int(body.get("n_predict", body.get("max_tokens", 16)))
        if n_predict < 0:
            n_predict = 16
        if "messages" not in body and "prompt" not in body:
            await self._error(writer, 400, "invalid_request_error", '"prompt" must be provided')
            return True
        if not body.get("stream"):
            text = "".join(VOCAB[i % len(VOCAB)] for i in range(n_predict))
            await self._json(writer, {"content": text, "stop": True, "stop_type": "limit"})
            return True
        fmt = "native" if path in ("/completion", "/completions") else (
            "chat" if "chat" in path else "oai")
        seed = len(json.dumps(prompt)) % len(VOCAB)  # same prompt, same output
        await self._send_head(writer, 200, "text/event-stream")
        t0 = time.perf_counter()
        if self.prompt_delay:
            await asyncio.sleep(self.prompt_delay)
        t_first = t_paced = time.perf_counter()
        per_token_timings = bool(body.get("timings_per_token"))
        chat_role_sent = False

        async def send(obj: Any) -> None:
            """One SSE event in one chunk in one write, as llama-server (cpp-httplib) does."""
            data = b"data: " + (obj if isinstance(obj, bytes) else
                                json.dumps(obj, separators=(",", ":")).encode()) + b"\n\n"
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            await writer.drain()

        async def end() -> None:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

        if fault is not None and fault.kind == "endless_tokens":
            fault.reached.set()
            n_predict = 1 << 62
        for i in range(n_predict):
            if fault is not None and i == fault.after and fault.kind == "hold":
                # Polled: the test sets it from another thread, and a thread blocked on it
                # would outlive a stopped server.
                until = time.perf_counter() + fault.delay
                while not fault.release.is_set() and time.perf_counter() < until:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                t_paced = time.perf_counter() - i * self.token_delay  # no burst to catch up
            elif fault is not None and i == fault.after and fault.kind in (
                    "huge_event", "endless_event", "endless_line"):
                fault.reached.set()
                if fault.kind == "huge_event":
                    head = b'data: {"index":0,"tokens":[1],"stop":false,"content":"'
                    tail = b'"}\n\n'
                    writer.write(b"%x\r\n%s" % (fault.size, head))
                    await _write_filler(writer, fault.size - len(head) - len(tail))
                    writer.write(tail + b"\r\n")
                    await writer.drain()
                    continue
                line = b'data: {"content":" more"}\n' if fault.kind == "endless_event" else b"x"
                filler = line * (65536 // len(line))
                while True:  # until the client hangs up
                    writer.write(b"%x\r\n%s\r\n" % (len(filler), filler))
                    await writer.drain()
            elif fault is not None and i == fault.after and fault.kind in (
                    "stall", "drop", "malformed", "error_event"):
                if fault.kind == "stall":
                    await asyncio.sleep(fault.delay)
                    writer.transport.abort()
                    return False
                if fault.kind == "drop":
                    writer.transport.abort()
                    return False
                if fault.kind == "malformed":
                    await send(b'{"content": " broken", "tokens": [1')
                    await end()
                    return True
                await send({"error": {"code": fault.status, "message": fault.message,
                                      "type": fault.error_type}})
                await end()
                return True
            if self.token_delay:
                # Paced by the clock, not by sleeps that add up: token i leaves at
                # t_first + i·token_delay (later after a hold), so 0.001 is 1,000 tok/s however
                # the loop oversleeps.
                wait = t_paced + i * self.token_delay - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            tok = (seed + i) % len(VOCAB)
            if self.diverge_at is not None and i >= self.diverge_at:
                tok = (seed + 3 * i + 1) % len(VOCAB)
            piece = VOCAB[tok]
            if fmt == "native":
                ev: dict[str, Any] = {"index": 0, "content": piece, "tokens": [tok],
                                      "stop": False, "id_slot": -1, "tokens_predicted": i + 1,
                                      "tokens_evaluated": n_prompt}
            elif fmt == "oai":
                ev = {"choices": [{"text": piece, "index": 0, "logprobs": None,
                                   "finish_reason": None}], "created": 0,
                      "model": self.model, "system_fingerprint": "b0-unknown",
                      "object": "text_completion", "id": "chatcmpl-fake"}
            else:
                delta: dict[str, Any] = {"content": piece}
                ev = {"choices": [{"finish_reason": None, "index": 0, "delta": delta}],
                      "created": 0, "id": "chatcmpl-fake", "model": self.model,
                      "system_fingerprint": "b0-unknown", "object": "chat.completion.chunk"}
                if not chat_role_sent:
                    await send({"choices": [{"finish_reason": None, "index": 0,
                                             "delta": {"role": "assistant", "content": None}}],
                                "created": 0, "id": "chatcmpl-fake", "model": self.model,
                                "object": "chat.completion.chunk"})
                    chat_role_sent = True
            if per_token_timings:  # llama-server then puts its running timings in every event
                ev["timings"] = _timings(n_prompt, i + 1, t0, t_first, time.perf_counter())
            await send(ev)
        t_end = time.perf_counter()
        timings = _timings(n_prompt, n_predict, t0, t_first, t_end)
        if fmt == "native":
            await send({"index": 0, "content": "", "tokens": [], "id_slot": 0, "stop": True,
                        "model": self.model, "tokens_predicted": n_predict,
                        "tokens_evaluated": n_prompt, "generation_settings": {},
                        "prompt": str(prompt), "has_new_line": False, "truncated": False,
                        "stop_type": "limit", "stopping_word": "", "tokens_cached": 0,
                        "timings": timings})
        else:
            usage = {"completion_tokens": n_predict, "prompt_tokens": n_prompt,
                     "total_tokens": n_predict + n_prompt,
                     "prompt_tokens_details": {"cached_tokens": 0}}
            last: dict[str, Any]
            if fmt == "oai":
                last = {"choices": [{"text": "", "index": 0, "logprobs": None,
                                     "finish_reason": "length"}], "object": "text_completion",
                        "usage": usage, "timings": timings}
            else:
                last = {"choices": [{"finish_reason": "length", "index": 0, "delta": {}}],
                        "object": "chat.completion.chunk", "timings": timings}
            await send(last)
            if fmt == "chat" and body.get("stream_options", {}).get("include_usage"):
                await send({"choices": [], "object": "chat.completion.chunk", "usage": usage,
                            "timings": timings})
            await send(b"[DONE]")
        if fault is not None and fault.kind == "after_final":
            fault.reached.set()
            junk = b'data: {"content":" after the end"}\n\n'
            left = fault.size if fault.size >= 0 else 1 << 62
            while left > 0:
                filler = junk * max(1, min(left, 65536) // len(junk))
                writer.write(b"%x\r\n%s\r\n" % (len(filler), filler))
                await writer.drain()
                left -= len(filler)
        await end()
        return True


async def _write_filler(writer: asyncio.StreamWriter, n: int) -> None:
    """`n` bytes of `x`, in pieces, without holding them all."""
    piece = b"x" * 65536
    while n > 0:
        writer.write(piece[:n])
        await writer.drain()
        n -= len(piece)


def _tokenize(text: str) -> list[int]:
    return [len(w) % len(VOCAB) for w in text.split()] or [0]


def _timings(n_prompt: int, n_pred: int, t0: float, t1: float, t2: float) -> dict[str, Any]:
    prompt_ms = (t1 - t0) * 1000 or 0.001
    pred_ms = (t2 - t1) * 1000 or 0.001
    return {
        "cache_n": 0, "prompt_n": n_prompt, "prompt_ms": prompt_ms,
        "prompt_per_token_ms": prompt_ms / max(n_prompt, 1),
        "prompt_per_second": n_prompt * 1000 / prompt_ms,
        "predicted_n": n_pred, "predicted_ms": pred_ms,
        "predicted_per_token_ms": pred_ms / max(n_pred - 1, 1),
        "predicted_per_second": max(n_pred - 1, 0) * 1000 / pred_ms,
    }


@contextlib.contextmanager
def running(**kw: Any) -> Iterator[FakeLlamaServer]:
    with FakeLlamaServer(**kw) as fake:
        yield fake


def main() -> None:
    """`python -m quanttui.testing.fake_server --port N`: for benchmarks in another process."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token-delay", type=float, default=0.0)
    args = ap.parse_args()
    fake = FakeLlamaServer(port=args.port, token_delay=args.token_delay).start()
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
