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


def _stop_and_continue(pid: int, stop: int = signal.SIGTSTP) -> None:
    os.kill(pid, stop)
    deadline = time.monotonic() + 60
    while not _stopped(pid):
        assert time.monotonic() < deadline, f"quanttui did not stop on {signal.Signals(stop).name}"
        time.sleep(0.05)
    os.kill(pid, signal.SIGCONT)  # what `fg` sends


def test_keys_work_after_a_suspend_and_no_pipe_is_left(term: Terminal) -> None:
    """A job-control stop (`kill -TSTP`; in application mode the terminal sends no signal for
    ctrl+z) then `fg`: the app leaves application mode (the input thread stops) and takes it
    back (the thread starts again with the same exit event, whose pipe was given back at the
    stop and is opened again at the start)."""
    pid = term.proc.pid
    pipes = _pipes(pid)
    for _ in range(2):
        _stop_and_continue(pid)
        term.press(b"h")
        term.wait_until(lambda s: "History" in s.display(), "the history screen after a resume")
        term.press(b"\x1b")
        term.wait_until(lambda s: "History" not in s.display(), "back after Escape")
    assert _pipes(pid) == pipes, "a suspend left a pipe open"
    term.press(b"q")
    assert term.proc.wait(30) == 0


def _input_and_output_threads(pid: int) -> list[str]:
    return sorted(n for n, _ in _threads(pid).values() if n in ("qt-input", "qt-output"))


# Loaded by the quanttui under test (first on its PYTHONPATH): each write of the screen holds the
# writer queue's lock for a while, so a signal is most likely to come while the event loop holds
# it, which on a loaded machine happens by chance.
SLOW_WRITES = """
import time
from textual.drivers import _writer_thread

def write(self, text):
    with self._queue.mutex:
        time.sleep(0.2)
    self._queue.put(text)

_writer_thread.WriterThread.write = write
"""


def test_a_stop_that_comes_while_a_frame_is_written_still_stops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTSTP handled inside the signal handler (Textual's way) wrote to the screen's queue
    from the loop's own thread: where the loop was inside that queue's `put`, the handler waited
    for a lock its own thread held, and quanttui neither stopped nor drew again (CI, once). It
    is handled on the loop (tui.job_control)."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SLOW_WRITES)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(shim), os.environ.get("PYTHONPATH")) if p))
    with FakeLlamaServer(token_delay=0.01) as a, FakeLlamaServer(token_delay=0.01) as b:
        cfg = tmp_path / "quanttui.toml"
        cfg.write_text(
            f'[run]\nexport_dir = "{tmp_path / "exports"}"\n[models]\ndefault_places = false\n'
            f'[[servers]]\nname = "A"\nurl = "{a.url}"\n[[servers]]\nname = "B"\nurl = "{b.url}"\n')
        term = Terminal(["--config", str(cfg)], tmp_path, size=(120, 36))
        try:
            term.wait_until(lambda s: s.display().count("● ") >= 2 and "decode" in s.display(),
                            "both servers' columns", 120)
            pid = term.proc.pid
            term.press(b"r")  # a run: frames all the time
            term.wait_until(lambda s: "▶" in s.display(), "the run going", 60)
            for _ in range(3):
                _stop_and_continue(pid)
                deadline = time.monotonic() + 60  # application mode taken back, slow writes
                while _input_and_output_threads(pid) != ["qt-input", "qt-output"]:
                    assert time.monotonic() < deadline, _threads(pid)
                    time.sleep(0.1)
            term.press(b"q")
            assert term.proc.wait(60) == 0
        finally:
            term.close()


def test_a_plain_stop_and_continue_starts_nothing_twice(term: Terminal) -> None:
    """`kill -STOP` then `kill -CONT` (a debugger, a freezer) leaves application mode as it was:
    Textual's SIGCONT handler started it again anyway, a second input thread and a second writer
    beside the first, the two input threads sharing the keys."""
    pid = term.proc.pid
    assert _input_and_output_threads(pid) == ["qt-input", "qt-output"]
    _stop_and_continue(pid, signal.SIGSTOP)
    term.press(b"h")
    term.wait_until(lambda s: "History" in s.display(), "the history screen after a continue")
    # Textual's handler ran at the continue, before the loop could take the key
    assert _input_and_output_threads(pid) == ["qt-input", "qt-output"]
    term.press(b"q", b"q")
    assert term.proc.wait(30) == 0


class _Writer:
    def __init__(self, alive: bool) -> None:
        self.alive = alive

    def is_alive(self) -> bool:
        return self.alive


class _Driver:
    def __init__(self, writer: _Writer | None, calls: list[str]) -> None:
        self._writer_thread = writer
        self.calls = calls

    def _sigtstp_application(self) -> None:
        self.calls.append("off, stop")

    def _sigcont_application(self) -> None:
        self.calls.append("on")


@pytest.mark.parametrize(("writer", "expected"), [
    (_Writer(alive=True), ["off, stop", "on"]),
    (_Writer(alive=False), ["SIGSTOP"]),  # the app is leaving: nothing to take back
    (None, ["SIGSTOP"]),
])
def test_the_suspend_takes_back_only_an_application_mode_it_left(
        monkeypatch: pytest.MonkeyPatch, writer: _Writer | None, expected: list[str]) -> None:
    from quanttui.tui import job_control

    calls: list[str] = []
    monkeypatch.setattr(job_control.os, "kill",
                        lambda pid, sig: calls.append(signal.Signals(sig).name))
    job_control.suspend(_Driver(writer, calls))
    assert calls == expected
