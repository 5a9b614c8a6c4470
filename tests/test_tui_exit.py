"""Servers started from the TUI's model pane die with quanttui: `q`, SIGTERM, SIGHUP (an SSH
connection dropping) and SIGKILL; and a run on when quanttui leaves (`q`, SIGTERM, SIGHUP, the
terminal going away) is kept in the history. quanttui runs in a real pseudo-terminal, driven by
keys."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest

from quanttui.config import load_config
from quanttui.core.reports.history import Store
from quanttui.core.reports.run_file import results_from_dict
from quanttui.core.run.plan import ServerSpec
from quanttui.core.run.session import Session
from quanttui.testing.fake_server import COMPLETION_PATHS, FakeLlamaServer, Fault
from quanttui.tui import exit_deadline
from quanttui.tui.app import build_app
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.state import RunOptions, build_plan
from test_managed_exit import healthy, servers_for, wait_gone

pytestmark = pytest.mark.real
CSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _take_ctty() -> None:
    """In the child: a session of its own with the pty as its controlling terminal, as in an SSH
    or tmux session (when the terminal goes away, the kernel hangs it up: SIGHUP, and reads and
    writes fail)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Screen:
    """What a terminal shows, emulated (pyte): Textual redraws only what changed, often part of
    a line, so a text can be on the screen without ever being written whole. Also the bytes as
    written, for a text that was on the screen only for a moment (a toast gone by the time we
    look)."""

    def __init__(self, cols: int, rows: int) -> None:
        self._screen = pyte.Screen(cols, rows)
        self._stream = pyte.ByteStream(self._screen)
        self.out = bytearray()

    def feed(self, data: bytes) -> None:
        self.out += data
        self._stream.feed(data)

    def display(self) -> str:
        """The screen's lines that are not blank."""
        return "\n".join(line.rstrip() for line in self._screen.display if line.strip())

    def shows(self, text: str) -> bool:
        raw = text.encode()
        return (text in self.display() or raw in self.out
                or raw in CSI.sub(b"", bytes(self.out)))


class Terminal:
    """quanttui in a pseudo-terminal: keys in, the screen out (emulated, and the bytes as
    written, kept for error messages). `ctty`: the pty is its controlling terminal (else it
    only reads and writes it)."""

    def __init__(self, args: list[str], cwd: Path, size: tuple[int, int] = (160, 40),
                 ctty: bool = False) -> None:
        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        self.proc = subprocess.Popen([sys.executable, "-m", "quanttui", *args], stdin=slave,
                                     stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=not ctty,
                                     preexec_fn=_take_ctty if ctty else None)
        os.close(slave)
        self.master = master
        self.out = bytearray()  # appended to by the reader thread, and only there
        self._screen = Screen(cols, rows)  # fed from `out` by the test's thread, when it looks
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if ready:
                    data = os.read(self.master, 65536)
                    if not data:
                        return
                    self.out += data
            except OSError:
                return

    def screen(self) -> Screen:
        """The screen as of the bytes read so far."""
        fed = len(self._screen.out)
        self._screen.feed(bytes(self.out[fed:]))
        return self._screen

    def screen_text(self) -> bytes:
        """What was written, without escape sequences: text that Textual wrote in pieces (a
        style or a cursor move between them) reads whole."""
        return CSI.sub(b"", bytes(self.out))

    def wait_until(self, shown: Callable[[Screen], bool], what: str, timeout: float = 60
                   ) -> None:
        """Until `shown(screen)`. Once quanttui has exited, until everything it wrote has been
        read (the reader ends at the pty's end), then a last look."""
        deadline = time.monotonic() + timeout
        while not shown(self.screen()):
            if self.proc.poll() is not None and not self._reader.is_alive():
                if shown(self.screen()):
                    return
                raise AssertionError(f"{what} not shown, quanttui exited "
                                     f"({self.proc.returncode}); its screen:\n"
                                     f"{self.screen().display()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not shown in {timeout:.0f} s; the screen:\n"
                                     f"{self.screen().display()}")
            time.sleep(0.1)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        self.wait_until(lambda s: s.shows(text), repr(text), timeout)

    def press(self, *keys: bytes) -> None:
        for k in keys:
            os.write(self.master, k)
            time.sleep(0.3)

    def hang_up(self) -> None:
        """The terminal goes away (the SSH window or the tmux session is closed)."""
        self._stop.set()
        self._reader.join(10)  # never a read on the fd number once it is closed (and reused)
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if self.master >= 0:
            self._reader.join(10)  # it ends by itself once it has read all quanttui wrote
            self._stop.set()
            self._reader.join(10)
            with contextlib.suppress(OSError):
                os.close(self.master)


