"""The background poller: ticks, history, subscribers, stopping, and never raising."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from fake_pynvml import FakeGpu, FakeNvml, install
from quanttui.core.hardware import (
    NA,
    HardwarePoller,
    HostSample,
    HostSampler,
    HwSample,
    ProcessTarget,
)

GiB = 1024**3


def test_sample_once_records_and_timestamps() -> None:
    poller = HardwarePoller(gpu=False)
    assert poller.latest() is None
    before = time.perf_counter_ns()
    a = poller.sample_once()
    b = poller.sample_once()
    after = time.perf_counter_ns()
    assert (a.seq, b.seq) == (1, 2)
    assert before <= a.t_ns < b.t_ns <= after  # the token events' clock
    assert a.duration_ns > 0
    assert poller.latest() is b
    assert poller.history() == [a, b]
    assert poller.history(since_ns=b.t_ns) == [b]
    assert a.gpus == NA("GPU sampling is off")
    poller.close()


def test_history_is_bounded() -> None:
    poller = HardwarePoller(gpu=False, history_size=3)
    samples = [poller.sample_once() for _ in range(5)]
    assert poller.history() == samples[-3:]
    poller.close()


def test_background_thread_ticks_and_stops_promptly() -> None:
    got: list[HwSample] = []
    three = threading.Event()

    def on_sample(s: HwSample) -> None:
        got.append(s)
        if len(got) == 3:
            three.set()

    poller = HardwarePoller(gpu=False, interval_s=0.02)
    poller.subscribe(on_sample)
    poller.start()
    poller.start()  # a second start is a no-op
    assert three.wait(5)
    assert poller.running
    assert poller.stop()
    assert not poller.running
    n = len(got)
    time.sleep(0.06)
    assert len(got) == n  # no sample after stop
    assert [s.seq for s in got] == list(range(1, n + 1))
    poller.close()


def test_stop_does_not_wait_for_the_interval() -> None:
    poller = HardwarePoller(gpu=False, interval_s=30.0)
    first = threading.Event()
    poller.subscribe(lambda s: first.set())
    poller.start()
    assert first.wait(5)
    t0 = time.monotonic()
    assert poller.stop(timeout_s=2.0)
    assert time.monotonic() - t0 < 5.0  # the stop event wakes the thread (interval: 30 s)
    poller.close()


def test_subscriber_errors_do_not_kill_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    good: list[HwSample] = []
    enough = threading.Event()

    def broken(s: HwSample) -> None:
        raise RuntimeError("consumer bug")

    def ok(s: HwSample) -> None:
        good.append(s)
        if len(good) >= 3:
            enough.set()

    poller = HardwarePoller(gpu=False, interval_s=0.01)
    poller.subscribe(broken)
    poller.subscribe(ok)
    with poller:
        assert enough.wait(5)
        assert poller.running
    assert not poller.running
    # Logged once, not once per tick.
    failures = [r for r in caplog.records if "subscriber" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None and "consumer bug" in str(failures[0].exc_info[1])


def test_unsubscribe() -> None:
    poller = HardwarePoller(gpu=False)
    got: list[HwSample] = []
    unsubscribe = poller.subscribe(got.append)
    poller.sample_once()
    unsubscribe()
    unsubscribe()  # twice is harmless
    poller.sample_once()
    assert len(got) == 1
    poller.close()


class ExplodingHost(HostSampler):
    def sample(self) -> HostSample:
        raise OSError("procfs went away")


def test_sampler_exceptions_become_na() -> None:
    poller = HardwarePoller(
        [ProcessTarget("nowhere")], gpu=False, host=ExplodingHost(), interval_s=0.01
    )
    seen = threading.Event()
    samples: list[HwSample] = []

    def on(s: HwSample) -> None:
        samples.append(s)
        if len(samples) >= 2:
            seen.set()

    poller.subscribe(on)
    with poller:
        assert seen.wait(5)
    last = samples[-1]
    assert last.host.cpu_percent == NA("OSError: procfs went away")
    nowhere = last.process("nowhere")
    assert nowhere is not None and nowhere.rss_bytes == NA("no URL or PID given")
    assert last.process("absent") is None


def test_vram_merged_into_process(monkeypatch: pytest.MonkeyPatch) -> None:
    me = os.getpid()
    fake = install(monkeypatch, FakeNvml([FakeGpu(compute=[(me, 2 * GiB)])]))
    poller = HardwarePoller(
        [ProcessTarget("me", pid=me), ProcessTarget("far", url="http://192.0.2.1:80")]
    )
    s = poller.sample_once()
    mine, far = s.process("me"), s.process("far")
    assert mine is not None and far is not None
    assert mine.vram_bytes == 2 * GiB
    assert isinstance(far.vram_bytes, NA) and far.vram_bytes.reason.startswith("remote server")
    assert not isinstance(s.gpus, NA) and len(s.gpus) == 1
    poller.close()
    assert fake.count("nvmlShutdown") == 1


def test_set_targets_keeps_existing_state() -> None:
    me = ProcessTarget("me", pid=os.getpid())
    poller = HardwarePoller([me], gpu=False)
    poller.sample_once()
    poller.set_targets([me, ProcessTarget("other", pid=os.getpid())])
    s = poller.sample_once()
    mine, other = s.process("me"), s.process("other")
    assert mine is not None and other is not None
    assert isinstance(mine.cpu_percent, float)  # second reading of a kept sampler
    assert other.cpu_percent == NA("needs two samples (first tick)")  # a new one
    poller.close()


def test_closed_poller_cannot_restart() -> None:
    poller = HardwarePoller(gpu=False)
    poller.close()
    poller.close()
    with pytest.raises(RuntimeError):
        poller.start()
    with pytest.raises(ValueError):
        HardwarePoller(interval_s=0)


def test_core_hardware_does_not_import_textual() -> None:
    code = (
        "import sys, quanttui.core.hardware, quanttui.core.hardware.remote;"
        "assert 'textual' not in sys.modules, 'textual imported';"
        "assert 'pynvml' not in sys.modules, 'pynvml imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
