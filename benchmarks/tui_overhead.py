"""What the TUI costs: its own CPU while two servers stream and while idle, its first frame, and
the servers' speed with it attached, side by side with a bare streaming client in one run.

Two cases, each at every terminal size (--sizes, 160x48 and 80x24 by default):

- real: two llama-servers on the demo quants (Gemma 3 270M Q4_K_M and Q8_0, one thread each);
- fast: two fake llama-servers at 1,000 tok/s each (a GPU pair), writing as llama-server does
  (one SSE event per token, one write each).

Phases alternate (bare, tui, tui, bare, ...: ABBA, so drift cancels):

- bare: a plain streaming client (quanttui's LlamaClient, no UI) keeps both servers busy on the
        TUI's schedule (simultaneous: each prompt to both at once, the next when both are done);
- tui:  `quanttui run --server …` in a real pseudo-terminal (TERM=xterm-256color, the size set
        on the terminal), servers already up. It measures the first frame (start → the screen
        shows both servers and the "ready" status), then, real case only, the CPU while idle
        (servers up, nothing running), then starts the suite with the `r` key as a user would
        and measures the CPU while both servers stream.

CPU is the measured process's CPU time over wall time after a settle time (100% = one core;
idle to the nanosecond from each thread's /proc schedstat, where Linux has it);
the real servers' decode speed comes from their own counters (llama-server /metrics:
tokens_predicted_total / tokens_predicted_seconds_total, which move when a request ends: from the
start of the CPU window until each server has finished a request, however long the window).

The CPU of each phase is also split by thread (main: the event loop, drawing and the session;
streams: the stream readers; poller: the hardware poller; other: Textual's input/output threads
and asyncio's workers; ended: threads that ended between two looks), printed per phase and as a
table at the end.

Targets (issue 21, on any 2-core machine):
- real, each size: quanttui's CPU while two servers stream ≤ 1.5% of one core;
- real, each size: idle CPU ≤ 0.3% of one core;
- real, each size: first frame ≤ 0.8 s (median of the TUI starts at that size);
- real, each size: each server's decode tok/s with the TUI / with the bare client ≥ 0.98
  (the worse of the two servers counts; the detail adds the ratio from adjacent phases with its
  95% interval over the pairs, which says whether this machine's drift resolved it);
- fast, each size: the TUI's CPU beyond the bare client's while two 1,000 tok/s servers stream
  ≤ 2% of one core (reading 2,000 events a second costs the client itself several %).

    .venv/bin/python benchmarks/tui_overhead.py                   # ~16 min
    .venv/bin/python benchmarks/tui_overhead.py --seconds 6 --settle 2 --idle-seconds 4 \\
        --fast-seconds 4 --fast-phases 2                           # ~3 min
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import fcntl
import math
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from _common import Targets, fake_server_process, median

N_PREDICT = 128
FAST_N_PREDICT = 512
FAST_DELAY = 0.001  # 1,000 tok/s
ORDER = ("bare", "tui", "tui", "bare")


# ------------------------------------------------------------------------------ the bare client


async def bare_client(urls: list[str], n_predict: int) -> None:
    """Stream the quick suite until killed, on the TUI's schedule (simultaneous): each prompt to
    every server at once, the next when all have finished. Each server in its own loop instead
    measured 3-5% slower than this (ABBA, 4 × 30 s each, two llama-servers -t 1 on 2 cores):
    while one server waits for the other, the other runs alone; the control must share it."""
    from quanttui.core.llama.client import LlamaClient
    from quanttui.core.llama.params import GenerationParams
    from quanttui.core.suites.prompts import builtin_suite

    prompts = [p.text for p in builtin_suite("quick")]
    params = GenerationParams(n_predict=n_predict, ignore_eos=True)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(LlamaClient(u)) for u in urls]
        i = 0
        while True:
            await asyncio.gather(*(c.complete(prompts[i % len(prompts)], params)
                                   for c in clients))
            i += 1


# ------------------------------------------------------------------------------ measuring


def server_counters(url: str) -> tuple[float, float]:
    """(tokens predicted, seconds spent predicting) so far, from llama-server's /metrics."""
    text = httpx.get(url + "/metrics", timeout=5).text
    values = {}
    for line in text.splitlines():
        if line.startswith("llamacpp:"):
            name, _, value = line.partition(" ")
            values[name.removeprefix("llamacpp:")] = float(value)
    return values["tokens_predicted_total"], values["tokens_predicted_seconds_total"]


