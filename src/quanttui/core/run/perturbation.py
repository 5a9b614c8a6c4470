"""What drawing the screen costs the servers it watches, measured in the run itself.

While a run streams, the TUI stops drawing for `QUIET_S` seconds every `QUIET_EVERY_S` seconds
(`QuietWindows`); the stream readers and the hardware poller go on, as in a headless run, which
is the control. Each server's token gaps are then split by when they fell: inside a quiet window
(after its first `SETTLE_S`, once a frame started before it is out), or in the drawn stretches
of half that length just before and just after it (so a steady drift cancels). Per window, the
mean gap in the quiet part over the mean gap in the drawn parts is the decode speed while
drawing relative to not drawing; the figure is their geometric mean over the windows, with a
Student-t interval over the windows (each a unit: the gaps inside one are not independent).

A ratio under 1 − `NOTICE_SLOWDOWN` (the TUI slowed decoding by more than 2%) is said in a
notice. With fewer than two usable windows the run was too short to tell, and the figure says
so rather than guessing.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Sequence
from statistics import fmean

import msgspec

from quanttui.core.run.events import Notice
from quanttui.core.run.records import RunResults
from quanttui.core.run.stats import mean_interval

QUIET_S = 2.0  # seconds without drawing
QUIET_EVERY_S = 20.0  # one quiet window this often while a run streams
SETTLE_S = 0.25  # from the start of a quiet window: a frame begun before it has finished
MIN_GAPS = 3  # token gaps a window needs on each side to count
NOTICE_SLOWDOWN = 0.02


class ServerPerturbation(msgspec.Struct):
    """One server: decode tok/s while the TUI drew, relative to its quiet windows."""

    windows: int  # quiet windows with at least MIN_GAPS token gaps inside and beside
    quiet_tokens: int
    drawn_tokens: int
    decode_ratio: float | None  # drawing / quiet: 0.97 is 3% slower while drawing
    low: float | None = None  # 95% interval over the windows; None below two windows
    high: float | None = None


class Perturbation(msgspec.Struct):
    """The TUI's own effect on the servers' decode speed (absent from headless runs)."""

    quiet_s: float
    every_s: float
    settle_s: float  # the start of each window left out (a frame begun before it)
    windows: int  # quiet windows the TUI kept during the run
    servers: dict[str, ServerPerturbation]
    note: str = ""  # why there is no figure, where there is none


class QuietWindows:
    """When the TUI draws nothing: `quiet(now)` opens a window every `every_s` seconds of a run
    and says whether `now` falls in one. `windows` are the spans it drew nothing, in the stream
    readers' clock (time.perf_counter_ns)."""

    def __init__(self, every_s: float = QUIET_EVERY_S, length_s: float = QUIET_S,
                 settle_s: float = SETTLE_S) -> None:
        self.every_s, self.length_s, self.settle_s = every_s, length_s, settle_s
        self.every_ns = int(every_s * 1e9)
        self.length_ns = int(length_s * 1e9)
        self.windows: list[tuple[int, int]] = []
        self._next = 0
        self._until = 0

    def start(self, now_ns: int | None = None) -> None:
        """A run begins: the first window comes `every_s` seconds from now."""
        now = time.perf_counter_ns() if now_ns is None else now_ns
        self.windows = []
        self._next = now + self.every_ns
        self._until = 0

    def quiet(self, now_ns: int | None = None) -> bool:
        now = time.perf_counter_ns() if now_ns is None else now_ns
        if now < self._until:
            return True
        if self._next and now >= self._next:
            self._until = now + self.length_ns
            self._next = now + self.every_ns
            self.windows.append((now, self._until))
            return True
        return False

    def stop(self, now_ns: int | None = None) -> list[tuple[int, int]]:
        """The run ended: a window still open ends now; the windows, to measure."""
        now = time.perf_counter_ns() if now_ns is None else now_ns
        self._next = 0
        if self.windows and self.windows[-1][1] > now:
            self.windows[-1] = (self.windows[-1][0], now)
        return self.windows


