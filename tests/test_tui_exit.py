"""Servers started from the TUI's model pane die with quanttui: `q`, SIGTERM, SIGHUP (an SSH
connection dropping) and SIGKILL. quanttui runs in a real pseudo-terminal, driven by keys."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
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

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"no {text!r} on screen; the end of it:\n"
                                     f"{self.out[-3000:].decode(errors='replace')}")
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
    term.wait_for("No servers yet")
    term.press(b"l")
    term.wait_for("exit-tui-Q4_K_M.gguf")
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
