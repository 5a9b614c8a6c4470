"""Hardware over a run: per-server memory and CPU, host and GPUs, ready for reports.

Peaks are taken over the samples of the run. A figure that was never readable stays n/a with
the last reason, and JSON shows it as {"n/a": reason}, never as 0. The model file size sits beside
each server's memory, because "how much RAM does this quant take" is read against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quanttui.core.hardware.host import HostInfo
from quanttui.core.hardware.poller import HwSample
from quanttui.core.hardware.reading import NA, Reading, peak


def reading_json(r: Reading[Any]) -> Any:
    return {"n/a": r.reason} if isinstance(r, NA) else r


def model_file_bytes(path: str | None) -> Reading[int]:
    """Size on disk of the server's model (all shards of a split model)."""
    if not path:
        return NA("server did not say its model path")
    from quanttui.core.models import shard_files  # pulls in gguf and numpy: only when asked

    try:
        return sum(p.stat().st_size for p in shard_files(Path(path)))
    except OSError:
        return NA("model file not readable from here (remote server?)")


@dataclass(frozen=True)
class ServerHardware:
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

    def to_json(self) -> dict[str, Any]:
        return {k: reading_json(getattr(self, k)) for k in self.__dataclass_fields__}


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


def server_hardware(history: Sequence[HwSample], name: str, model_path: str | None
                    ) -> ServerHardware:
    procs = [p for s in history if (p := s.process(name)) is not None]
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
        model_file=model_file_bytes(model_path),
    )


def hardware_json(history: Sequence[HwSample], host: HostInfo,
                  servers: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    """The run's hardware section: host info, RAM peak, GPUs, and each (name, model_path)."""
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
        },
        "gpus": reading_json(gpus),
        "samples": len(history),
        "servers": {name: server_hardware(history, name, path).to_json()
                    for name, path in servers},
    }
