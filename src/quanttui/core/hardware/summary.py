"""Hardware over a run: per-server memory and CPU, host and GPUs, ready for reports.

Peaks are taken over the samples of the run. A figure that was never readable stays n/a with
the last reason, and JSON shows it as {"n/a": reason}, never as 0. The model file size sits beside
each server's memory, because "how much RAM does this quant take" is read against it: private
memory plus the model's resident pages, out of the file size (definitions in docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from quanttui.core.hardware.breakdown import breakdown
from quanttui.core.hardware.host import HostInfo
from quanttui.core.hardware.poller import HwSample
from quanttui.core.hardware.process import ModelPages
from quanttui.core.hardware.reading import NA, Reading, peak
from quanttui.core.models.buffers import read_server_log


def reading_json(r: Reading[Any]) -> Any:
    return {"n/a": r.reason} if isinstance(r, NA) else r


def model_file_bytes(path: str | None) -> Reading[int]:
    """Size on disk of the server's model (all shards of a split model)."""
    if not path:
        return NA("server did not say its model path")
    from quanttui.core.models.discovery import (
        shard_files,  # pulls in gguf and numpy: only when asked
    )

    try:
        return sum(p.stat().st_size for p in shard_files(Path(path)))
    except OSError:
        return NA("model file not readable from here (remote server?)")


@dataclass(frozen=True)
class ServerHardware:
    """One server over a run; `to_json` is its entry in the run file's hardware.servers."""

    name: str
    pid: Reading[int]
    rss_peak: Reading[int]
    rss_last: Reading[int]
    uss_peak: Reading[int]
    pss_peak: Reading[int]
    vram_peak: Reading[int]
    cpu_percent_mean: Reading[float]
    threads: Reading[int]
    model_file: Reading[int]
    private_peak: Reading[int]  # anonymous memory
    model_pages_peak: Reading[int]  # the model file's resident mapped pages
    shared_model_file: Reading[bool]  # another process mapped the model file too
    model_shared_with: tuple[str, ...]  # the watched servers among them

    def to_json(self) -> dict[str, Any]:
        out = {k: reading_json(getattr(self, k)) for k in self.__dataclass_fields__}
        out["model_shared_with"] = list(self.model_shared_with)
        return out


def _mean(xs: list[Reading[float]]) -> Reading[float]:
    vals = [x for x in xs if not isinstance(x, NA)]
    if not vals:
        last = next((x for x in reversed(xs) if isinstance(x, NA)), NA("no samples"))
        return last
    return sum(vals) / len(vals)


def _last(xs: Sequence[Reading[Any]]) -> Reading[Any]:
    for x in reversed(xs):
        if not isinstance(x, NA):
            return x
    return xs[-1] if xs else NA("no samples")


def _shared(models: Sequence[Reading[ModelPages]], with_: set[str]) -> Reading[bool]:
    mapped = [m for m in models if not isinstance(m, NA)]
    if not mapped:
        return _last(models)
    return bool(with_) or any(m.shared for m in mapped)


def server_hardware(history: Sequence[HwSample], name: str, model_path: str | None
                    ) -> ServerHardware:
    procs = [p for s in history if (p := s.process(name)) is not None]
    models = [p.model for p in procs]
    with_ = {n for p in procs for n in p.model_shared_with}
    model_file = model_file_bytes(model_path)
    if isinstance(model_file, NA):  # the server's own mapping of it, when we could read that
        model_file = _last([m.file_bytes for m in models if not isinstance(m, NA)]
                           or [model_file])
    return ServerHardware(
        name=name,
        pid=_last([p.pid for p in procs]),
        rss_peak=peak(p.rss_bytes for p in procs),
        rss_last=_last([p.rss_bytes for p in procs]),
        uss_peak=peak(p.uss_bytes for p in procs),
        pss_peak=peak(p.pss_bytes for p in procs),
        vram_peak=peak(p.vram_bytes for p in procs),
        cpu_percent_mean=_mean([p.cpu_percent for p in procs]),
        threads=_last([p.num_threads for p in procs]),
        model_file=model_file,
        private_peak=peak(p.private_bytes for p in procs),
        model_pages_peak=peak(m if isinstance(m, NA) else m.resident_bytes for m in models),
        shared_model_file=_shared(models, with_),
        model_shared_with=tuple(sorted(with_)),
    )


def other_cpu_cores(s: HwSample) -> Reading[float]:
    """Cores kept busy at this tick by processes other than the watched servers and quanttui:
    the host's busy share less theirs. n/a when a server's CPU isn't seen from here (a remote
    or attached server whose process we can't read)."""
    host, per_core = s.host.cpu_percent, s.host.cpu_percent_per_core
    if isinstance(host, NA) or isinstance(per_core, NA):
        return host if isinstance(host, NA) else NA("no per-core figures")
    ours = 0.0
    for pct in (*(p.cpu_percent for p in s.processes), s.own_cpu_percent):
        if isinstance(pct, NA):
            return NA("a watched process's CPU is not readable here")
        ours += pct / 100.0
    return max(0.0, host / 100.0 * len(per_core) - ours)


