"""What a llama-server URL must look like: the config, the command line, the TUI's add-a-server
field and the client all ask this one function."""

from __future__ import annotations

from urllib.parse import urlsplit


def url_problem(url: str) -> str | None:
    """Why `url` can't be a server's base URL, or None when it can."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL such as http://127.0.0.1:8080"
    if not parts.hostname:
        return "no host name (expected a URL such as http://127.0.0.1:8080)"
    return None
