"""Blocking HTTP/1.1 connections for the streaming threads, kept alive between requests.

The stream threads (see `client.StreamJob`) read with plain blocking sockets through the
standard library's `http.client`, which speaks chunked transfer encoding and keep-alive and
costs nothing to import. Idle connections are reused so a request's TTFT doesn't include a TCP
handshake; a reused connection that the server has meanwhile closed is retried once on a fresh
one before anything of the request is lost.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import threading
import time
from urllib.parse import urlsplit

# llama-server (cpp-httplib) closes idle keep-alive connections after 5 s; past this age a
# connection is not worth trying.
MAX_IDLE_S = 4.0

# What a server that closed a kept-alive connection looks like to the next request on it.
STALE_ERRORS = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                ConnectionAbortedError)


class ConnectionPool:
    """Connections to one server. Thread-safe: each stream thread takes one and gives it back."""

    def __init__(self, url: str, *, connect_timeout: float, read_timeout: float) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.base_path = parts.path.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connected connection and whether it was reused (so may be stale)."""
        now = time.monotonic()
        with self._lock:
            while self._idle:
                conn, since = self._idle.pop()
                if now - since < MAX_IDLE_S and conn.sock is not None:
                    return conn, True
                conn.close()
        return self.connect(), False

    def connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.connect_timeout)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self.read_timeout)  # from now on: bounds each wait for data
        if not self.https:
            # Requests are one small write; don't let Nagle hold it back.
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and conn.sock is not None:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


MAX_CHUNK_LINE = 4096  # a chunk-size or trailer line; llama-server's are a few bytes


class RawChunkedBody:
    """A chunked response body read straight from the socket, for plain-HTTP streams.

    A stream thread may wake once per token; `http.client`'s own chunked reading (a buffered
    readline, a size parse and a buffered read, each a few Python calls deep) cost it ~40 µs of
    CPU per wake on top of the ~60 µs the wake itself costs, and quanttui must not take the
    CPU of the servers it measures. After the headers, this takes over the socket: first what
    `http.client` had already buffered, then one `recv` per `read`.

    `read()` returns the next data bytes (b"" when a read brought only framing), or None at
    the end of the body; `waiting()` whether a read would find data at once. A connection
    closed before the end raises `http.client.IncompleteRead`, bytes that are not chunked
    framing `http.client.HTTPException`, as `http.client` would.
    """

    __slots__ = ("_crlf", "_head", "_left", "_pending", "_response", "_sock", "_trailer",
                 "done", "extra")

    def __init__(self, response: http.client.HTTPResponse, sock: socket.socket) -> None:
        self._response = response
        self._sock = sock
        self._left = 0  # data bytes left in the current chunk
        self._crlf = 0  # bytes of the CRLF after a chunk's data still to skip
        self._head = bytearray()  # an unterminated size or trailer line
        self._trailer = False  # past the last chunk: trailer lines until a blank one
        self.done = False
        self.extra = b""  # bytes after the body's end (none on a healthy connection)
        self._pending = self._take_buffered()

    def _take_buffered(self) -> bytes:
        """What http.client read past the headers into its buffer, without waiting for more."""
        fp = self._response.fp
        if fp is None:
            return b""
        timeout = self._sock.gettimeout()
        try:
            self._sock.settimeout(0)  # peek must not block when the buffer is empty
            buffered = fp.peek()
            return fp.read(len(buffered)) if buffered else b""
        except BlockingIOError:
            return b""
        finally:
            self._sock.settimeout(timeout)

    def read(self) -> bytes | None:
        if self.done:
            return None
        if self._pending:
            raw, self._pending = self._pending, b""
        else:
            raw = self._sock.recv(65536)
            if not raw:
                raise http.client.IncompleteRead(b"")
        data = self._feed(raw)
        if self.done:
            self.close_response()
            if not data:
                return None
        return data

    def waiting(self) -> bool:
        """Data (or the connection's end) is there to read now: one poll, which does not
        wait."""
        if self._pending:
            return True
        with contextlib.suppress(OSError, ValueError):
            return bool(select.select((self._sock,), (), (), 0)[0])
        return True  # the socket is unusable: the next read says how

    def close_response(self) -> None:
        """The body is read: http.client may send the next request on this connection."""
        self._response.close()

    def _feed(self, buf: bytes) -> bytes:
        out: list[bytes] = []
        i, n = 0, len(buf)
        while i < n:
            if self._left:
                take = min(self._left, n - i)
                out.append(buf[i:i + take] if take < n else buf)
                i += take
                self._left -= take
                if not self._left:
                    self._crlf = 2
            elif self._crlf:
                k = min(self._crlf, n - i)
                want = b"\r\n"[2 - self._crlf:2 - self._crlf + k]
                if buf[i:i + k] != want:
                    raise http.client.HTTPException("no CRLF after a chunk")
                i += k
                self._crlf -= k
            else:
                j = buf.find(b"\n", i)
                if j < 0:
                    self._head += buf[i:]
                    if len(self._head) > MAX_CHUNK_LINE:
                        raise http.client.HTTPException("a chunk-size line too long")
                    break
                line = bytes(self._head) + buf[i:j] if self._head else buf[i:j]
                self._head.clear()
                i = j + 1
                line = line.rstrip(b"\r")
                if self._trailer:
                    if not line:
                        self.done = True
                        self.extra = buf[i:]
                        break
                    continue
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise http.client.HTTPException(
                        f"not a chunk size: {line[:40]!r}") from None
                if size < 0:
                    raise http.client.HTTPException("a negative chunk size")
                if size == 0:
                    self._trailer = True
                else:
                    self._left = size
        return out[0] if len(out) == 1 else b"".join(out)
