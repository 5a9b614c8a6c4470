"""Server-sent events framing, byte level.

Written for the per-token path: bytes are split once per network read, not per character, and
payloads are handed on as bytes for msgspec to decode without a str round trip. Follows the SSE
rules llama-server relies on: `data:` lines accumulate, a blank line dispatches the event,
lines starting with `:` are comments (llama-server's keep-alive pings), other fields are ignored.
"""

from __future__ import annotations


class SSEDecoder:
    """Feed raw chunks; get the complete events' data payloads."""

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        lines = buf.split(b"\n")
        self._buf = lines.pop()  # an unterminated line waits for the next read
        out: list[bytes] = []
        data = self._data
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    out.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                payload = line[5:]
                data.append(payload[1:] if payload.startswith(b" ") else payload)
            # ':' comments (pings) and other fields (event:, id:, retry:) carry nothing for us
        return out

    def flush(self) -> list[bytes]:
        """At end of stream: an event whose blank line never came.

        The SSE spec drops it; llama-server always ends events with a blank line, so such a
        payload means the stream was cut, and the caller decides what that is worth.
        """
        if self._buf:
            self.feed(b"\n")
        out = [b"\n".join(self._data)] if self._data else []
        self._data.clear()
        return out

    @property
    def pending(self) -> bool:
        return bool(self._buf or self._data)