@pytest.fixture
def tui(demo_models: dict[str, Path], tmp_path: Path) -> Iterator[Terminal]:
    models = tmp_path / "models"
    models.mkdir()
    for q in ("Q4_K_M", "Q2_K"):  # links of the test's own: its servers are told apart by them
        (models / f"exit-tui-{q}.gguf").symlink_to(demo_models[q])
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text(f'[models]\ndirs = ["{models}"]\ndefault_places = false\n'
                   f'[run]\nexport_dir = "{tmp_path / "exports"}"\n')
    term = Terminal(["--config", str(cfg)], tmp_path)
    yield term
    term.close()


def start_both(term: Terminal, marker: Path) -> None:
    """As a user would: the servers screen (none configured), `l`, mark both files, Enter."""
    term.wait_for("No servers yet", 120)  # a loaded machine can take a while to start Python
    term.press(b"l")
    term.wait_for("exit-tui-Q4_K_M.gguf", 120)
    term.press(b" ", b"\x1b[B", b" ")  # space, down, space
    # Enter once both are marked: else it would start the highlighted file alone
    term.wait_until(lambda s: s.display().count("✓") == 2, "both files marked (two ✓)", 60)
    term.press(b"\r")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        procs = servers_for(marker)
        if len(procs) == 2 and all(healthy(p) for p in procs):
            term.wait_for("server started")
            return
        assert term.proc.poll() is None, term.screen().display()
        time.sleep(0.3)
    raise AssertionError(f"the servers did not start; the screen:\n{term.screen().display()}")