def server_json(hw: ServerHardware, log: Path | None, launched: bool) -> dict[str, Any]:
    """One server's entry, with its memory breakdown: the parts from its log (`log`, read now,
    while the server still runs) beside the measured peaks."""
    parts = read_server_log(log) if launched else None
    bd = breakdown(parts, hw.private_peak, hw.model_pages_peak, hw.vram_peak,
                   attached=not launched)
    return hw.to_json() | {"memory_breakdown": msgspec.to_builtins(bd)}


def hardware_json(history: Sequence[HwSample], host: HostInfo,
                  servers: Sequence[tuple[str, str | None]],
                  logs: Mapping[str, Path | None] | None = None) -> dict[str, Any]:
    """The run's hardware section: host info, RAM peak, GPUs, and each (name, model_path).
    `logs`: the log file of each server quanttui started (the others are attached)."""
    logs = logs or {}
    gpus: Any = NA("no samples")
    if history:
        g = history[-1].gpus
        gpus = g if isinstance(g, NA) else [
            {k: reading_json(getattr(x, k)) for k in x.__dataclass_fields__} for x in g]
    return {
        "host": {
            "cpu_model": host.cpu_model,
            "machine": host.machine,
            "system": host.system,
            "logical_cores": reading_json(host.logical_cores),
            "physical_cores": reading_json(host.physical_cores),
            "ram_total_bytes": reading_json(host.ram_total_bytes),
            "ram_used_peak_bytes": reading_json(peak(s.host.ram_used_bytes for s in history)),
            "cpu_percent_mean": reading_json(_mean([s.host.cpu_percent for s in history])),
            # cores busy with other processes, mean over the samples (core.run.load)
            "other_cpu_cores_mean": reading_json(_mean([other_cpu_cores(s) for s in history])),
        },
        # quanttui's own CPU, 100 = one core, mean over the samples
        "own_cpu_percent_mean": reading_json(_mean([s.own_cpu_percent for s in history])),
        "gpus": reading_json(gpus),
        "samples": len(history),
        "servers": {name: server_json(server_hardware(history, name, path), logs.get(name),
                                      name in logs)
                    for name, path in servers},
    }


def _reading(value: Any, kind: type) -> Reading[Any]:
    """`reading_json` backwards: a value of `kind`, or n/a with the stored reason."""
    if isinstance(value, dict) and "n/a" in value:
        return NA(str(value["n/a"]))
    if kind is str and isinstance(value, str):
        return value
    if kind is not str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return kind(value)
    return NA("not in the stored run")


def summary_sample(hw: dict[str, Any]) -> HwSample:
    """A stored run's hardware section as one sample of its peaks, so a re-rendered screen
    shows each server's peak memory / VRAM and the host's peak RAM (the gauges' "last" figures
    are gone once the run is over)."""
    from quanttui.core.hardware.host import HostSample
    from quanttui.core.hardware.nvml import GpuSample
    from quanttui.core.hardware.process import ProcessSample

    h = hw.get("host") or {}
    total = _reading(h.get("ram_total_bytes"), int)
    used = _reading(h.get("ram_used_peak_bytes"), int)
    na = NA("not kept in a stored run")
    host = HostSample(cpu_percent=_reading(h.get("cpu_percent_mean"), float),
                      cpu_percent_per_core=na, load_avg=na, ram_total_bytes=total,
                      ram_used_bytes=used, ram_available_bytes=na, swap_total_bytes=na,
                      swap_used_bytes=na)
    procs = []
    for name, s in (hw.get("servers") or {}).items():
        pages = _reading(s.get("model_pages_peak"), int)
        model: Reading[ModelPages] = pages if isinstance(pages, NA) else ModelPages(
            resident_bytes=pages, shared=s.get("shared_model_file") is True, shared_bytes=na,
            file_bytes=_reading(s.get("model_file"), int), paths=(), files=())
        procs.append(ProcessSample(
            name=name, pid=_reading(s.get("pid"), int), rss_bytes=_reading(s.get("rss_peak"), int),
            uss_bytes=_reading(s.get("uss_peak"), int), pss_bytes=_reading(s.get("pss_peak"), int),
            cpu_percent=_reading(s.get("cpu_percent_mean"), float),
            num_threads=_reading(s.get("threads"), int), cpu_affinity=na, flags=na,
            vram_bytes=_reading(s.get("vram_peak"), int),
            private_bytes=_reading(s.get("private_peak"), int), model=model,
            model_shared_with=tuple(str(n) for n in s.get("model_shared_with") or ())))
    stored = hw.get("gpus")
    gpus: Reading[tuple[GpuSample, ...]]
    if isinstance(stored, list):
        gpus = tuple(GpuSample(
            index=int(g.get("index", i)), name=_reading(g.get("name"), str),
            util_percent=_reading(g.get("util_percent"), float),
            memory_used_bytes=_reading(g.get("memory_used_bytes"), int),
            memory_total_bytes=_reading(g.get("memory_total_bytes"), int),
            temperature_c=_reading(g.get("temperature_c"), float),
            power_w=_reading(g.get("power_w"), float)) for i, g in enumerate(stored))
    else:
        gpus = _reading(stored, int) if isinstance(stored, dict) else NA("not in the stored run")
    return HwSample(seq=0, t_ns=0, duration_ns=0, host=host, processes=tuple(procs), gpus=gpus)
