"""NVIDIA GPUs through NVML (`pynvml`, from the nvidia-ml-py package).

NVML is optional: it is imported and initialised lazily, on the first sample, exactly once. A
missing library, a missing driver or zero GPUs make every GPU figure `NA` with that reason. Any
NVML call may raise `pynvml.NVMLError` (GPU lost, not supported, no permission): that figure
becomes `NA` and sampling carries on.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from quanttui.core.hardware.reading import NA, Reading

T = TypeVar("T")

NO_GPU_MEMORY = "no GPU memory for this process"


@dataclass(frozen=True, slots=True)
class GpuSample:
    """One GPU at one tick. Memory in bytes, power in watts, temperature in °C."""

    index: int
    name: Reading[str]
    util_percent: Reading[float]
    memory_used_bytes: Reading[int]
    memory_total_bytes: Reading[int]
    temperature_c: Reading[float]
    power_w: Reading[float]


@dataclass(frozen=True, slots=True)
class NvmlSample:
    """All GPUs, plus the VRAM of each requested PID (summed over GPUs)."""

    gpus: Reading[tuple[GpuSample, ...]]
    process_vram: Mapping[int, Reading[int]]
    driver_version: Reading[str]


def _nvml_reason(exc: BaseException) -> str:
    # NVMLError's str() is NVML's own text ("Not Supported", "GPU is lost", ...).
    text = str(exc).strip() or type(exc).__name__
    return f"NVML: {text}"


def _text(value: object) -> str:
    # Old pynvml releases return bytes for strings.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class NvmlReader:
    """Lazy NVML session. Not thread-safe: one thread samples (the poller holds a lock)."""

    def __init__(self, module_name: str = "pynvml") -> None:
        self._module_name = module_name
        self._nv: ModuleType | None = None
        self._handles: list[Reading[Any]] = []
        self._names: dict[int, str] = {}
        self._driver: Reading[str] = NA("NVML not initialised")
        self._failure: NA | None = None
        self._started = False

    @property
    def available(self) -> Reading[int]:
        """Number of GPUs, or why there are none (initialises NVML if needed)."""
        self._ensure()
        return self._failure if self._failure is not None else len(self._handles)

    def _ensure(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            nv = importlib.import_module(self._module_name)
        except ImportError as exc:
            self._failure = NA(f"NVML library not installed (nvidia-ml-py): {exc}")
            return
        except Exception as exc:  # a broken install must not take the poller down
            self._failure = NA(f"NVML library failed to load: {_nvml_reason(exc)}")
            return
        try:
            nv.nvmlInit()
        except Exception as exc:
            self._failure = NA(f"no NVIDIA driver or NVML unusable ({_nvml_reason(exc)})")
            return
        self._nv = nv
        try:
            count = int(nv.nvmlDeviceGetCount())
        except Exception as exc:
            self._failure = NA(f"cannot count GPUs ({_nvml_reason(exc)})")
            return
        if count == 0:
            self._failure = NA("NVML found no GPU")
            return
        for i in range(count):
            self._handles.append(self._call(nv.nvmlDeviceGetHandleByIndex, i))
        self._driver = self._call(lambda: _text(nv.nvmlSystemGetDriverVersion()))

    @staticmethod
    def _call(fn: Callable[..., T], *args: Any) -> Reading[T]:
        try:
            return fn(*args)
        except Exception as exc:  # NVMLError and anything else: this figure only
            return NA(_nvml_reason(exc))

    def sample(self, pids: Iterable[int] = ()) -> NvmlSample:
        wanted = tuple(dict.fromkeys(pids))
        self._ensure()
        nv = self._nv
        if self._failure is not None or nv is None:
            reason = self._failure or NA("NVML closed")
            return NvmlSample(reason, {pid: reason for pid in wanted}, reason)
        gpus = tuple(self._gpu(nv, i, h) for i, h in enumerate(self._handles))
        return NvmlSample(gpus, self._process_vram(nv, wanted), self._driver)

    def _gpu(self, nv: ModuleType, index: int, handle: Reading[Any]) -> GpuSample:
        if isinstance(handle, NA):
            return GpuSample(index, handle, handle, handle, handle, handle, handle)
        name: Reading[str]
        if index in self._names:
            name = self._names[index]
        else:
            name = self._call(lambda: _text(nv.nvmlDeviceGetName(handle)))
            if not isinstance(name, NA):
                self._names[index] = name  # static: ask once
        util = self._call(lambda: float(nv.nvmlDeviceGetUtilizationRates(handle).gpu))
        mem = self._call(nv.nvmlDeviceGetMemoryInfo, handle)
        used: Reading[int] = mem if isinstance(mem, NA) else int(mem.used)
        total: Reading[int] = mem if isinstance(mem, NA) else int(mem.total)
        sensor = getattr(nv, "NVML_TEMPERATURE_GPU", 0)
        temp = self._call(lambda: float(nv.nvmlDeviceGetTemperature(handle, sensor)))
        power = self._call(lambda: float(nv.nvmlDeviceGetPowerUsage(handle)) / 1000.0)  # mW → W
        return GpuSample(index, name, util, used, total, temp, power)

    def _process_vram(self, nv: ModuleType, wanted: tuple[int, ...]) -> dict[int, Reading[int]]:
        if not wanted:
            return {}
        used: dict[int, int] = {}  # pid → bytes, summed over GPUs
        unsized: set[int] = set()  # listed, but NVML gives no figure (e.g. Windows WDDM)
        seen: set[int] = set()
        errors: list[str] = []
        listed_ok = False
        for handle in self._handles:
            if isinstance(handle, NA):
                errors.append(handle.reason)
                continue
            per_gpu: dict[int, int | None] = {}
            for fn_name in (
                "nvmlDeviceGetComputeRunningProcesses",
                "nvmlDeviceGetGraphicsRunningProcesses",
            ):
                fn = getattr(nv, fn_name, None)
                if fn is None:
                    continue
                procs = self._call(fn, handle)
                if isinstance(procs, NA):
                    errors.append(procs.reason)
                    continue
                listed_ok = True
                for info in procs:
                    pid = int(info.pid)
                    size = getattr(info, "usedGpuMemory", None)
                    # A process with compute and graphics contexts is listed twice: count it once.
                    prior = per_gpu.get(pid)
                    per_gpu[pid] = size if prior is None else max(prior, size or 0)
            for pid, size in per_gpu.items():
                seen.add(pid)
                if size is None:
                    unsized.add(pid)
                else:
                    used[pid] = used.get(pid, 0) + int(size)
        out: dict[int, Reading[int]] = {}
        for pid in wanted:
            if pid in used:
                out[pid] = used[pid]
            elif pid in unsized:
                out[pid] = NA("NVML lists the process but does not report its memory here")
            elif not listed_ok:
                out[pid] = NA(f"cannot list GPU processes ({errors[0] if errors else 'no GPU'})")
            elif seen - set(wanted) and not (seen & set(wanted)):
                out[pid] = NA(
                    f"{NO_GPU_MEMORY} (NVML lists {len(seen)} other GPU process(es); inside a "
                    "container NVML reports host PIDs, which differ from the PIDs seen here)"
                )
            else:
                out[pid] = NA(NO_GPU_MEMORY)
        return out

    def close(self) -> None:
        """Shut NVML down (once); later samples report n/a."""
        nv, self._nv = self._nv, None
        self._handles = []
        if self._failure is None:
            self._failure = NA("NVML closed")
        self._started = True
        if nv is not None:
            # Already shut down, or the driver is gone: nothing left to release.
            with contextlib.suppress(Exception):
                nv.nvmlShutdown()
