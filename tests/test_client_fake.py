"""The streaming client against the fake server: every fault gives a clear typed error, keeps
what arrived before it, and never hangs."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from quanttui.core.llama.client import LlamaClient, Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.llama.result import (
    AuthenticationError,
    HTTPStatusError,
    MalformedEvent,
    ServerLoading,
    ServerTimeout,
    ServerUnreachable,
    StreamEndedEarly,
    StreamErrorEvent,
)
from quanttui.core.models.ports import free_port
from quanttui.testing.fake_server import FakeLlamaServer, Fault

P10 = GenerationParams(n_predict=10)
FAST = Timeouts(connect=1.0, read=0.5, total=5.0)


@pytest.mark.parametrize("endpoint", ["completion", "v1-completions", "chat"])
async def test_streams_all_endpoints(fake: FakeLlamaServer, endpoint: str) -> None:
    async with LlamaClient(fake.url, name="A") as c:
        r = await c.complete("hello there", P10, endpoint=endpoint)  # type: ignore[arg-type]
    assert r.ok and r.error is None
    assert r.n_events == 10
    assert r.n_tokens == 10
    assert r.timings is not None and r.timings.predicted_n == 10
    assert r.stop_reason in ("limit", "length")
    # timestamps: sent <= headers <= first event <= tokens (monotonic) <= done
    assert r.t_headers_ns is not None and r.t_first_event_ns is not None
    assert r.t_sent_ns <= r.t_headers_ns <= r.t_first_event_ns <= r.event_times_ns[0]
    assert r.event_times_ns == sorted(r.event_times_ns)
    assert r.t_done_ns is not None and r.t_done_ns >= r.event_times_ns[-1]
    if endpoint == "completion":
        assert len(r.token_ids) == 10
    sent = fake.requests[-1]["body"]
    assert sent["temperature"] == 0.0 and sent["samplers"] == ["temperature"]
    assert sent["cache_prompt"] is False and sent["stream"] is True


async def test_sampling_fields_sent_explicitly(fake: FakeLlamaServer) -> None:
    async with LlamaClient(fake.url) as c:
        await c.complete("x", GenerationParams(n_predict=2, temperature=0.7, seed=7))
    body = fake.requests[-1]["body"]
    for key in ("top_k", "top_p", "min_p", "repeat_penalty", "presence_penalty", "seed",
                "dry_multiplier", "typical_p"):
        assert key in body
    assert "samplers" not in body  # non-greedy keeps the server's chain
    assert body["seed"] == 7


async def test_progress_callback_sees_every_event(fake: FakeLlamaServer) -> None:
    fake.token_delay = 0.002
    seen: list[int] = []
    async with LlamaClient(fake.url) as c:
        r = await c.complete("x", P10, on_progress=lambda res, i, end: seen.extend(
            range(i, end)))
    assert seen == list(range(10)) and r.n_events == 10


async def test_progress_arrives_while_streaming(fake: FakeLlamaServer) -> None:
    """The loop hears of new events a few times a second, not only at the end."""
    fake.token_delay = 0.05
    calls: list[tuple[int, int, bool]] = []
    async with LlamaClient(fake.url) as c:
        r = await c.complete("x", GenerationParams(n_predict=20), on_progress=lambda res, i, end:
                             calls.append((i, end, res.done)))
    assert len(calls) >= 2 and not calls[0][2]  # the first came before the stream ended
    assert [i for i, _, _ in calls] == [0] + [end for _, end, _ in calls[:-1]]  # no gap, no overlap
    assert calls[-1][1] == r.n_events == 20


async def test_keep_alive_connection_is_reused(fake: FakeLlamaServer) -> None:
    async with LlamaClient(fake.url) as c:
        for _ in range(3):
            r = await c.complete("x", P10)
            assert r.n_events == 10 and r.done
    assert fake.connections == 1


async def test_stale_keep_alive_connection_is_retried(fake: FakeLlamaServer) -> None:
    """A server that closed the idle connection costs a reconnect, not the request."""
    async with LlamaClient(fake.url) as c:
        await c.complete("x", P10)
        fake.close_connections()
        await asyncio.sleep(0.1)
        r = await c.complete("x", P10)
    assert r.n_events == 10 and r.done and fake.connections == 2


async def test_cancel_closes_the_stream_at_once(fake: FakeLlamaServer) -> None:
    """Cancelling (the user's stop) shuts the socket: the server sees the client go and the
    partial result stays as it was when cancelled."""
    fake.token_delay = 0.05
    result = None
    async with LlamaClient(fake.url) as c:
        result = c.new_result()
        task = asyncio.create_task(c.complete("x", GenerationParams(n_predict=400),
                                              result=result))
        await asyncio.sleep(0.4)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 5.0  # the rest of the stream would take ~20 s
        n = result.n_events
        assert 0 < n < 400 and not result.done
        for _ in range(50):
            if fake.open_connections == 0:
                break
            await asyncio.sleep(0.02)
        assert fake.open_connections == 0
        await asyncio.sleep(0.2)
        assert result.n_events == n  # the thread stopped writing into it


async def test_connection_refused_names_server() -> None:
    port = free_port()
    async with LlamaClient(f"http://127.0.0.1:{port}", name="Q8", timeouts=FAST) as c:
        with pytest.raises(ServerUnreachable) as ei:
            await c.complete("x", P10)
    msg = str(ei.value)
    assert "Q8" in msg and str(port) in msg and "connect" in msg
    assert ei.value.partial is not None and ei.value.partial.n_events == 0


async def test_refuse_mid_request(fake: FakeLlamaServer) -> None:
    fake.fault = Fault("refuse")
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        with pytest.raises(StreamEndedEarly, match="before the response headers"):
            await c.complete("x", P10)


async def test_slow_headers_times_out(fake: FakeLlamaServer) -> None:
    fake.fault = Fault("slow_headers", delay=3)
    t0 = time.monotonic()
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        with pytest.raises(ServerTimeout, match=r"no response headers within 0\.5 s"):
            await c.complete("x", P10)
    assert time.monotonic() - t0 < 2.5


async def test_stall_mid_stream_keeps_partial(fake: FakeLlamaServer) -> None:
    fake.fault = Fault("stall", after=4, delay=5)
    async with LlamaClient(fake.url, name="B", timeouts=FAST) as c:
        with pytest.raises(ServerTimeout, match="stalled") as ei:
            await c.complete("x", P10)
    partial = ei.value.partial
    assert partial is not None and partial.n_events == 4 and not partial.done
    assert partial.error is ei.value
    assert "B" in str(ei.value) and "after 4 events" in str(ei.value)


async def test_total_timeout_bounds_a_slow_stream(fake: FakeLlamaServer) -> None:
    fake.token_delay = 0.1
    async with LlamaClient(fake.url, timeouts=Timeouts(1, 1, total=0.5)) as c:
        with pytest.raises(ServerTimeout, match="in total") as ei:
            await c.complete("x", GenerationParams(n_predict=50))
    assert ei.value.partial is not None and 1 <= ei.value.partial.n_events < 50


@pytest.mark.parametrize("endpoint", ["completion", "chat"])
async def test_drop_mid_stream(fake: FakeLlamaServer, endpoint: str) -> None:
    fake.fault = Fault("drop", after=3)
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        with pytest.raises(StreamEndedEarly, match="mid-stream after 3 events") as ei:
            await c.complete("x", P10, endpoint=endpoint)  # type: ignore[arg-type]
    assert ei.value.partial is not None and ei.value.partial.n_events == 3
    assert ei.value.partial.text


async def test_malformed_event(fake: FakeLlamaServer) -> None:
    fake.fault = Fault("malformed", after=2)
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        with pytest.raises(MalformedEvent, match="malformed SSE event") as ei:
            await c.complete("x", P10)
    assert "broken" in str(ei.value)  # shows the offending payload
    assert ei.value.partial is not None and ei.value.partial.n_events == 2


async def test_error_event_mid_stream(fake: FakeLlamaServer) -> None:
    fake.fault = Fault("error_event", after=5, message="Context size has been exceeded.")
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        with pytest.raises(StreamErrorEvent, match="Context size has been exceeded") as ei:
            await c.complete("x", P10)
    assert ei.value.error_type == "server_error"
    assert ei.value.partial is not None and ei.value.partial.n_events == 5


@pytest.mark.parametrize(("status", "etype", "message"), [
    (400, "exceed_context_size_error",
     "request (9000 tokens) exceeds the available context size (2048 tokens)"),
    (404, "not_found_error", "File Not Found"),
    (500, "server_error", "decode failed"),
])
async def test_http_errors_carry_server_message(fake: FakeLlamaServer, status: int, etype: str,
                                                message: str) -> None:
    fake.fault = Fault("http_error", status=status, error_type=etype, message=message)
    async with LlamaClient(fake.url, name="A", timeouts=FAST) as c:
        with pytest.raises(HTTPStatusError) as ei:
            await c.complete("x", P10)
    e = ei.value
    assert e.status == status and e.error_type == etype and e.message == message
    assert f"HTTP {status}" in str(e) and message in str(e) and "A" in str(e)


async def test_loading_503(fake: FakeLlamaServer) -> None:
    fake.fault = Fault("loading", times=3)
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        with pytest.raises(ServerLoading, match="Loading model"):
            await c.complete("x", P10)
        with pytest.raises(ServerLoading):
            await c.health()
        await c.wait_ready(timeout=5, interval=0.01)  # third 503, then ok
        assert (await c.health()).status == "ok"


async def test_api_key() -> None:
    with FakeLlamaServer(api_key="sekrit") as fake:
        async with LlamaClient(fake.url, timeouts=FAST) as c:
            with pytest.raises(AuthenticationError, match="Invalid API Key"):
                await c.complete("x", P10)
            with pytest.raises(AuthenticationError):
                await c.props()
            assert (await c.health()).status == "ok"  # /health is exempt, like llama-server
        async with LlamaClient(fake.url, api_key="sekrit", timeouts=FAST) as c:
            r = await c.complete("x", P10)
            assert r.ok
        assert fake.requests[-1]["headers"]["authorization"] == "Bearer sekrit"


async def test_utility_endpoints(fake: FakeLlamaServer) -> None:
    async with LlamaClient(fake.url) as c:
        props = await c.props()
        assert props["model_ftype"] == "Q4_K - Medium"
        models = await c.models()
        assert models["data"][0]["meta"]["n_params"] > 0
        assert await c.tokenize("a bb ccc") == [1, 2, 3]
        assert (await c.apply_template([{"role": "user", "content": "hi"}])).endswith(
            "<assistant>")
        with pytest.raises(HTTPStatusError, match="501"):
            await c.metrics()


async def test_no_hang_when_server_vanishes(fake: FakeLlamaServer) -> None:
    fake.token_delay = 0.05
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        task = asyncio.create_task(c.complete("x", GenerationParams(n_predict=200)))
        await asyncio.sleep(0.3)
        fake.stop()
        with pytest.raises(StreamEndedEarly) as ei:
            await asyncio.wait_for(task, 5)
    assert ei.value.partial is not None and ei.value.partial.n_events > 0


def test_bad_url_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"not a server URL.*expected an http:// or https:// URL"):
        LlamaClient("localhost:8080")


def _raw_chunks(url: str, body: dict[str, object]) -> list[bytes]:
    """The chunks of one streamed response, as they were framed on the wire."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        raw = b""
        while not raw.endswith(b"\r\n0\r\n\r\n"):
            got = s.recv(65536)
            assert got, "connection closed before the last chunk"
            raw += got
    rest = raw.partition(b"\r\n\r\n")[2]
    chunks = []
    while True:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            return chunks
        chunks.append(rest[:n])
        rest = rest[n + 2:]


def test_fake_writes_one_event_per_chunk_like_llama_server(fake: FakeLlamaServer) -> None:
    """As llama-server (cpp-httplib) does: each SSE event is a chunk of its own, and with
    `timings_per_token` every event carries the running timings."""
    chunks = _raw_chunks(fake.url, {"prompt": "x", "n_predict": 5, "stream": True,
                                    "timings_per_token": True})
    assert len(chunks) == 6
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") and c.count(b"data: ") == 1
               for c in chunks)
    events = [json.loads(c[6:]) for c in chunks]
    assert [e["timings"]["predicted_n"] for e in events] == [1, 2, 3, 4, 5, 5]
    assert [e["stop"] for e in events] == [False] * 5 + [True]
    plain = [json.loads(c[6:]) for c in _raw_chunks(fake.url, {"prompt": "x", "n_predict": 3,
                                                               "stream": True})]
    assert ["timings" in e for e in plain] == [False, False, False, True]


