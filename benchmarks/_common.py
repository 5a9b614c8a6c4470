"""Shared bits for the benchmark scripts: targets that pass or fail, a fake llama-server in its
own process (so its CPU never counts against the client being measured), timers.

Every script states its targets with `Targets.check(...)` and ends with `Targets.finish()`, which
prints one line per target,

    target <what> <op> <limit>, measured <value> (<detail>): pass | FAIL

and returns the exit status: 0 when every target was met, 1 when one was missed. When the
environment names a file in QUANTTUI_BENCH_RESULTS, the targets are also written there as JSON
(`benchmarks/run_all.py` collects them into its table).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS_ENV = "QUANTTUI_BENCH_RESULTS"

_OPS: dict[str, Callable[[float, float], bool]] = {
    "≤": lambda m, lim: m <= lim,
    "≥": lambda m, lim: m >= lim,
    "<": lambda m, lim: m < lim,
    ">": lambda m, lim: m > lim,
}


@dataclass
class Target:
    what: str
    op: str  # ≤ ≥ < >
    limit: float
    measured: float  # nan: could not be measured (a miss)
    unit: str  # "%": shares of one core given as fractions; "s", "ms", "/s", "" (a ratio)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not math.isnan(self.measured) and _OPS[self.op](self.measured, self.limit)

    def fmt(self, x: float) -> str:
        if math.isnan(x):
            return "n/a"
        if self.unit == "%":
            return f"{x:.2%}" if abs(x) < 0.1 else f"{x:.1%}"
        if self.unit == "s":
            return f"{x:.3g} s"
        if self.unit == "ms":
            return f"{x:.3g} ms"
        if self.unit == "/s":
            return f"{x:,.0f}/s"
        return f"{x:.4g}" if abs(x) < 1000 else f"{x:,.0f}"

    @property
    def target_text(self) -> str:
        return f"{self.what} {self.op} {self.fmt(self.limit)}"

    @property
    def measured_text(self) -> str:
        return self.fmt(self.measured) + (f" ({self.detail})" if self.detail else "")

    def line(self) -> str:
        return (f"target {self.target_text}, measured {self.measured_text}: "
                f"{'pass' if self.ok else 'FAIL'}")


class Targets:
    """The targets of one script, checked against what it measured."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.items: list[Target] = []

    def check(self, what: str, op: str, limit: float, measured: float | None, unit: str = "",
              detail: str = "") -> Target:
        if op not in _OPS:
            raise ValueError(f"unknown comparison {op!r}")
        t = Target(what, op, limit, float("nan") if measured is None else float(measured), unit,
                   detail)
        self.items.append(t)
        return t

    def finish(self) -> int:
        print()
        for t in self.items:
            print(t.line())
        missed = [t for t in self.items if not t.ok]
        print(f"{self.script}: {len(self.items) - len(missed)} of {len(self.items)} targets met")
        path = os.environ.get(RESULTS_ENV)
        if path:
            rows = [dict(asdict(t), target=t.target_text, value=t.fmt(t.measured),
                         measured_text=t.measured_text, ok=t.ok) for t in self.items]
            for r in rows:  # JSON has no NaN
                if math.isnan(r["measured"]):
                    r["measured"] = None
            Path(path).write_text(json.dumps({"script": self.script, "targets": rows}))
        return 1 if missed or not self.items else 0


@contextmanager
def fake_server_process(token_delay: float = 0.0) -> Iterator[str]:
    """A fake llama-server (quanttui.testing.fake_server) in a process of its own: its URL."""
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
    if not n:
        return float("nan")
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
