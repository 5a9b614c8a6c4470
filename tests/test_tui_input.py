"""The input thread sleeps until input comes (tui.input_thread): an idle quanttui doesn't wake ten
times a second to poll the terminal, and keys still work: a lone Escape (which the key parser
holds back in case a sequence follows), a key, and `q` leaving at once. quanttui runs in a real
pseudo-terminal."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quanttui.testing.fake_server import FakeLlamaServer
from test_tui_exit import Terminal

IDLE_S = 3.0


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Terminal]:
    with FakeLlamaServer() as a, FakeLlamaServer() as b:
        cfg = tmp_path / "quanttui.toml"
        cfg.write_text(
            f'[run]\nexport_dir = "{tmp_path / "exports"}"\n[models]\ndefault_places = false\n'
            f'[[servers]]\nname = "A"\nurl = "{a.url}"\n[[servers]]\nname = "B"\nurl = "{b.url}"\n'
            '[hardware]\npoll_interval = 5.0\n')
        t = Terminal(["--config", str(cfg)], tmp_path, size=(120, 36))
        try:
            # up, and both servers asked about (the start-up probe is done with the screen)
            t.wait_until(lambda s: s.display().count("● ") >= 2 and "decode" in s.display(),
                         "both servers' columns", 120)
            yield t
        finally:
            t.close()


def _threads(pid: int) -> dict[int, tuple[str, int]]:
    """Each thread: tid -> (its OS name, quanttui.core.threads; voluntary context switches: a
    thread going to sleep, so one per wake-up). Names repeat (asyncio's workers take the
    process's), so threads are told apart by tid."""
    out: dict[int, tuple[str, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        out[int(tid)] = (name, int(line.split()[1]))
        except OSError:
            pass  # a thread that ended
    return out


def test_an_idle_tui_sleeps_and_keys_still_work(term: Terminal) -> None:
    pid = term.proc.pid
    before = _threads(pid)
    inputs = [tid for tid, (name, _) in before.items() if name == "qt-input"]
    assert len(inputs) == 1, f"not one thread named qt-input: {before}"
    t0 = time.monotonic()
    time.sleep(IDLE_S)  # the window measured: nothing is awaited in it
    after = _threads(pid)
    seconds = time.monotonic() - t0
    # The input thread alone: it wakes for input, for the exit flag, or while the key parser
    # holds an Escape back, none of which happen here (Textual's own loop wakes it 10 times a
    # second, ~30 here, however loaded the machine). The other threads wake for work that may
    # fall in any window (the poller's tick, the frame drawn from it, written by the output
    # thread; each also waits for the GIL while another thread holds it).
    tid = inputs[0]
    assert tid in after, "the input thread ended"
    woke = after[tid][1] - before[tid][1]
    every = {f"{name} {t}": n - before.get(t, (name, 0))[1] for t, (name, n) in after.items()}
    assert woke <= 1, f"the input thread woke {woke} times in {seconds:.1f} s idle; all: {every}"

    # A lone Escape: the parser holds it back in case a sequence follows, then lets it go.
    term.press(b"h")
    term.wait_until(lambda s: "History" in s.display(), "the history screen")
    term.press(b"\x1b")
    term.wait_until(lambda s: "History" not in s.display() and "decode" in s.display(),
                    "back on the compare screen after Escape")
    term.press(b"q")
    assert term.proc.wait(30) == 0  # the input thread woken to leave, not waited for
