"""The stream threads' chunked-body reader (core.llama.blocking_http.RawChunkedBody): the same
bytes as http.client reads, however the network splits them, and the same failures."""

from __future__ import annotations

import http.client
import itertools
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanttui.core.llama.blocking_http import RawChunkedBody

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunked(events: list[bytes], trailer: bytes = b"") -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n" + trailer + b"\r\n"


def open_body(sent: bytes) -> tuple[RawChunkedBody, http.client.HTTPResponse, socket.socket]:
    """A response whose head (and whatever of `sent` came with it) http.client has read."""
    ours, theirs = socket.socketpair()
    theirs.sendall(sent)
    response = http.client.HTTPResponse(ours)
    response.begin()
    ours.settimeout(5)
    return RawChunkedBody(response, ours), response, theirs


def read_all(body: RawChunkedBody) -> bytes:
    out = []
    while (data := body.read()) is not None:
        out.append(data)
    return b"".join(out)


EVENTS = [b'data: {"content":" a"}\n\n', b'data: {"content":"\xc3\xa9"}\n\n', b"data: [DONE]\n\n"]


def test_what_http_client_buffered_with_the_head_is_read_first() -> None:
    body, response, theirs = open_body(HEAD + chunked(EVENTS))
    assert read_all(body) == b"".join(EVENTS)
    assert body.done and body.extra == b"" and response.isclosed()  # the connection is free
    theirs.close()


def test_the_rest_comes_from_the_socket() -> None:
    body, response, theirs = open_body(HEAD)
    theirs.sendall(chunked(EVENTS[:1])[:-5])  # the first chunk, not the end
    assert body.read() == EVENTS[0]
    theirs.sendall(b"0\r\n\r\n")
    assert body.read() is None and response.isclosed()
    theirs.close()


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
       trailer=st.sampled_from([b"", b"X-Trailer: 1\r\n"]))
def test_any_split_gives_the_same_data(events: list[bytes], cuts: list[int],
                                       trailer: bytes) -> None:
    wire = chunked(events, trailer) + b"junk"
    body, _, theirs = open_body(HEAD)
    theirs.close()
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    got = b"".join(body._feed(wire[a:b]) for a, b in itertools.pairwise(points)
                   if not body.done)
    assert got == b"".join(events)
    assert body.done and b"junk".startswith(body.extra)  # what came with the end, kept aside


def test_a_connection_closed_mid_chunk_is_cut_short() -> None:
    body, _, theirs = open_body(HEAD + b"20\r\ndata: half")
    theirs.close()
    assert body.read() == b"data: half"
    with pytest.raises(http.client.IncompleteRead):
        body.read()


@pytest.mark.parametrize("wire, why", [
    (b"zz\r\n", "not a chunk size"),
    (b"5\r\nhelloXX", "no CRLF after a chunk"),
    (b"1" * 5000, "too long"),
])
def test_bytes_that_are_not_chunked_framing(wire: bytes, why: str) -> None:
    body, _, theirs = open_body(HEAD + wire)
    with pytest.raises(http.client.HTTPException, match=why):
        read_all(body)
    theirs.close()


def test_bytes_after_the_end_are_kept_aside() -> None:
    body, _, theirs = open_body(HEAD + chunked(EVENTS[:1]) + b"HTTP/1.1 200")
    assert read_all(body) == EVENTS[0]
    assert body.extra == b"HTTP/1.1 200"
    theirs.close()