async def test_fake_paces_tokens_by_the_clock(fake: FakeLlamaServer) -> None:
    """token_delay 0.01 is 100 tok/s: token i leaves at first + i·0.01 s, oversleeps or not."""
    fake.token_delay = 0.01
    async with LlamaClient(fake.url) as c:
        r = await c.complete("x", GenerationParams(n_predict=30))
    span = (r.event_times_ns[-1] - r.event_times_ns[0]) / 1e9
    assert 0.285 <= span < 1.0


# ----------------------------------------------------------------------------- bounded reads


async def test_trickled_utility_reply_is_bounded_whole(fake: FakeLlamaServer) -> None:
    """A byte every 0.2 s never lets a per-read timeout fire; the whole call is bounded."""
    fake.fault = Fault("trickle", delay=0.2, paths=("/props", "/health"))
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        for call in (c.props, c.health):
            t0 = time.monotonic()
            with pytest.raises(ServerTimeout, match=r"no complete answer within 0\.5 s"):
                await call()
            assert time.monotonic() - t0 < 2


async def test_trickled_event_is_a_stall(fake: FakeLlamaServer) -> None:
    """Bytes that never complete a line: the next line is due within `read` all the same."""
    fake.fault = Fault("trickle", delay=0.1)
    async with LlamaClient(fake.url, timeouts=FAST) as c:
        t0 = time.monotonic()
        with pytest.raises(ServerTimeout, match=r"stream stalled: no complete line for 0\.5 s"):
            await c.complete("x", P10)
    assert time.monotonic() - t0 < 2