@dataclass
class Phase:
    case: str
    size: str
    mode: str
    cpu_share: float = 0.0
    rss_mb: float = 0.0
    first_frame_s: float | None = None
    idle_share: float | None = None
    decode: dict[str, float] = field(default_factory=dict)
    threads: dict[str, float] = field(default_factory=dict)  # CPU share by thread group
    error: str | None = None  # the phase did not run to the end: why


class Child:
    """The measured client process: the bare loop, or quanttui in a pseudo-terminal."""

    def __init__(self, mode: str, names: list[str], urls: list[str], size: tuple[int, int],
                 n_predict: int, workdir: Path) -> None:
        self.mode = mode
        self.master: int | None = None
        self._drain: threading.Thread | None = None
        self.screen = bytearray()
        self.watch = [*names, "ready", "▶"]
        self.seen: dict[str, float] = {}
        self.t_start = time.monotonic()
        if mode == "bare":
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--bare-child", str(n_predict), *urls],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            return
        cfg = workdir / "quanttui.toml"
        cfg.write_text(
            "[run]\nwarmup = 0\nrepetitions = 1000\nschedule = \"simultaneous\"\n"
            f"export_dir = \"{workdir / 'exports'}\"\n"
            f"[generation]\nn_predict = {n_predict}\nignore_eos = true\n"
            "[prompts]\nsuites = [\"quick\"]\n")
        servers = [a for n, u in zip(names, urls, strict=True) for a in ("--server", f"{n}={u}")]
        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        # Its run history goes to the scratch folder, not the user's.
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows),
                   QUANTTUI_DATA_DIR=str(workdir / "data"),
                   XDG_DATA_HOME=str(workdir / "xdg-data"))
        env.pop("COLORTERM", None)
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quanttui", "--config", str(cfg), "run", *servers],
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
            cwd=workdir)
        os.close(slave)
        self.master = master
        # A terminal reads what the app writes; without a reader the app would block.
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.master is not None
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
                if not ready:
                    continue
                data = os.read(self.master, 65536)
                if not data:
                    return
                now = time.monotonic()
                window = bytes(self.screen[-64:]) + data  # a string may straddle two reads
                for text in self.watch:
                    if text not in self.seen and text.encode() in window:
                        self.seen[text] = now
                self.screen += data
                del self.screen[:-20000]
            except OSError:
                return

    def wait_for(self, *texts: str, timeout: float = 60) -> float:
        """Until every text has been on the screen; the time the last one came, from start."""
        deadline = time.monotonic() + timeout
        while not all(t in self.seen for t in texts):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"quanttui did not show {texts!r}; last output:\n"
                                   f"{self.screen[-2000:].decode(errors='replace')}")
            time.sleep(0.02)
        return max(self.seen[t] for t in texts) - self.t_start

    def press(self, key: bytes, then: str) -> None:
        assert self.master is not None
        self.seen.pop(then, None)
        os.write(self.master, key)
        self.wait_for(then)

    def stop(self) -> None:
        if self.master is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.write(self.master, b"x")
                time.sleep(0.5)
                os.write(self.master, b"q")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM) if self.master is not None \
                    else self.proc.terminate()
            self.proc.wait(10)
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)


GROUPS = ("main", "streams", "poller", "other", "ended")


def thread_group(pid: int, tid: int, comm: str) -> str:
    """Which of quanttui's threads: its main thread (the event loop: drawing, the session), the
    stream readers and the hardware poller (named for the OS by quanttui.core.threads), or
    another (Textual's input and output threads, named qt-input and qt-output by quanttui.tui,
    and asyncio's to_thread workers)."""
    if tid == pid:
        return "main"
    if comm.startswith("qt-stream"):
        return "streams"
    return "poller" if comm.startswith("qt-poller") else "other"


def thread_cpu(pid: int) -> dict[int, tuple[str, int]]:
    """Each live thread's group and CPU nanoseconds (/proc/PID/task/*/comm and schedstat)."""
    out = {}
    with contextlib.suppress(OSError):
        for name in os.listdir(f"/proc/{pid}/task"):
            tid = int(name)
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # ended between the listing and the read
            out[tid] = (thread_group(pid, tid, comm), ns)
    return out


