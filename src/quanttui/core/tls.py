"""What an httpx client bound to one server URL verifies TLS with (the llama client, the
launcher's health checks): one decision for all of them."""

from __future__ import annotations

import functools
import ssl
from urllib.parse import urlsplit


def tls_verify(url: str) -> ssl.SSLContext | bool:
    """What an httpx client for `url` verifies with: the CA bundle (True) for https; for plain
    http a bare context that is never used. httpx builds its default context whenever a client
    is made, loading the CA bundle: ~100 ms per client, most of the TUI's first frame."""
    return True if urlsplit(url).scheme == "https" else _unused_context()


@functools.cache
def _unused_context() -> ssl.SSLContext:
    # Verifies certificates and host names and knows no CA: were it ever used, it would refuse.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