async def test_oversized_error_body_is_cut(fake: FakeLlamaServer) -> None:
    fake.fault = Fault("big_error", status=400, size=64 << 20)
    async with LlamaClient(fake.url) as c:
        for call in (lambda: c.complete("x", P10), c.props):
            with pytest.raises(HTTPStatusError, match="longer than 1,048,576 bytes") as e:
                await call()
            assert e.value.status == 400 and len(e.value.message) < 2000


@pytest.mark.parametrize("kind", ["endless_event", "endless_line", "huge_event"])
async def test_oversized_stream_is_malformed(fake: FakeLlamaServer, kind: str) -> None:
    fake.fault = Fault(kind, after=2, size=64 << 20)  # type: ignore[arg-type]
    async with LlamaClient(fake.url) as c:
        t0 = time.monotonic()
        with pytest.raises(MalformedEvent, match="stream not read on") as e:
            await c.complete("x", P10)
    assert time.monotonic() - t0 < 10
    assert e.value.partial is not None and e.value.partial.n_events == 2  # what came before


async def test_endless_tokens_end_past_n_predict(fake: FakeLlamaServer) -> None:
    fake.fault = Fault("endless_tokens")
    async with LlamaClient(fake.url) as c:
        with pytest.raises(MalformedEvent, match="went on past 74 events"):
            await c.complete("x", P10)


