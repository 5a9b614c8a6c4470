"""What a URL quanttui talks to must look like (a server's, an exporter's): the config, the
command line, the TUI's add-a-server field and the client all ask this one function."""

from __future__ import annotations

from urllib.parse import urlsplit


def url_problem(url: str) -> str | None:
    """Why `url` can't be used, in words, or None when it can."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "no host name"
    return None

