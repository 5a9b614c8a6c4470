"""Blocking HTTP/1.1 connections for the streaming threads, kept alive between requests.

The stream threads (see `client.StreamJob`) read with plain blocking sockets through the
standard library's `http.client`, which speaks chunked transfer encoding and keep-alive and
costs nothing to import. Idle connections are reused so a request's TTFT doesn't include a TCP
handshake; a reused connection that the server has meanwhile closed is retried once on a fresh
one before anything of the request is lost.
"""

from __future__ import annotations

import http.client
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
