"""The machine quanttui runs on: static facts for reports, and a per-tick sample (psutil)."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from quanttui.core.hardware.reading import NA, Reading, describe_error

# /proc/cpuinfo keys that name the CPU, best first ("model name" on x86, others on some ARM boards).
_CPUINFO_KEYS = ("model name", "hardware", "processor", "cpu model", "cpu")


@dataclass(frozen=True, slots=True)
class HostInfo:
    """Static description of the host, for reports (read once)."""

    cpu_model: str
    machine: str
    system: str
    logical_cores: Reading[int]
    physical_cores: Reading[int]
    ram_total_bytes: Reading[int]


@dataclass(frozen=True, slots=True)
class HostSample:
    """One tick of host-wide figures. CPU percentages cover the time since the previous tick."""

    cpu_percent: Reading[float]
    cpu_percent_per_core: Reading[tuple[float, ...]]
    load_avg: Reading[tuple[float, float, float]]
    ram_total_bytes: Reading[int]
    ram_used_bytes: Reading[int]
    ram_available_bytes: Reading[int]
    swap_total_bytes: Reading[int]
    swap_used_bytes: Reading[int]

    @classmethod
    def unavailable(cls, reason: str) -> HostSample:
        na = NA(reason)
        return cls(na, na, na, na, na, na, na, na)


def cpu_model_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """CPU model from /proc/cpuinfo; the platform module's guess elsewhere."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        # "processor" is the core index on x86; only a non-numeric value names a model.
        if sep and value and key not in fields and not value.isdigit():
            fields[key] = value
    for key in _CPUINFO_KEYS:
        if key in fields:
            return fields[key]
    return platform.processor() or platform.machine() or "unknown CPU"


def _count(logical: bool) -> Reading[int]:
    try:
        n = psutil.cpu_count(logical=logical)
    except Exception as exc:  # psutil may fail on exotic platforms; reports still render
        return NA(describe_error(exc))
    return n if n else NA("psutil cannot count them on this platform")


def read_host_info() -> HostInfo:
    ram: Reading[int]
    try:
        ram = int(psutil.virtual_memory().total)
    except Exception as exc:
        ram = NA(describe_error(exc))
    return HostInfo(
        cpu_model=cpu_model_name(),
        machine=platform.machine(),
        system=platform.platform(),
        logical_cores=_count(logical=True),
        physical_cores=_count(logical=False),
        ram_total_bytes=ram,
    )


def _total(times: Any) -> float:
    # As psutil does: on Linux, guest time is already inside user/nice.
    t = float(sum(times))
    return t - float(getattr(times, "guest", 0.0)) - float(getattr(times, "guest_nice", 0.0))


def _busy(times: Any) -> float:
    # iowait is idle time that Linux does not count as idle.
    return _total(times) - float(times.idle) - float(getattr(times, "iowait", 0.0))


def _percent(prev: Any, cur: Any) -> float:
    d_total = _total(cur) - _total(prev)
    if d_total <= 0:
        return 0.0  # no clock ticks elapsed on this core: it did no work
    d_busy = _busy(cur) - _busy(prev)
    return min(100.0, max(0.0, 100.0 * d_busy / d_total))


class HostSampler:
    """Host figures per tick.

    CPU % is computed from our own previous `cpu_times` rather than `psutil.cpu_percent`, whose
    module-level state is shared with any other caller in the process and would skew both.
    """

    def __init__(self) -> None:
        self._prev: Sequence[Any] | None = None

    def sample(self) -> HostSample:
        per_core, total = self._cpu()
        ram_total, ram_used, ram_available = self._ram()
        swap_total, swap_used = self._swap()
        return HostSample(
            cpu_percent=total,
            cpu_percent_per_core=per_core,
            load_avg=self._load(),
            ram_total_bytes=ram_total,
            ram_used_bytes=ram_used,
            ram_available_bytes=ram_available,
            swap_total_bytes=swap_total,
            swap_used_bytes=swap_used,
        )

    def _cpu(self) -> tuple[Reading[tuple[float, ...]], Reading[float]]:
        try:
            cur = psutil.cpu_times(percpu=True)
        except Exception as exc:
            na = NA(describe_error(exc))
            return na, na
        prev, self._prev = self._prev, cur
        if prev is None or len(prev) != len(cur):
            na = NA("needs two samples (first tick)")
            return na, na
        per_core = tuple(_percent(p, c) for p, c in zip(prev, cur, strict=True))
        d_total = sum(_total(c) - _total(p) for p, c in zip(prev, cur, strict=True))
        d_busy = sum(_busy(c) - _busy(p) for p, c in zip(prev, cur, strict=True))
        overall = 0.0 if d_total <= 0 else min(100.0, max(0.0, 100.0 * d_busy / d_total))
        return per_core, overall

    @staticmethod
    def _load() -> Reading[tuple[float, float, float]]:
        try:
            one, five, fifteen = psutil.getloadavg()
        except Exception as exc:
            return NA(describe_error(exc))
        return (one, five, fifteen)

    @staticmethod
    def _ram() -> tuple[Reading[int], Reading[int], Reading[int]]:
        try:
            vm = psutil.virtual_memory()
        except Exception as exc:
            na = NA(describe_error(exc))
            return na, na, na
        return int(vm.total), int(vm.used), int(vm.available)

    @staticmethod
    def _swap() -> tuple[Reading[int], Reading[int]]:
        try:
            sw = psutil.swap_memory()
        except Exception as exc:
            na = NA(describe_error(exc))
            return na, na
        return int(sw.total), int(sw.used)
