"""OS-level thread names, so `top -H`, /proc/PID/task/*/comm and the benchmarks can tell
quanttui's threads apart (Python before 3.14 names its threads for Python only)."""

from __future__ import annotations

import sys

_PR_SET_NAME = 15
_libc: object | None = None


def name_os_thread(name: str) -> None:
    """Name the calling thread for the OS (Linux: the first 15 bytes); elsewhere a no-op."""
    global _libc
    if not sys.platform.startswith("linux"):
        return
    try:
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        pass  # a name is a convenience: never fail a thread for it