def test_quit_stops_pane_servers(tui: Terminal, tmp_path: Path) -> None:
    start_both(tui, tmp_path)
    tui.press(b"q")
    assert tui.proc.wait(30) == 0
    assert wait_gone(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_signal_stops_pane_servers(tui: Terminal, tmp_path: Path, sig: signal.Signals) -> None:
    start_both(tui, tmp_path)
    os.kill(tui.proc.pid, sig)
    code = tui.proc.wait(30)
    assert wait_gone(tmp_path) == [], f"llama-server left running after {sig.name}"
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + sig  # left like `q` does, terminal restored
        tui.wait_for(f"stopped by signal {sig.name}", 30)  # all it wrote, read


def _open_tui_with_ctty(args: list[str], cwd: Path, env: dict[str, str]
                        ) -> tuple[subprocess.Popen[bytes], int]:
    """quanttui on a pty that is its controlling terminal, as in an SSH or tmux session: when
    the terminal goes away, the kernel hangs it up (SIGHUP) and its reads and writes fail."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

    def ctty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "quanttui", *args], stdin=slave, stdout=slave,
                            stderr=slave, env=env, cwd=cwd, preexec_fn=ctty)
    os.close(slave)
    return proc, master


def _read_until(master: int, screen: Screen, text: str, proc: subprocess.Popen[bytes],
                timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not screen.shows(text):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"no {text!r} on screen (exit {proc.poll()}); the screen:\n"
                                 f"{screen.display()}")
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            screen.feed(os.read(master, 65536))


def test_terminal_loss(demo_models: dict[str, Path], tmp_path: Path) -> None:
    """The terminal goes away while two managed servers stream (the SSH window or the tmux
    session is closed), 20 times in a row: each time quanttui is gone within 5 s and no
    llama-server is left. The servers were seen running first."""
    links = []
    for q in ("Q4_K_M", "Q2_K"):
        link = tmp_path / f"loss-{q}.gguf"
        link.symlink_to(demo_models[q])
        links.append(link)
    env = dict(os.environ, TERM="xterm-256color", QUANTTUI_CACHE_DIR=str(tmp_path / "cache"))
    args = ["run", "--model", str(links[0]), "--model", str(links[1]), "-n", "400",
            "--suite", "quick", "--set", f"run.export_dir={tmp_path / 'exports'}"]
    for i in range(20):
        proc, master = _open_tui_with_ctty(args, tmp_path, env)
        screen = Screen(80, 24)
        try:
            _read_until(master, screen, "decode", proc, 120)  # the compare screen is up
            assert len(servers_for(tmp_path)) == 2, f"try {i}: the servers are not running"
            os.write(master, b"r")  # run the suite: both stream
            _read_until(master, screen, "t/s", proc, 60)
            time.sleep(0.5 + 0.1 * (i % 5))  # somewhere in the middle of a frame
            t0 = time.monotonic()
            os.close(master)  # the terminal goes away
            master = -1
            try:
                code = proc.wait(5)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"try {i}: quanttui still running 5 s after its terminal "
                                     "went away") from None
            assert time.monotonic() - t0 <= 5
            assert code == 128 + signal.SIGHUP, f"try {i}: exit {code}"
            assert wait_gone(tmp_path, 5) == [], f"try {i}: llama-server left running"
        finally:
            if master >= 0:
                os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def _no_hang_up_signal() -> None:
    """In the child: as _take_ctty, with SIGHUP ignored, as under `nohup` (or a job runner that
    ignores it): only failed reads and writes can tell that the terminal went away."""
    _take_ctty()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.mark.parametrize("when", ["before the screen", "while its servers start"])
def test_terminal_gone_early_with_sighup_ignored(demo_models: dict[str, Path], tmp_path: Path,
                                                 when: str) -> None:
    """The terminal goes away before the app asked to be told (Textual's first writes failed,
    or the servers' start found it gone and sent its lines to /dev/null), SIGHUP ignored: the
    app leaves as soon as it is up (129), and no server is left. It ran on for good, its
    servers with it (here until the 60 s below; one way a test_terminal_loss quanttui could
    outlive its pytest, as one was seen to by 25 minutes)."""
    if when == "before the screen":
        with FakeLlamaServer() as a, FakeLlamaServer(model="fake-Q8_0.gguf", ftype="Q8_0") as b:
            args = ["--config", str(slow_run_config(tmp_path, (a, b)))]
            code = _lose_terminal_at_once(args, tmp_path, None)
    else:
        links = []
        for q in ("Q4_K_M", "Q2_K"):
            links.append(tmp_path / f"early-{q}.gguf")
            links[-1].symlink_to(demo_models[q])
        args = ["run", "--model", str(links[0]), "--model", str(links[1]), "--set",
                f"run.export_dir={tmp_path / 'exports'}"]
        # once it has begun to start them (a fixed 1.5 s could come before Python is up)
        code = _lose_terminal_at_once(args, tmp_path, lambda: bool(servers_for(tmp_path)))
    assert code == HUP
    assert wait_gone(tmp_path, 5) == []


def _lose_terminal_at_once(args: list[str], cwd: Path, when: Callable[[], bool] | None
                           ) -> int:
    """quanttui on a pty that is its controlling terminal, SIGHUP ignored; the terminal goes
    away at the start, or once `when()` (looked at every 50 ms; 120 s at most). Its exit code
    (it must leave within 60 s)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", QUANTTUI_CACHE_DIR=str(cwd / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "quanttui", *args], stdin=slave,
                            stdout=slave, stderr=slave, env=env, cwd=cwd,
                            preexec_fn=_no_hang_up_signal)
    os.close(slave)
    try:
        deadline = time.monotonic() + 120
        while when is not None and not when():
            assert time.monotonic() < deadline and proc.poll() is None, \
                f"the moment to lose the terminal never came (exit {proc.poll()})"
            if select.select([master], [], [], 0.05)[0]:
                os.read(master, 65536)
        os.close(master)
        try:
            return proc.wait(60)
        except subprocess.TimeoutExpired:
            raise AssertionError("quanttui still running 60 s after its terminal went away "
                                 "(SIGHUP ignored)") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# ---------------------------------------------------------------------- a run on when leaving

# How each way out ends the process (README, exit codes): q is a normal exit; a signal is
# 128 + its number; the terminal going away is a hang-up.
# "no hang-up": the pty is not quanttui's controlling terminal, so no SIGHUP comes when it goes
# away: only its reads and writes fail.
HUP = 128 + signal.SIGHUP
EXIT_CODES = {"q": 0, "SIGTERM": 128 + signal.SIGTERM, "SIGHUP": HUP,
              "SIGINT": 128 + signal.SIGINT, "terminal lost": HUP,
              "terminal lost, no hang-up": HUP}


@pytest.fixture
def slow_pair() -> Iterator[tuple[FakeLlamaServer, FakeLlamaServer]]:
    # 40 tokens 50 ms apart: 2 s a request, so the test acts while one is surely in flight
    with FakeLlamaServer(token_delay=0.05) as a, \
            FakeLlamaServer(token_delay=0.05, model="fake-Q8_0.gguf", ftype="Q8_0") as b:
        yield a, b


def completions(fake: FakeLlamaServer) -> int:
    return sum(1 for r in list(fake.requests) if r["path"] in COMPLETION_PATHS)


def start_run(term: Terminal, fakes: tuple[FakeLlamaServer, ...], until: int) -> list[int]:
    """The compare screen up and both servers asked, `r`; back once each server has been sent
    `until` requests. Returns how many each had been sent: under the simultaneous schedule the
    next request goes out once both servers finished the last one, so all but the last of them
    had finished and been recorded."""
    term.wait_for("decode", 120)  # a loaded machine can take a while to start Python
    deadline = time.monotonic() + 120
    while not all(f.requests for f in fakes):  # the start-up probe reached both
        assert time.monotonic() < deadline and term.proc.poll() is None, \
            term.screen().display()
        time.sleep(0.1)
    term.press(b"r")
    deadline = time.monotonic() + 120
    while True:
        sent = [completions(f) for f in fakes]
        if min(sent) >= until:
            return sent
        assert time.monotonic() < deadline and term.proc.poll() is None, \
            f"sent {sent}; the screen:\n{term.screen().display()}"
        time.sleep(0.02)


def slow_run_config(tmp_path: Path, fakes: tuple[FakeLlamaServer, ...]) -> Path:
    cfg = tmp_path / "quanttui.toml"
    servers = "".join(f'[[servers]]\nname = "{n}"\nurl = "{f.url}"\n'
                      for n, f in zip("AB", fakes, strict=True))
    cfg.write_text(
        f'[run]\nwarmup = 0\nrepetitions = 20\nexport_dir = "{tmp_path / "exports"}"\n'
        '[generation]\nn_predict = 40\n[prompts]\nsuites = ["quick"]\n'
        f'[models]\ndefault_places = false\n{servers}')
    return cfg


def leave(term: Terminal, how: str) -> int:
    if how == "q":
        term.press(b"q")
    elif how.startswith("terminal lost"):
        term.hang_up()
    else:
        os.kill(term.proc.pid, signal.Signals[how])
    try:
        return term.proc.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"quanttui still running 60 s after {how}") from None


