"""The hardware poller: one `HwSample` per tick, on its own thread.

psutil and NVML calls block, so sampling runs on a daemon thread and never on an event loop.
Nothing raises into consumers: a failure becomes an `NA` reason in the sample, and a subscriber
that raises is logged and kept. Samples are stamped with `time.perf_counter_ns()`, the clock
the token events use, so memory and tokens line up on one time axis.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from quanttui.core.hardware.host import HostInfo, HostSample, HostSampler, read_host_info
from quanttui.core.hardware.nvml import GpuSample, NvmlReader, NvmlSample
from quanttui.core.hardware.process import ProcessSample, ProcessSampler, ProcessTarget
from quanttui.core.hardware.reading import NA, Reading, describe_error
from quanttui.core.threads import name_os_thread

log = logging.getLogger(__name__)

Subscriber = Callable[["HwSample"], None]

GPU_OFF = NA("GPU sampling is off")


_NOT_SAMPLED = NA("not sampled")


@dataclass(frozen=True, slots=True)
class HwSample:
    """Everything measured at one tick.

    `t_ns` is `time.perf_counter_ns()` when the tick began; `duration_ns` is how long sampling
    took (what the poller itself costs per tick, in wall time).
    """

    seq: int
    t_ns: int
    duration_ns: int
    host: HostSample
    processes: tuple[ProcessSample, ...]
    gpus: Reading[tuple[GpuSample, ...]]
    # quanttui's own CPU since the previous tick, 100 = one core (all its threads: the UI, the
    # stream readers, this poller): what the monitor costs the machine it measures
    own_cpu_percent: Reading[float] = _NOT_SAMPLED

    def process(self, name: str) -> ProcessSample | None:
        return next((p for p in self.processes if p.name == name), None)


def _mark_shared_model_files(samples: list[ProcessSample]) -> tuple[ProcessSample, ...]:
    """Name, in each sample, the other watched servers (other PIDs) that map its model file."""
    mappers: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for p in samples:
        if not isinstance(p.model, NA) and not isinstance(p.pid, NA):
            for f in p.model.files:
                mappers.setdefault(f, []).append((p.pid, p.name))
    out = []
    for p in samples:
        if isinstance(p.model, NA) or isinstance(p.pid, NA):
            out.append(p)
            continue
        pid = p.pid
        others = sorted({name for f in p.model.files for other, name in mappers[f] if other != pid})
        out.append(dataclasses.replace(p, model_shared_with=tuple(others)) if others else p)
    return tuple(out)


class HardwarePoller:
    """Samples the host, the watched servers and the GPUs every `interval_s` seconds.

    Use `start()`/`stop()` (or `with`) for the background thread, or call `sample_once()`
    directly; both record into `history()` and notify subscribers. Callbacks run on the
    poller's thread: a UI should hand the sample over (e.g. Textual's `post_message`).
    """

    def __init__(
        self,
        targets: Iterable[ProcessTarget] = (),
        *,
        interval_s: float = 1.0,
        history_size: int = 3600,
        gpu: bool = True,
        nvml: NvmlReader | None = None,
        host: HostSampler | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self._interval_s = interval_s
        self._host = host or HostSampler()
        self._nvml: NvmlReader | None = (nvml or NvmlReader()) if gpu else None
        self._samplers: list[ProcessSampler] = [ProcessSampler(t) for t in targets]
        self._history: deque[HwSample] = deque(maxlen=history_size)
        self._subscribers: list[Subscriber] = []
        self._failed_subscribers: set[int] = set()
        self._seq = 0
        self._own_prev: tuple[int, float] | None = None  # (t_ns, own CPU seconds) last tick
        self._host_info: HostInfo | None = None
        # _sample_lock serialises sampling (psutil/NVML state); _lock guards the shared data.
        self._sample_lock = threading.Lock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- configuration ------------------------------------------------------------------------

    @property
    def interval_s(self) -> float:
        return self._interval_s

    @interval_s.setter
    def interval_s(self, value: float) -> None:
        if value <= 0:
            raise ValueError(f"interval_s must be positive, got {value}")
        self._interval_s = value  # read by the loop at each tick

    def set_targets(self, targets: Iterable[ProcessTarget]) -> None:
        """Replace the watched servers; a target already watched keeps its state (CPU %, PID)."""
        with self._sample_lock:
            old = {s.target: s for s in self._samplers}
            self._samplers = [old.get(t) or ProcessSampler(t) for t in targets]

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(sample)` for every new sample; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    # -- reading ------------------------------------------------------------------------------

    def latest(self) -> HwSample | None:
        with self._lock:
            return self._history[-1] if self._history else None

    def history(self, since_ns: int | None = None) -> list[HwSample]:
        """Samples kept (oldest first), optionally only those with `t_ns >= since_ns`."""
        with self._lock:
            items = list(self._history)
        return items if since_ns is None else [s for s in items if s.t_ns >= since_ns]

    def host_info(self) -> HostInfo:
        """Static host description for reports (read once)."""
        if self._host_info is None:
            self._host_info = read_host_info()
        return self._host_info

    # -- sampling -----------------------------------------------------------------------------

    def _own_cpu(self, t_ns: int) -> Reading[float]:
        """This process's CPU since the previous tick (os.times: one cheap syscall)."""
        t = os.times()
        cpu, prev = t.user + t.system, self._own_prev
        self._own_prev = (t_ns, cpu)
        if prev is None or t_ns <= prev[0]:
            return NA("needs two samples (first tick)")
        return 100.0 * (cpu - prev[1]) / ((t_ns - prev[0]) / 1e9)

    def sample_once(self) -> HwSample:
        """Take one sample now (blocking), record it and notify subscribers. Never raises."""
        with self._sample_lock:
            t0 = time.perf_counter_ns()
            own = self._own_cpu(t0)
            host = self._sample_host()
            processes = self._sample_processes()
            gpus, processes = self._sample_gpus(processes)
            t1 = time.perf_counter_ns()
            with self._lock:
                self._seq += 1
                sample = HwSample(self._seq, t0, t1 - t0, host, processes, gpus, own)
                self._history.append(sample)
                subscribers = list(self._subscribers)
        self._notify(subscribers, sample)
        return sample

    def _sample_host(self) -> HostSample:
        try:
            return self._host.sample()
        except Exception as exc:
            return HostSample.unavailable(describe_error(exc))

    def _sample_processes(self) -> tuple[ProcessSample, ...]:
        out = []
        for sampler in self._samplers:
            try:
                out.append(sampler.sample())
            except Exception as exc:  # ProcessSampler already catches; belt and braces
                out.append(ProcessSample.unavailable(sampler.target.name, describe_error(exc)))
        return _mark_shared_model_files(out)

    def _sample_gpus(
        self, processes: tuple[ProcessSample, ...]
    ) -> tuple[Reading[tuple[GpuSample, ...]], tuple[ProcessSample, ...]]:
        if self._nvml is None:
            return GPU_OFF, tuple(dataclasses.replace(p, vram_bytes=GPU_OFF) for p in processes)
        pids = [p.pid for p in processes if not isinstance(p.pid, NA)]
        try:
            nv = self._nvml.sample(pids)
        except Exception as exc:
            na = NA(describe_error(exc))
            nv = NvmlSample(na, {}, na)
        merged = []
        for p in processes:
            if isinstance(p.pid, NA):
                merged.append(dataclasses.replace(p, vram_bytes=p.pid))
            else:
                vram = nv.process_vram.get(p.pid, NA("not sampled"))
                merged.append(dataclasses.replace(p, vram_bytes=vram))
        return nv.gpus, tuple(merged)

    def _notify(self, subscribers: list[Subscriber], sample: HwSample) -> None:
        for callback in subscribers:
            try:
                callback(sample)
            except Exception:
                # Log once per subscriber: at 10 Hz a broken one would flood the log.
                key = id(callback)
                if key not in self._failed_subscribers:
                    self._failed_subscribers.add(key)
                    log.exception("hardware subscriber %r failed; it stays subscribed", callback)

    # -- thread -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the background thread (no-op if it runs)."""
        if self._closed:
            raise RuntimeError("HardwarePoller is closed")
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="quanttui-hw-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        name_os_thread("qt-poller")
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample_once()
            except Exception:  # sample_once catches everything; this keeps the thread alive
                log.exception("hardware sample failed")
            next_tick += self._interval_s
            now = time.monotonic()
            if next_tick < now:
                # Sampling overran the interval: skip the missed ticks instead of bursting.
                next_tick = now
            self._stop.wait(next_tick - now)

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Stop the thread; returns False if it is still inside a blocking call after timeout_s."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            return False
        self._thread = None
        return True

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop and release NVML. Safe to call twice."""
        self.stop(timeout_s)
        self._closed = True
        # Shut NVML down only when no sample is in flight on the thread.
        if self._nvml is not None and self._sample_lock.acquire(timeout=timeout_s):
            try:
                self._nvml.close()
            finally:
                self._sample_lock.release()

    def __enter__(self) -> HardwarePoller:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
