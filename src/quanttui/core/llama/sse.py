"""Server-sent events framing, byte level.

Written for the per-token path: bytes are split once per network read, not per character, and
payloads are handed on as bytes for msgspec to decode without a str round trip. Follows the SSE
rules llama-server relies on: `data:` lines accumulate, a blank line dispatches the event,
lines starting with `:` are comments (llama-server's keep-alive pings), other fields are ignored.
"""

from __future__ import annotations

# The longest line, and the most data in one event, a stream may send. llama-server's largest
# events are the final one (it repeats the prompt's text) and per-token events with many
# `n_probs`: well under a MiB for any context a server holds. Past this the stream is broken,
# and reading on would hold it all in memory.
MAX_EVENT_BYTES = 16 << 20


class SSETooLarge(ValueError):
    """A line or an event's data past `MAX_EVENT_BYTES`: the stream can't be read on."""


class SSEDecoder:
    """Feed raw chunks; get the complete events' data payloads.

    Linear in what is fed: each chunk is split once, and an unterminated line is kept as
    pieces joined only when its newline comes (not re-scanned on every read). Raises
    `SSETooLarge` for a line or an event's data longer than `limit` bytes.
    """

    __slots__ = ("_data", "_data_len", "_line", "_line_len", "limit", "n_lines")

    def __init__(self, limit: int = MAX_EVENT_BYTES) -> None:
        self.limit = limit
        self.n_lines = 0  # complete lines so far, comments (pings) included
        self._line: list[bytes] = []  # pieces of the unterminated line
        self._line_len = 0
        self._data: list[bytes] = []
        self._data_len = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = chunk.split(b"\n")
        rest = lines.pop()  # an unterminated line waits for the next read
        if self._line and lines:
            self._line.append(lines[0])
            lines[0] = b"".join(self._line)
            self._line.clear()
            self._line_len = 0
        out: list[bytes] = []
        data = self._data
        self.n_lines += len(lines)
        for line in lines:
            if len(line) > self.limit:
                raise SSETooLarge(f"a line of {len(line):,} bytes (at most {self.limit:,})")
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    out.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
                    self._data_len = 0
            elif line.startswith(b"data:"):
                payload = line[5:]
                payload = payload[1:] if payload.startswith(b" ") else payload
                self._data_len += len(payload) + 1
                if self._data_len > self.limit:
                    raise SSETooLarge(f"an event of more than {self.limit:,} bytes")
                data.append(payload)
            # ':' comments (pings) and other fields (event:, id:, retry:) carry nothing for us
        if rest:
            self._line.append(rest)
            self._line_len += len(rest)
            if self._line_len > self.limit:
                raise SSETooLarge(f"a line of more than {self.limit:,} bytes without a newline")
        return out

    def flush(self) -> list[bytes]:
        """At end of stream: an event whose blank line never came.

        The SSE spec drops it; llama-server always ends events with a blank line, so such a
        payload means the stream was cut, and the caller decides what that is worth.
        """
        if self._line:
            self.feed(b"\n")
        out = [b"\n".join(self._data)] if self._data else []
        self._data.clear()
        self._data_len = 0
        return out

    def held(self) -> bytes:
        """What an unfinished line or event holds, stripped (b"" when nothing is)."""
        return b"\n".join([*self._data, b"".join(self._line)]).strip()

    @property
    def pending(self) -> bool:
        return bool(self._line or self._data)