@pytest.mark.parametrize("how", list(EXIT_CODES))
def test_run_is_kept_on_every_exit(slow_pair: tuple[FakeLlamaServer, FakeLlamaServer],
                                   tmp_path: Path, how: str) -> None:
    """Mid-run, quanttui leaves (q, SIGTERM, SIGHUP, SIGINT from `kill -INT`, or its
    controlling terminal goes away): the run is in the history, marked interrupted, with every
    request that had finished, and the one in flight on each server recorded as cancelled; the
    exit code is the README's."""
    term = Terminal(["--config", str(slow_run_config(tmp_path, slow_pair))], tmp_path,
                    ctty=how == "terminal lost")
    try:
        sent = start_run(term, slow_pair, 3)
        code = leave(term, how)
    finally:
        term.close()
    screen = term.screen_text()[-3000:].decode(errors="replace")
    assert code == EXIT_CODES[how], screen
    rows = Store().list()
    assert len(rows) == 1, screen
    run = results_from_dict(Store().get(rows[0].id))
    assert run.interrupted
    for name, fake, n in zip("AB", slow_pair, sent, strict=True):
        measured = [r for r in run.records if r.server == name and not r.warmup]
        finished = [r for r in measured if r.ok]
        assert len(finished) >= n - 1, f"{name}: {len(finished)} finished of {n} sent"
        assert all(r.error_kind == "cancelled" for r in measured if not r.ok), measured
        assert len(measured) <= completions(fake)
    if not how.startswith("terminal lost"):  # said on the terminal once the screen is restored
        assert f"the stopped run is in the history as #{rows[0].id}" in screen