@pytest.mark.parametrize("size", [100, -1])
async def test_data_after_the_final_event_fails_the_request(fake: FakeLlamaServer,
                                                            size: int) -> None:
    fake.fault = Fault("after_final", size=size)
    async with LlamaClient(fake.url) as c:
        with pytest.raises(MalformedEvent, match="data after the final event") as e:
            await c.complete("x", P10)
    assert e.value.partial is not None and e.value.partial.n_events == 10


@pytest.mark.parametrize("junk_events", [1, 200])
async def test_the_final_event_and_more_in_one_read(junk_events: int) -> None:
    """The final event and events after it in one network read (one write from the server):
    data after the final event, whether or not they also pass the event cap (they used to
    trip the cap first, or to be dropped unseen)."""
    def event(obj: dict[str, object]) -> bytes:
        data = b"data: " + json.dumps(obj).encode() + b"\n\n"
        return b"%x\r\n%s\r\n" % (len(data), data)

    body = b"".join(event({"content": " a", "tokens": [1], "stop": False}) for _ in range(2))
    body += event({"content": "", "tokens": [], "stop": True, "stop_type": "limit"})
    body += event({"content": " after the end", "tokens": [2], "stop": False}) * junk_events
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(head + body + b"0\r\n\r\n")  # one write
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with LlamaClient(f"http://127.0.0.1:{port}", timeouts=FAST) as c:
            with pytest.raises(MalformedEvent, match="data after the final event") as e:
                await c.complete("x", GenerationParams(n_predict=2))
        assert e.value.partial is not None and e.value.partial.n_events == 2
    finally:
        server.close()
        await server.wait_closed()


