"""The input thread sleeps until input comes (tui.input_thread): an idle quanttui doesn't wake ten
times a second to poll the terminal, and keys still work: a lone Escape (which the key parser
holds back in case a sequence follows), a key, and `q` leaving at once. quanttui runs in a real
pseudo-terminal."""

from __future__ import annotations

import contextlib
import os
import select
import signal
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


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_the_waking_event_gives_its_pipe_back_and_opens_again() -> None:
    """The pipe lives while an input thread waits on it: closed when the thread ends (no
    descriptors left behind), opened again when Textual restarts the thread after a suspend;
    set with no pipe open, the event is an ordinary one."""
    from quanttui.tui.input_thread import WakingEvent

    before = _open_fds()
    ev = WakingEvent()
    ev.set()  # no pipe yet: an ordinary event
    assert ev.is_set() and _open_fds() == before
    ev.clear()
    for _ in range(3):  # a start, a suspend, a resume...
        ev.open()
        r = ev.read_fd
        assert not select.select([r], [], [], 0)[0], "readable before set"
        ev.set()
        assert ev.is_set() and select.select([r], [], [], 0)[0], "set did not wake the pipe"
        ev.clear()
        assert not ev.is_set() and not select.select([r], [], [], 0)[0], "clear left it readable"
        ev.close()
        assert _open_fds() == before, "the pipe's descriptors outlived close"
        ev.set()  # after close: sets, writes nowhere
        assert ev.is_set()
        ev.clear()


def _pipes(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
    return n


def _stopped(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


def test_keys_work_after_a_suspend_and_no_pipe_is_left(term: Terminal) -> None:
    """ctrl+z then `fg`: Textual stops the input thread and starts it again with the same exit
    event, whose pipe was given back at the stop and is opened again at the start."""
    pid = term.proc.pid
    pipes = _pipes(pid)
    for _ in range(2):
        os.kill(pid, signal.SIGTSTP)  # what ctrl+z sends
        deadline = time.monotonic() + 60
        while not _stopped(pid):
            assert time.monotonic() < deadline, "quanttui did not stop on SIGTSTP"
            time.sleep(0.05)
        os.kill(pid, signal.SIGCONT)  # what `fg` sends
        term.press(b"h")
        term.wait_until(lambda s: "History" in s.display(), "the history screen after a resume")
        term.press(b"\x1b")
        term.wait_until(lambda s: "History" not in s.display(), "back after Escape")
    assert _pipes(pid) == pipes, "a suspend left a pipe open"
    term.press(b"q")
    assert term.proc.wait(30) == 0