def test_run_with_nothing_finished_is_not_kept(
        slow_pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    """Left while the first request of each server streams: nothing to compare, nothing stored
    (README)."""
    hold = Fault("hold", after=5, delay=120)  # no request ever finishes
    for fake in slow_pair:
        fake.fault = hold
    term = Terminal(["--config", str(slow_run_config(tmp_path, slow_pair))], tmp_path)
    try:
        start_run(term, slow_pair, 1)
        code = leave(term, "SIGTERM")
    finally:
        term.close()
        hold.release.set()
    assert code == EXIT_CODES["SIGTERM"]
    assert Store().list() == []
    assert "the stopped run had no finished request" in term.screen_text().decode(errors="replace")


def test_exit_deadline_stores_what_the_loop_could_not(fake: FakeLlamaServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's loop stuck as quanttui leaves: when the exit deadline passes, its thread kills
    the servers, stores what the run finished (marked interrupted; once, however often asked),
    then exits with the code it was armed with."""
    cfg = load_config(None, {"generation.n_predict": 4, "run.warmup": 0,
                             "prompts.suites": ["quick"]})
    spec = ServerSpec("A", fake.url)
    session = Session([spec], build_plan(cfg, RunOptions.from_config(cfg), None))
    asyncio.run(session.run())
    app = build_app(cfg, ServerRegistry.from_config(cfg, [spec]))
    app._last_session = session  # the run that was on (the app never got to store it)
    done = threading.Event()
    steps: list[object] = []
    monkeypatch.setattr(exit_deadline.os, "_exit", lambda code: (steps.append(code), done.set()))
    deadline = exit_deadline.ExitDeadline(lambda: steps.append("kill"), seconds=0.1)
    deadline.rescue = app._rescue
    deadline.arm(128 + signal.SIGHUP)
    assert done.wait(60)
    assert steps == ["kill", 128 + signal.SIGHUP]
    app._rescue()  # asked again: already stored
    rows = Store().list()
    assert len(rows) == 1 and app.stored_on_leaving == rows[0].id
    run = results_from_dict(Store().get(rows[0].id))
    assert run.interrupted
    assert len(run.records) == len(session.results.records) > 0
    assert all(r.ok for r in run.records)