def test_token_times_follow_the_servers_clock_within_bounds() -> None:
    """The first token's arrival anchors the server's clock; later tokens are the anchor plus
    the server's `predicted_ms` since, never before the previous token; an event without
    running timings ends the server's dating for the stream."""
    from quanttui.core.llama.client import _final_time, _token_time, settle_token_times
    from quanttui.core.llama.protocol import Timings
    from quanttui.core.llama.result import CompletionResult

    def tm(ms: float) -> Timings:
        return Timings(predicted_ms=ms)

    r = CompletionResult(server="s", endpoint="completion", t_sent_ns=0)
    ms = 1_000_000
    r.t_first_event_ns = 100 * ms
    for pm, arrival, want in [
            (0.001, 100 * ms, 100 * ms),  # the anchor: its arrival
            (25.001, 200 * ms, 125 * ms),  # read late: dated by the server's 25 ms
            (50.001, 201 * ms, 150 * ms),
            (40.0, 202 * ms, 150 * ms)]:  # the server's clock went back: held at the last
        r.event_times_ns.append(_token_time(r, tm(pm), arrival))
        assert r.event_times_ns[-1] == want and r.server_dated
    r.timings = tm(120.001)
    assert _final_time(r, 400 * ms) == 220 * ms  # the server's time, not the late read
    assert r.late_anchor_ns == 0
    settle_token_times(r)  # nothing to move
    assert r.event_times_ns == [100 * ms, 125 * ms, 150 * ms, 150 * ms]
    assert _token_time(r, None, 420 * ms) == 420 * ms and not r.server_dated
    r.event_times_ns.append(420 * ms)
    assert _token_time(r, tm(300.0), 430 * ms) == 430 * ms and not r.server_dated
    assert _final_time(r, 440 * ms) == 440 * ms

    fresh = CompletionResult(server="s", endpoint="completion", t_sent_ns=0)
    assert _token_time(fresh, None, 5) == 5 and not fresh.server_dated  # arrivals throughout


def test_a_first_token_stamped_late_is_dated_by_the_later_arrivals() -> None:
    """A token that arrives sooner after the first one's stamp than the server made it after
    the first proves that stamp late (the stream thread waited for a core): the first token,
    and every token with it, is dated that much earlier, so the stream's span is the server's
    and the rate is not read high; never before the request was sent."""
    from quanttui.core.llama.client import _final_time, _token_time, settle_token_times
    from quanttui.core.llama.protocol import Timings
    from quanttui.core.llama.result import CompletionResult
    from quanttui.core.run.metrics import request_metrics

    def tm(ms: float) -> Timings:
        return Timings(predicted_ms=ms, predicted_n=3, predicted_per_second=20.0)

    ms = 1_000_000
    # The server made tokens at 60, 110, 160 ms (50 ms apart); the first was read 30 ms late.
    r = CompletionResult(server="s", endpoint="completion", t_sent_ns=0, t_headers_ns=90 * ms)
    r.t_first_event_ns = 90 * ms  # the headers' read, as late, carried no token
    for pm, arrival in [(0.0, 90 * ms), (50.0, 111 * ms), (100.0, 161 * ms)]:
        r.event_times_ns.append(_token_time(r, tm(pm), arrival))
        r.event_ntokens.append(1)
    assert r.late_anchor_ns == 29 * ms  # the first token came by 111 − 50 = 61 ms
    r.timings = tm(100.0)
    r.t_done_ns = _final_time(r, 161 * ms)
    settle_token_times(r)
    assert r.event_times_ns == [61 * ms, 111 * ms, 161 * ms] and r.late_anchor_ns == 0
    assert r.t_first_event_ns == r.t_headers_ns == 61 * ms and r.t_done_ns == 161 * ms
    m = request_metrics(r)
    assert m.ttft_ms == 61 and m.decode_tps_client == 20.0  # not 2 / 0.071 s, 28 tok/s

    # A server whose clock runs ahead of any arrival: the first token goes back to the
    # request's sending at most, and the rest is held at its arrival.
    r = CompletionResult(server="s", endpoint="completion", t_sent_ns=40 * ms)
    r.event_times_ns.append(_token_time(r, tm(0.0), 100 * ms))
    r.event_times_ns.append(_token_time(r, tm(500.0), 120 * ms))
    assert r.late_anchor_ns == 60 * ms and r.event_times_ns[-1] - r.late_anchor_ns == 120 * ms
    settle_token_times(r)
    assert r.event_times_ns == [40 * ms, 120 * ms]


