"""A fake `pynvml` module for tests: GPUs, processes and failures on demand.

Install it with `install(monkeypatch, FakeNvml(...))`; it replaces `sys.modules["pynvml"]` for
one test. Every function can be made to raise `NVMLError` by name (or all of them with "*").
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest


class NVMLError(Exception):
    """Stands in for pynvml.NVMLError (its str() is NVML's text)."""

    def __init__(self, message: str = "Unknown Error") -> None:
        super().__init__(message)


@dataclass
class FakeGpu:
    name: str | bytes = "NVIDIA Fake 24GB"
    util: int = 37
    mem_used: int = 3 * 1024**3
    mem_total: int = 24 * 1024**3
    temp_c: int = 55
    power_mw: int = 123_456
    # (pid, usedGpuMemory bytes or None when NVML can't tell)
    compute: list[tuple[int, int | None]] = field(default_factory=list)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass
class _Proc:
    pid: int
    usedGpuMemory: int | None  # pynvml's own field name


class FakeNvml:
    def __init__(
        self,
        gpus: Iterable[FakeGpu] = (),
        *,
        init_error: str | None = None,
        fail: Iterable[str] = (),
    ) -> None:
        self.gpus = list(gpus)
        self.init_error = init_error
        self.fail = set(fail)  # function names that raise, "*" for all after nvmlInit
        self.calls: dict[str, int] = {}
        self.module = self._build()

    def count(self, name: str) -> int:
        return self.calls.get(name, 0)

    def _wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if name in self.fail or ("*" in self.fail and name != "nvmlInit"):
                raise NVMLError(f"Fake failure in {name}")
            return fn(*args)

        return call

    def _build(self) -> types.ModuleType:
        mod = types.ModuleType("pynvml")
        gpus = self.gpus

        def init() -> None:
            if self.init_error is not None:
                raise NVMLError(self.init_error)

        def handle(i: int) -> FakeGpu:
            if not 0 <= i < len(gpus):
                raise NVMLError("Invalid Argument")
            return gpus[i]

        funcs: dict[str, Callable[..., Any]] = {
            "nvmlInit": init,
            "nvmlShutdown": lambda: None,
            "nvmlDeviceGetCount": lambda: len(gpus),
            "nvmlDeviceGetHandleByIndex": handle,
            "nvmlSystemGetDriverVersion": lambda: "555.42.06",
            "nvmlDeviceGetName": lambda h: h.name,
            "nvmlDeviceGetUtilizationRates": lambda h: types.SimpleNamespace(gpu=h.util, memory=0),
            "nvmlDeviceGetMemoryInfo": lambda h: types.SimpleNamespace(
                used=h.mem_used, total=h.mem_total, free=h.mem_total - h.mem_used
            ),
            "nvmlDeviceGetTemperature": lambda h, sensor: h.temp_c,
            "nvmlDeviceGetPowerUsage": lambda h: h.power_mw,
            "nvmlDeviceGetComputeRunningProcesses": lambda h: [_Proc(*p) for p in h.compute],
            "nvmlDeviceGetGraphicsRunningProcesses": lambda h: [_Proc(*p) for p in h.graphics],
        }
        for name, fn in funcs.items():
            setattr(mod, name, self._wrap(name, fn))
        mod.NVMLError = NVMLError  # type: ignore[attr-defined]
        mod.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
        return mod


def install(monkeypatch: pytest.MonkeyPatch, fake: FakeNvml) -> FakeNvml:
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake


def uninstall(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `import pynvml` fail, as on a machine without nvidia-ml-py."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
