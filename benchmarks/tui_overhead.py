"""What the TUI costs while two real llama-servers stream: its own CPU, and the servers' speed.

Starts two llama-servers on the demo quants (Gemma 3 270M Q4_K_M and Q8_0, one thread each),
then alternates phases in one run (bare, tui, tui, bare, ...: ABBA, so drift cancels):

- bare: a plain streaming client (quanttui's LlamaClient, no UI) keeps both servers busy;
- tui:  `quanttui run` in a real pseudo-terminal (TERM=xterm-256color, --size), started with
        the `r` key as a user would, streaming the same prompts with the same settings.

Per phase, after a settle time, it measures the client process's CPU time over wall time (100%
= one core) and each server's decode speed from its own counters (llama-server /metrics:
tokens_predicted_total / tokens_predicted_seconds_total), then prints, per server, decode tok/s
with the TUI attached as a ratio to the bare client's.

    .venv/bin/python benchmarks/tui_overhead.py                 # ~2.5 min
    .venv/bin/python benchmarks/tui_overhead.py --seconds 8 --phases 2   # a quick look

Targets (issue 4): TUI ≤ 3% of one core; ratio ≥ 0.97.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import pty
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

N_PREDICT = 128


# ------------------------------------------------------------------------------ the bare client


async def bare_client(urls: list[str], n_predict: int) -> None:
    """Stream the quick suite to every server, each in its own loop, until killed."""
    from quanttui.core.llama.client import LlamaClient
    from quanttui.core.llama.params import GenerationParams
    from quanttui.core.suites.prompts import builtin_suite

    prompts = [p.text for p in builtin_suite("quick")]
    params = GenerationParams(n_predict=n_predict, ignore_eos=True)

    async def loop(url: str) -> None:
        async with LlamaClient(url) as client:
            i = 0
            while True:
                await client.complete(prompts[i % len(prompts)], params)
                i += 1

    await asyncio.gather(*(loop(u) for u in urls))


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
    mode: str
    cpu_share: float = 0.0
    rss_mb: float = 0.0
    decode: dict[str, float] = field(default_factory=dict)


class Child:
    """The measured client process: the bare loop, or quanttui in a pseudo-terminal."""

    def __init__(self, mode: str, names: list[str], urls: list[str], size: tuple[int, int],
                 n_predict: int, workdir: Path) -> None:
        self.mode = mode
        self.master: int | None = None
        self._drain: threading.Thread | None = None
        self.screen = bytearray()
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
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        env.pop("COLORTERM", None)
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
                if ready:
                    data = os.read(self.master, 65536)
                    if not data:
                        return
                    self.screen += data
                    del self.screen[:-20000]
            except OSError:
                return

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"quanttui did not show {text!r}; last output:\n"
                                   f"{self.screen[-2000:].decode(errors='replace')}")
            time.sleep(0.1)

    def start(self) -> None:
        if self.master is None:
            return
        self.wait_for("ready")
        os.write(self.master, b"r")  # as a user would: run the suite
        self.wait_for("▶")

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


def measure(child: Child, names: list[str], urls: list[str], settle: float,
            seconds: float) -> Phase:
    child.start()
    time.sleep(settle)
    proc = psutil.Process(child.proc.pid)
    c0 = sum(proc.cpu_times()[:2])
    w0 = time.monotonic()
    s0 = [server_counters(u) for u in urls]
    time.sleep(seconds)
    c1 = sum(proc.cpu_times()[:2])
    w1 = time.monotonic()
    s1 = [server_counters(u) for u in urls]
    phase = Phase(child.mode, (c1 - c0) / (w1 - w0), proc.memory_info().rss / 1e6)
    for name, (t0, p0), (t1, p1) in zip(names, s0, s1, strict=True):
        phase.decode[name] = (t1 - t0) / (p1 - p0) if p1 > p0 else float("nan")
    return phase


# ------------------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before measuring")
    ap.add_argument("--phases", type=int, default=4, help="phases in all (ABBA order)")
    ap.add_argument("--size", default="160x48", help="terminal size of the TUI, COLSxROWS")
    ap.add_argument("--n-predict", type=int, default=N_PREDICT)
    ap.add_argument("--bare-child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_child:
        n, *urls = args.bare_child
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(bare_client(urls, int(n)))
        return 0

    from quanttui import demo
    from quanttui.core.models.servers import LaunchSpec, ManagedServer

    cols, rows = (int(x) for x in args.size.split("x"))
    models = demo.prepare(say=lambda m: print(m, file=sys.stderr))
    names = ["Q4_K_M", "Q8_0"]
    servers = [ManagedServer(LaunchSpec(model=models[q], threads=1), name=q) for q in names]
    phases: list[Phase] = []
    try:
        for s in servers:
            s.start()
        for s in servers:
            s.wait_ready_sync(120)
        urls = [s.url for s in servers]
        print(f"servers: {', '.join(f'{s.label} {s.url} (pid {s.pid})' for s in servers)}; "
              f"{psutil.cpu_count()} CPUs; TUI at {cols}x{rows}, TERM=xterm-256color; "
              f"n_predict {args.n_predict}, ignore_eos; {args.seconds:g} s per phase after "
              f"{args.settle:g} s settle")
        order = ["bare", "tui", "tui", "bare"]
        with tempfile.TemporaryDirectory(prefix="quanttui-bench-") as tmp:
            for i in range(args.phases):
                mode = order[i % 4]
                child = Child(mode, names, urls, (cols, rows), args.n_predict, Path(tmp))
                try:
                    phase = measure(child, names, urls, args.settle, args.seconds)
                finally:
                    child.stop()
                phases.append(phase)
                rates = "  ".join(f"{n} {phase.decode[n]:6.2f} tok/s" for n in names)
                print(f"phase {i + 1} {mode:4}: client CPU {phase.cpu_share:6.1%} of a core, "
                      f"RSS {phase.rss_mb:5.0f} MB   {rates}", flush=True)
                time.sleep(1.0)
    finally:
        for s in servers:
            s.stop()

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    tui = [p for p in phases if p.mode == "tui"]
    bare = [p for p in phases if p.mode == "bare"]
    tui_cpu, bare_cpu = mean([p.cpu_share for p in tui]), mean([p.cpu_share for p in bare])
    print()
    print(f"quanttui TUI CPU: {tui_cpu:.1%} of one core (bare streaming client: {bare_cpu:.1%})"
          f"   target ≤ 3%: {'PASS' if tui_cpu <= 0.03 else 'FAIL'}")
    ok = tui_cpu <= 0.03
    for n in names:
        t, b = mean([p.decode[n] for p in tui]), mean([p.decode[n] for p in bare])
        ratio = t / b if b else float("nan")
        ok &= ratio >= 0.97
        print(f"{n:7} decode: {t:6.2f} tok/s with the TUI, {b:6.2f} bare  ratio {ratio:.3f}"
              f"   target ≥ 0.97: {'PASS' if ratio >= 0.97 else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
