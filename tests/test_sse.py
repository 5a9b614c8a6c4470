from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quanttui.core.llama.sse import SSEDecoder, SSETooLarge

STREAM = (
    b'data: {"content":" a","tokens":[1]}\n\n'
    b": ping\n\n"
    b'data: {"content":" b","tokens":[2]}\r\n\r\n'
    b"event: x\nid: 3\n"
    b"data: line1\ndata: line2\n\n"
    b"data:[DONE]\n\n"
)
EXPECTED = [b'{"content":" a","tokens":[1]}', b'{"content":" b","tokens":[2]}',
            b"line1\nline2", b"[DONE]"]


def test_whole_stream() -> None:
    d = SSEDecoder()
    assert d.feed(STREAM) == EXPECTED
    assert d.flush() == [] and not d.pending


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)], strict=True)]
    d = SSEDecoder()
    out: list[bytes] = []
    for p in pieces:
        out += d.feed(p)
    assert out == EXPECTED


def test_unterminated_event_is_only_given_by_flush() -> None:
    d = SSEDecoder()
    assert d.feed(b'data: {"stop":true}') == []
    assert d.pending
    assert d.flush() == [b'{"stop":true}']


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    d = SSEDecoder()
    d.feed(data)
    d.flush()


def test_a_line_past_the_limit_raises_in_linear_time() -> None:
    """A line that never ends: 64 KiB reads are kept as pieces, not re-joined per read."""
    d = SSEDecoder(limit=64 << 20)
    piece = b"x" * 65536
    t0 = time.perf_counter()
    with pytest.raises(SSETooLarge, match="without a newline"):
        for _ in range(2048):  # 128 MiB
            d.feed(piece)
    # quadratic re-joining would copy ~32 GiB here
    assert time.perf_counter() - t0 < 5


def test_an_event_past_the_limit_raises() -> None:
    d = SSEDecoder(limit=1000)
    assert d.feed(b"data: " + b"x" * 900 + b"\n\n") == [b"x" * 900]  # the count starts over
    with pytest.raises(SSETooLarge, match="an event of more than 1,000 bytes"):
        for _ in range(100):
            d.feed(b"data: xxxxxxxxxxxxxxxxxxxx\n")
    with pytest.raises(SSETooLarge, match="a line of 1,001 bytes"):
        SSEDecoder(limit=1000).feed(b"x" * 1001 + b"\n")
