"""Shared bits for the benchmark scripts: a fake llama-server in its own process, so its CPU
never counts against the client being measured."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fake_server_process(token_delay: float = 0.0) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "quanttui.testing.fake_server", "--token-delay", str(token_delay)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"fake server did not start: {url!r}")
        yield url
    finally:
        proc.terminate()
        proc.wait(5)


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


class CpuTimer:
    """Process CPU seconds and wall seconds of a block."""

    def __enter__(self) -> CpuTimer:
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self.cpu0
        self.wall = time.perf_counter() - self.wall0
