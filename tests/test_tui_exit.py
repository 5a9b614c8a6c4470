"""Servers started from the TUI's model pane die with quanttui: `q`, SIGTERM, SIGHUP (an SSH
connection dropping) and SIGKILL. quanttui runs in a real pseudo-terminal, driven by keys."""

from __future__ import annotations

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
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_managed_exit import healthy, servers_for, wait_gone

pytestmark = pytest.mark.real
CSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]")


class Terminal:
    """quanttui in a pseudo-terminal: keys in, screen bytes out (kept for error messages)."""

    def __init__(self, args: list[str], cwd: Path, size: tuple[int, int] = (160, 40)) -> None:
        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(cols), LINES=str(rows))
        self.proc = subprocess.Popen([sys.executable, "-m", "quanttui", *args], stdin=slave,
                                     stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True)
        os.close(slave)
        self.master = master
        self.out = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if ready:
                    data = os.read(self.master, 65536)
                    if not data:
                        return
                    self.out += data
            except OSError:
                return

    def screen_text(self) -> bytes:
        """What was written, without escape sequences: text that Textual wrote in pieces (a
        style or a cursor move between them) reads whole."""
        return CSI.sub(b"", bytes(self.out))

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out and text.encode() not in self.screen_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no {text!r} on screen; the end of it:\n"
                                     f"{self.screen_text()[-3000:].decode(errors='replace')}")
            time.sleep(0.1)

    def press(self, *keys: bytes) -> None:
        for k in keys:
            os.write(self.master, k)
            time.sleep(0.3)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
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
    term.press(b" ", b"\x1b[B", b" ", b"\r")  # space, down, space, Enter
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        procs = servers_for(marker)
        if len(procs) == 2 and all(healthy(p) for p in procs):
            term.wait_for("server started")
            return
        assert term.proc.poll() is None, term.out[-3000:].decode(errors="replace")
        time.sleep(0.3)
    raise AssertionError("the servers did not start")


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
        assert f"stopped by signal {sig.name}".encode() in tui.out


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


def _read_until(master: int, text: bytes, proc: subprocess.Popen[bytes], timeout: float
                ) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while text not in out:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"no {text!r} on screen; the end of it:\n"
                                 f"{out[-2000:].decode(errors='replace')}")
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            out += os.read(master, 65536)
    return out


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
        try:
            _read_until(master, b"decode", proc, 120)  # the compare screen is up
            assert len(servers_for(tmp_path)) == 2, f"try {i}: the servers are not running"
            os.write(master, b"r")  # run the suite: both stream
            _read_until(master, b"t/s", proc, 60)
            time.sleep(0.5 + 0.1 * (i % 5))  # somewhere in the middle of a frame
            t0 = time.monotonic()
            os.close(master)  # the terminal goes away
            master = -1
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"try {i}: quanttui still running 5 s after its terminal "
                                     "went away") from None
            assert time.monotonic() - t0 <= 5
            assert wait_gone(tmp_path, 5) == [], f"try {i}: llama-server left running"
        finally:
            if master >= 0:
                os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