def _gaps(results: RunResults, server: str) -> list[tuple[int, int, int]]:
    """The server's token gaps as (start, end, tokens), sorted by start: between two
    consecutive token-bearing events of a measured request, the later one's tokens."""
    out: list[tuple[int, int, int]] = []
    for r in results.measured(server):
        res = r.result
        if not r.ok or res is None:
            continue
        times, ntoks = res.event_times_ns, res.event_ntokens
        out += [(times[i - 1], times[i], ntoks[i]) for i in range(1, len(times))
                if ntoks[i] > 0 and times[i] > times[i - 1]]
    out.sort()
    return out


def _within(gaps: list[tuple[int, int, int]], starts: list[int], a: int, b: int
            ) -> tuple[int, int, int]:
    """Time, tokens and count of the gaps wholly inside [a, b)."""
    t = n = k = 0
    for i in range(bisect_left(starts, a), bisect_left(starts, b)):
        s, e, tok = gaps[i]
        if e <= b:
            t, n, k = t + e - s, n + tok, k + 1
    return t, n, k


def server_perturbation(results: RunResults, server: str, windows: Sequence[tuple[int, int]],
                        settle_s: float = SETTLE_S) -> ServerPerturbation:
    gaps = _gaps(results, server)
    starts = [g[0] for g in gaps]
    logs: list[float] = []
    quiet_tokens = drawn_tokens = 0
    for start, b in windows:
        a = start + int(settle_s * 1e9)
        half = (b - a) // 2
        if half <= 0:
            continue
        tq, nq, kq = _within(gaps, starts, a, b)
        t1, n1, k1 = _within(gaps, starts, start - half, start)
        t2, n2, k2 = _within(gaps, starts, b, b + half)
        td, nd, kd = t1 + t2, n1 + n2, k1 + k2
        if kq < MIN_GAPS or kd < MIN_GAPS or tq <= 0 or td <= 0:
            continue
        # mean gap per token, quiet over drawn: the decode speed drawing / quiet
        logs.append(math.log((tq / nq) / (td / nd)))
        quiet_tokens += nq
        drawn_tokens += nd
    if not logs:
        return ServerPerturbation(0, 0, 0, None)
    ci = mean_interval(logs)
    return ServerPerturbation(
        len(logs), quiet_tokens, drawn_tokens, math.exp(fmean(logs)),
        None if ci is None else math.exp(ci[0]), None if ci is None else math.exp(ci[1]))


def perturbation(results: RunResults, windows: Sequence[tuple[int, int]],
                 every_s: float = QUIET_EVERY_S, quiet_s: float = QUIET_S,
                 settle_s: float = SETTLE_S) -> Perturbation:
    servers = {s: server_perturbation(results, s, windows, settle_s)
               for s in results.server_names}
    note = ""
    if not windows:
        note = (f"the run streamed for less than {every_s:g} s: no quiet window, so the "
                "screen's own effect was not measured")
    elif all(p.windows < 2 for p in servers.values()):
        note = "fewer than two quiet windows with tokens on each side: too few to tell"
    return Perturbation(quiet_s, every_s, settle_s, len(windows), servers, note)


def perturbation_notices(p: Perturbation | None) -> list[Notice]:
    """A warning per server the drawing slowed by more than NOTICE_SLOWDOWN."""
    if p is None:
        return []
    out: list[Notice] = []
    for name, s in p.servers.items():
        if s.decode_ratio is None or s.windows < 2 or s.decode_ratio >= 1 - NOTICE_SLOWDOWN:
            continue
        ci = ("" if s.low is None or s.high is None else
              f" (95% interval ×{s.low:.3f} to ×{s.high:.3f}, {s.windows} quiet windows)")
        out.append(Notice(
            "warning", "screen-cost",
            f"{name}: decoded at ×{s.decode_ratio:.3f} of its speed while the screen was "
            f"drawn, against the {p.quiet_s:g} s windows without drawing{ci}: the TUI took CPU "
            "this server needed; a headless run (quanttui run --headless) measures without it",
            name))
    return out


def add_perturbation(results: RunResults, quiet: QuietWindows) -> list[Notice]:
    """The run has ended: the figure from its quiet windows into the run (its "perturbation"
    section) and its notices appended to the run's; the notices are returned for the face to
    say."""
    p = perturbation(results, quiet.stop(), quiet.every_s, quiet.length_s, quiet.settle_s)
    results.extra["perturbation"] = msgspec.to_builtins(p)
    new = perturbation_notices(p)
    results.notices += [{"level": n.level, "code": n.code, "message": n.message,
                         "server": n.server} for n in new]
    return new