def test_a_paced_stream_reads_each_token_near_the_limit() -> None:
    """Reads pause between looks, except before a rate is known (one token so far) and once
    the limit's last tokens are due before the next read: the request's end is seen as it
    comes, not up to a pause later, so the server does not wait for its next request."""
    from quanttui.core.llama.client import PACE_S, StreamJob
    from quanttui.core.llama.result import CompletionResult

    loop = asyncio.new_event_loop()
    try:
        r = CompletionResult(server="s", endpoint="completion", t_sent_ns=0)
        job = StreamJob("/completion", b"{}", r, loop)
        job.n_predict = 100
        r.event_times_ns, r.predicted_so_far = [0], 1
        assert job.near_the_end()  # no rate yet
        rate = 40.0  # tok/s: 49 tokens took 1.2 s
        r.event_times_ns, r.predicted_so_far = [0, int(48 / rate * 1e9)], 49
        assert not job.near_the_end()
        due = rate * PACE_S + 1  # tokens the next pause would cover, and the final event
        r.predicted_so_far = 100 - int(due) - 1
        r.event_times_ns = [0, int((r.predicted_so_far - 1) / rate * 1e9)]
        assert not job.near_the_end()
        r.predicted_so_far = 100 - int(due)
        r.event_times_ns = [0, int((r.predicted_so_far - 1) / rate * 1e9)]
        assert job.near_the_end()
        job.n_predict = 0  # no limit asked for: nothing to foresee
        assert not job.near_the_end()
        r.event_times_ns, r.predicted_so_far = [0], 1
        assert job.near_the_end()  # but no pause before a rate is known, limit or not
    finally:
        loop.close()


async def test_token_times_from_the_fake_servers_clock(fake: FakeLlamaServer) -> None:
    """The fake, like llama-server, sends running timings when asked: the stream is dated by
    them; asked not to, every token is stamped on arrival."""
    async with LlamaClient(fake.url) as c:
        dated = await c.complete("x", P10)
        stamped = await c.complete("x", P10, extra={"timings_per_token": False})
    assert dated.ok and dated.server_dated and dated.n_events == 10
    assert stamped.ok and not stamped.server_dated and stamped.n_events == 10
    for r in (dated, stamped):
        assert r.event_times_ns == sorted(r.event_times_ns)
        assert r.t_done_ns is not None and r.event_times_ns[-1] <= r.t_done_ns


async def test_live_batches_and_the_final_times_agree_when_the_first_stamp_was_late(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first token stamped 60 ms late (the stream thread kept from a core): the batches a
    live view gets keep the stamp's footing to the last one, so its rate over them is the
    server's, as is the final figure, whose times are moved back once the stream has ended."""
    from quanttui.core.llama.blocking_http import RawChunkedBody
    from quanttui.core.llama.result import CompletionResult
    from quanttui.core.run.metrics import decode_rate, request_metrics

    real_read = RawChunkedBody.read
    late = {"n": 0}

    def first_read_late(self: RawChunkedBody) -> bytes | None:
        out = real_read(self)
        if not late["n"]:
            time.sleep(0.06)
        late["n"] += 1
        return out

    monkeypatch.setattr(RawChunkedBody, "read", first_read_late)
    batches: list[tuple[int, int, int]] = []

    def progress(res: CompletionResult, first: int, end: int) -> None:
        batches.append((res.event_times_ns[first], res.event_times_ns[end - 1],
                        sum(res.event_ntokens[first:end])))

    with FakeLlamaServer(token_delay=0.01) as fake:
        async with LlamaClient(fake.url) as c:
            r = await c.complete("x", GenerationParams(n_predict=40), on_progress=progress)
    assert r.ok and r.server_dated and r.timings is not None
    m = request_metrics(r)
    assert m.decode_tps_client == pytest.approx(m.decode_tps_server, rel=0.02)
    live = decode_rate(sum(n for _, _, n in batches) - 1, batches[0][0], batches[-1][1])
    assert live == pytest.approx(m.decode_tps_client, rel=0.02), batches
    assert m.ttft_ms is not None and m.ttft_ms < (batches[0][0] - r.t_sent_ns) / 1e6 - 30
