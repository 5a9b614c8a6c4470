"""Host facts and host sampling (psutil), and the Reading helpers."""

from __future__ import annotations

import time
from collections import namedtuple
from pathlib import Path

import psutil
import pytest

from quanttui.core.hardware import (
    NA,
    HostSampler,
    Reading,
    is_na,
    map_reading,
    peak,
    read_host_info,
)
from quanttui.core.hardware.host import cpu_model_name
from quanttui.core.hardware.reading import describe_error, value_or


def test_cpu_model_x86(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-9750H\n\n"
        "processor\t: 1\nmodel name\t: Intel(R) Core(TM) i7-9750H\n"
    )
    assert cpu_model_name(info) == "Intel(R) Core(TM) i7-9750H"


def test_cpu_model_arm(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nModel\t: Pi 4\n")
    assert cpu_model_name(info) == "BCM2835"


def test_cpu_model_fallback(tmp_path: Path) -> None:
    assert cpu_model_name(tmp_path / "missing")  # platform's guess, never empty


def test_host_info() -> None:
    info = read_host_info()
    assert info.cpu_model
    assert info.logical_cores == psutil.cpu_count()
    assert isinstance(info.physical_cores, int | NA)
    assert isinstance(info.ram_total_bytes, int) and info.ram_total_bytes > 0


def test_host_sample() -> None:
    sampler = HostSampler()
    first = sampler.sample()
    assert first.cpu_percent == NA("needs two samples (first tick)")
    assert isinstance(first.ram_total_bytes, int) and first.ram_total_bytes > 0
    time.sleep(0.05)
    second = sampler.sample()
    assert isinstance(second.cpu_percent, float) and 0.0 <= second.cpu_percent <= 100.0
    per_core = second.cpu_percent_per_core
    assert isinstance(per_core, tuple) and len(per_core) == psutil.cpu_count()
    assert all(0.0 <= p <= 100.0 for p in per_core)
    assert isinstance(second.load_avg, tuple) and len(second.load_avg) == 3
    total, avail = second.ram_total_bytes, second.ram_available_bytes
    assert isinstance(total, int) and isinstance(avail, int) and 0 < avail <= total
    assert isinstance(second.swap_total_bytes, int) and second.swap_total_bytes >= 0


# The fields psutil.cpu_times() has, as an iterable named tuple like psutil's own.
T = namedtuple("T", "user idle iowait")


def test_cpu_percent_from_times(monkeypatch: pytest.MonkeyPatch) -> None:
    frames = iter([[T(10, 10, 0), T(0, 20, 0)], [T(15, 15, 0), T(0, 20, 10)]])
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu=False: next(frames))
    sampler = HostSampler()
    sampler.sample()
    s = sampler.sample()
    # core 0: 5 busy of 10; core 1: 10 s iowait (idle) of 10; machine: 5 of 20
    assert s.cpu_percent_per_core == (50.0, 0.0)
    assert s.cpu_percent == 25.0


def test_host_failures_become_na(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("no /proc")

    for name in ("cpu_times", "getloadavg", "virtual_memory", "swap_memory"):
        monkeypatch.setattr(psutil, name, boom)
    s = HostSampler().sample()
    for figure in (s.cpu_percent, s.load_avg, s.ram_used_bytes, s.swap_used_bytes):
        assert figure == NA("OSError: no /proc")


def test_reading_helpers() -> None:
    series: list[Reading[int]] = [1, NA("x"), 5, 3]
    assert peak(series) == 5
    missing: list[Reading[float]] = [NA("a"), NA("b")]
    assert peak(missing) == NA("b")
    assert peak(missing[:0]) == NA("no samples")
    assert value_or(NA("x"), -1) == -1
    assert value_or(3, -1) == 3
    assert map_reading(2, lambda v: v * 1.5) == 3.0
    assert map_reading(NA("gone"), lambda v: v * 2) == NA("gone")
    assert is_na(NA("x")) and not is_na(0)
    assert str(NA("remote server")) == "n/a (remote server)"
    assert describe_error(ValueError()) == "ValueError"
    assert not isinstance(0, NA)  # 0 is a value, never a stand-in for unknown