def cpu_share_by_thread(proc: psutil.Process, seconds: float,
                        look_s: float = 0.5) -> tuple[float, dict[str, float]]:
    """cpu_share, and its split by thread group: each thread looked at every `look_s` seconds
    (a stream thread lives one request); "ended" is the CPU of threads that ended between two
    looks (stream threads, mostly), the process's total less what the looks saw."""
    c0, w0 = sum(proc.cpu_times()[:2]), time.monotonic()
    first = thread_cpu(proc.pid)
    last = dict(first)
    end = w0 + seconds
    while (now := time.monotonic()) < end:
        time.sleep(min(look_s, end - now))
        last.update(thread_cpu(proc.pid))
    c1, w1 = sum(proc.cpu_times()[:2]), time.monotonic()
    wall = w1 - w0
    groups = dict.fromkeys(GROUPS, 0.0)
    for tid, (group, ns) in last.items():
        groups[group] += (ns - first.get(tid, (group, 0))[1]) / 1e9 / wall
    total = (c1 - c0) / wall
    groups["ended"] = max(total - sum(groups.values()), 0.0)
    return total, groups


def thread_ns(pid: int) -> dict[str, int] | None:
    """CPU nanoseconds of each live thread (Linux /proc/PID/task/*/schedstat), or None."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[tid] = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return out


def idle_share(proc: psutil.Process, seconds: float) -> float:
    """As cpu_share, to the nanosecond where the threads stay the same over the window (an idle
    app's do): psutil's CPU times count in clock ticks (10 ms), too coarse for 0.5% of a few
    seconds."""
    c0, t0, w0 = sum(proc.cpu_times()[:2]), thread_ns(proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1, w1 = sum(proc.cpu_times()[:2]), thread_ns(proc.pid), time.monotonic()
    if t0 is not None and t1 is not None and t0.keys() == t1.keys():
        return (sum(t1.values()) - sum(t0.values())) / 1e9 / (w1 - w0)
    return (c1 - c0) / (w1 - w0)


def measure(child: Child, phase: Phase, names: list[str], urls: list[str], real: bool,
            args: argparse.Namespace) -> Phase:
    proc = psutil.Process(child.proc.pid)
    if child.master is not None:
        phase.first_frame_s = child.wait_for(*names, "ready")
        if real and args.idle_seconds > 0:
            time.sleep(args.settle)
            phase.idle_share = idle_share(proc, args.idle_seconds)
        child.press(b"r", "▶")  # as a user would: run the suite
    time.sleep(args.settle)
    s0 = [server_counters(u) for u in urls] if real else []
    phase.cpu_share, phase.threads = cpu_share_by_thread(
        proc, args.seconds if real else args.fast_seconds)
    phase.rss_mb = proc.memory_info().rss / 1e6
    if real:
        # The counters move when a request ends: past the CPU window, wait (streaming on) until
        # every server has finished one since s0, so the decode figure needs no long window.
        deadline = time.monotonic() + 120
        while True:
            s1 = [server_counters(u) for u in urls]
            if all(b[0] > a[0] for a, b in zip(s0, s1, strict=True)) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        for name, (t0, p0), (t1, p1) in zip(names, s0, s1, strict=True):
            phase.decode[name] = (t1 - t0) / (p1 - p0) if p1 > p0 else float("nan")
    return phase


def run_case(case: str, names: list[str], urls: list[str], args: argparse.Namespace,
             sizes: list[tuple[int, int]], workdir: Path) -> list[Phase]:
    real = case == "real"
    n_predict = args.n_predict if real else args.fast_n_predict
    phases: list[Phase] = []
    for cols, rows in sizes:
        size = f"{cols}x{rows}"
        for i in range(args.phases if real else args.fast_phases):
            mode = ORDER[i % 4]
            child = Child(mode, names, urls, (cols, rows), n_predict, workdir)
            phase = Phase(case, size, mode)
            try:
                measure(child, phase, names, urls, real, args)
            except (RuntimeError, psutil.Error) as e:
                phase.error = last_error(child, e)
            finally:
                child.stop()
            phases.append(phase)
            if phase.error is not None:
                print(f"{case} {size} phase {i + 1} {mode:4}: did not run to the end: "
                      f"{phase.error}", flush=True)
                time.sleep(1.0)
                continue
            extra = ""
            if phase.first_frame_s is not None:
                extra += f"   first frame {phase.first_frame_s:.2f} s"
            if phase.idle_share is not None:
                extra += f", idle {phase.idle_share:.2%}"
            rates = "  ".join(f"{n} {phase.decode[n]:6.2f} tok/s" for n in phase.decode)
            print(f"{case} {size} phase {i + 1} {mode:4}: CPU {phase.cpu_share:6.2%} of a core, "
                  f"RSS {phase.rss_mb:5.0f} MB   {rates}{extra}\n    threads: "
                  f"{threads_text(phase.threads)}", flush=True)
            time.sleep(1.0)
    return phases


def last_error(child: Child, e: Exception) -> str:
    """What ended a phase: the last error line the app printed, else the exception."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.screen.decode(errors="replace"))
    lines = [ln.strip(" │╰╯─") for ln in text.splitlines()]
    errors = [ln for ln in lines if re.match(r"\w+(Error|Exception)\b", ln)]
    return errors[-1] if errors else str(e).splitlines()[0]


def threads_text(groups: dict[str, float]) -> str:
    return ", ".join(f"{g} {groups.get(g, 0.0):.2%}" for g in GROUPS)


def per_thread_table(phases: list[Phase]) -> None:
    """Mean CPU per thread group, per case, size and mode (share of one core)."""
    print("\nper-thread CPU, mean of the phases (share of one core; ended: threads that ended "
          "between two looks, 0.5 s apart: stream threads, mostly)")
    print(f"  {'case':<5} {'size':<7} {'mode':<5} {'total':>7} "
          + " ".join(f"{g:>8}" for g in GROUPS))
    keys = dict.fromkeys((p.case, p.size, p.mode) for p in phases if p.error is None)
    for case, size, mode in keys:
        ps = [p for p in phases if (p.case, p.size, p.mode) == (case, size, mode)
              and p.error is None]
        cells = " ".join(f"{mean([p.threads.get(g, 0.0) for p in ps]):8.2%}" for g in GROUPS)
        print(f"  {case:<5} {size:<7} {mode:<5} {mean([p.cpu_share for p in ps]):7.2%} {cells}")
    print()


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def paired_words(ran: list[Phase], size: str, name: str) -> str:
    """The decode ratio from adjacent phases (bare-tui, tui-bare, ...: each pair's drift is
    small, and linear drift cancels over the pairs), with its 95% t interval over the pairs: how
    far this machine's noise leaves the ratio unresolved."""
    from quanttui.core.run.stats import mean_interval

    sized = [p for p in ran if p.size == size]
    logs = []
    for a, b in zip(sized[0::2], sized[1::2], strict=False):
        if a.error is None and b.error is None and {a.mode, b.mode} == {"bare", "tui"}:
            t, bare = (a, b) if a.mode == "tui" else (b, a)
            if t.decode.get(name, 0) > 0 and bare.decode.get(name, 0) > 0:
                logs.append(math.log(t.decode[name] / bare.decode[name]))
    ci = mean_interval(logs)
    if ci is None:
        return ""
    return (f" (by adjacent pairs ×{math.exp(mean(logs)):.3f}, 95% interval "
            f"{math.exp(ci[0]):.3f}-{math.exp(ci[1]):.3f} over {len(logs)} pairs)")


def judge(phases: list[Phase], sizes: list[str], names: list[str], cases: list[str]) -> int:
    t = Targets("tui_overhead")
    for case in cases:
        ran = [p for p in phases if p.case == case]
        broken = [p for p in ran if p.error is not None]
        t.check(f"{case} case: phases run to the end", "≥", len(ran), len(ran) - len(broken),
                detail="; ".join(f"{p.size} {p.mode}: {p.error}" for p in broken[:2]))
        for size in sizes:
            ok = [p for p in ran if p.size == size and p.error is None]
            tui = [p for p in ok if p.mode == "tui"]
            bare = [p for p in ok if p.mode == "bare"]
            tui_cpu, bare_cpu = mean([p.cpu_share for p in tui]), mean([p.cpu_share for p in bare])
            ratio = tui_cpu / bare_cpu if bare_cpu else float("nan")
            if case == "real":
                t.check(f"TUI CPU at {size}, two llama-servers streaming", "≤", 0.015, tui_cpu,
                        "%", detail=f"of one core; bare client {bare_cpu:.2%}, TUI/bare "
                                    f"{ratio:.2f}")
                idle = [p.idle_share for p in tui if p.idle_share is not None]
                t.check(f"TUI CPU at {size}, idle (servers up, no run)", "≤", 0.003,
                        mean(idle) if idle else None, "%", detail=f"{len(idle)} phase(s)")
                frames = [p.first_frame_s for p in tui if p.first_frame_s is not None]
                t.check(f"first frame at {size}, servers up", "≤", 0.8,
                        median(frames) if frames else None, "s",
                        detail=f"median of {len(frames)} start(s)"
                               + (f", max {max(frames):.2f} s" if frames else ""))
                ratios = {}
                for n in names:
                    td, bd = mean([p.decode[n] for p in tui]), mean([p.decode[n] for p in bare])
                    ratios[n] = td / bd if bd else float("nan")
                unknown = any(r != r for r in ratios.values())  # NaN: nothing finished
                worst = None if unknown or not ratios else min(ratios.values())
                note = ("" if not unknown else "; no phase of both kinds ran to the end"
                        if not (tui and bare) else "; no request finished in a window")
                t.check(f"decode tok/s with the TUI / bare client at {size}", "≥", 0.98, worst,
                        detail="worse server; " + ", ".join(
                            f"{n} {r:.3f}{paired_words(ran, size, n)}"
                            for n, r in ratios.items()) + note)
            else:
                # Reading 2,000 events a second costs the client itself several % of a core;
                # the TUI's own share on top of that is what it owns.
                t.check(f"TUI CPU beyond the bare client at {size}, two fake servers × 1,000 "
                        "tok/s streaming", "≤", 0.02, tui_cpu - bare_cpu, "%",
                        detail=f"TUI {tui_cpu:.2%}, bare client {bare_cpu:.2%} of one core")
    return t.finish()


# ------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="measured seconds of streaming per phase, real servers")
    ap.add_argument("--fast-seconds", type=float, default=15.0,
                    help="measured seconds of streaming per phase, fast case")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before each measurement")
    ap.add_argument("--idle-seconds", type=float, default=10.0,
                    help="measured idle seconds per TUI phase, real servers (0: none)")
    # Eight: four 30 s phases per mode. With four, one phase's drift in the servers' own speed
    # (30-39 tok/s within a block on a 2-core VM) moved the decode ratio by 2-8%.
    ap.add_argument("--phases", type=int, default=8,
                    help="phases per size, real case (ABBA order: bare, tui, tui, bare)")
    ap.add_argument("--fast-phases", type=int, default=4, help="phases per size, fast case")
    ap.add_argument("--sizes", default="160x48,80x24", help="terminal sizes, COLSxROWS,...")
    ap.add_argument("--cases", default="real,fast", help="real, fast or both")
    ap.add_argument("--n-predict", type=int, default=N_PREDICT, help="per request, real case")
    ap.add_argument("--fast-n-predict", type=int, default=FAST_N_PREDICT,
                    help="per request, fast case")
    ap.add_argument("--bare-child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_child:
        n, *urls = args.bare_child
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(bare_client(urls, int(n)))
        return 0
    if min(args.phases, args.fast_phases) < 2:
        ap.error("--phases, --fast-phases: at least 2 (one bare, one tui)")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not cases or set(cases) - {"real", "fast"}:
        ap.error("--cases: real, fast or real,fast")
    sizes = [(int(c), int(r)) for c, r in (s.split("x") for s in args.sizes.split(","))]
    size_names = [f"{c}x{r}" for c, r in sizes]

    import quanttui
    from quanttui import demo
    from quanttui.core.models.servers import LaunchSpec, ManagedServer

    # The first frame is measured as installed: bytecode current, as scripts/setup.sh and pip
    # leave it (sources edited since, with PYTHONDONTWRITEBYTECODE set, compile at every start).
    compileall.compile_dir(Path(quanttui.__file__).parent, quiet=2)

    names = ["Q4_K_M", "Q8_0"]
    phases: list[Phase] = []
    print(f"{psutil.cpu_count()} CPUs; TUI at {', '.join(size_names)}, TERM=xterm-256color; "
          f"real: n_predict {args.n_predict}, ignore_eos, {args.seconds:g} s per phase; fast: "
          f"n_predict {args.fast_n_predict}, {args.fast_seconds:g} s per phase; settle "
          f"{args.settle:g} s; {args.phases} phases per size (fast: {args.fast_phases})",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="quanttui-bench-") as tmp:
        if "real" in cases:
            models = demo.prepare(quants=tuple(names),
                                  say=lambda m: print(m, file=sys.stderr))
            servers = [ManagedServer(LaunchSpec(model=models[q], threads=1), name=q)
                       for q in names]
            try:
                for s in servers:
                    s.start()
                for s in servers:
                    s.wait_ready_sync(120)
                print(f"real: {', '.join(f'{s.label} {s.url} (pid {s.pid})' for s in servers)}",
                      flush=True)
                phases += run_case("real", names, [s.url for s in servers], args, sizes,
                                   Path(tmp))
            finally:
                for s in servers:
                    s.stop()
        if "fast" in cases:
            with fake_server_process(FAST_DELAY) as u1, fake_server_process(FAST_DELAY) as u2:
                print(f"fast: fake servers {u1}, {u2} at {1 / FAST_DELAY:,.0f} tok/s each",
                      flush=True)
                phases += run_case("fast", ["fastA", "fastB"], [u1, u2], args, sizes,
                                   Path(tmp))
    per_thread_table(phases)
    return judge(phases, size_names, names, cases)


if __name__ == "__main__":
    sys.exit(main())
