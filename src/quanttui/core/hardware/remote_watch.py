"""Memory of servers on other machines, from the exporters configured per server.

A remote llama-server's process can't be sampled with psutil, so quanttui reads the host's
node_exporter (RAM) and dcgm-exporter (GPU memory) when the config names them, and
llama-server's own /metrics (queueing: requests_deferred). It runs as an asyncio task beside the
session, one scrape per interval; failures become n/a reasons, never exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from quanttui.core.hardware.reading import NA, Reading
from quanttui.core.hardware.remote import (
    NodeSample,
    fetch_llama_metrics,
    fetch_metrics_text,
    node_cpu_busy_percent,
    parse_dcgm,
    parse_node_exporter,
)
from quanttui.core.hardware.summary import reading_json


@dataclass(frozen=True)
class RemoteTarget:
    name: str
    url: str  # the llama-server
    node_exporter_url: str | None = None
    dcgm_exporter_url: str | None = None
    scrape_server_metrics: bool = True
    api_key: str | None = field(default=None, repr=False)  # the server's, for its /metrics


@dataclass
class _Peaks:
    host_ram_used: Reading[int] = field(default_factory=lambda: NA("no scrape yet"))
    host_ram_total: Reading[int] = field(default_factory=lambda: NA("no scrape yet"))
    gpu_fb_used: Reading[int] = field(default_factory=lambda: NA("no scrape yet"))
    gpu_fb_total: Reading[int] = field(default_factory=lambda: NA("no scrape yet"))
    requests_deferred: Reading[float] = field(default_factory=lambda: NA("no scrape yet"))
    host_cpu_busy: Reading[float] = field(default_factory=lambda: NA("fewer than two scrapes"))
    last_node: NodeSample | None = None
    scrapes: int = 0


def _peaks_for(t: RemoteTarget) -> _Peaks:
    """The readings before any scrape: "no scrape yet" where something will be scraped, and
    where nothing is to be scraped the reason that stays true however many scrapes follow."""
    p = _Peaks()
    if not t.node_exporter_url:
        p.host_ram_used = p.host_ram_total = NA("no node_exporter_url for this server")
        p.host_cpu_busy = NA("no node_exporter_url for this server")
    if not t.dcgm_exporter_url:
        p.gpu_fb_used = p.gpu_fb_total = NA("no dcgm_exporter_url for this server")
    if not t.scrape_server_metrics:
        p.requests_deferred = NA("the server's /metrics is not scraped")
    return p


def _max(a: Reading[Any], b: Reading[Any]) -> Reading[Any]:
    if isinstance(b, NA):
        return a if not isinstance(a, NA) else b
    return b if isinstance(a, NA) or b > a else a


class RemoteWatcher:
    def __init__(self, targets: Sequence[RemoteTarget], interval_s: float = 1.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.targets = [t for t in targets
                        if t.node_exporter_url or t.dcgm_exporter_url or t.scrape_server_metrics]
        self.interval_s = interval_s
        self.peaks = {t.name: _peaks_for(t) for t in self.targets}
        self._transport = transport
        self._task: asyncio.Task[None] | None = None

    async def scrape_once(self, http: httpx.AsyncClient) -> None:
        await asyncio.gather(*(self._one(http, t) for t in self.targets))

    async def _one(self, http: httpx.AsyncClient, t: RemoteTarget) -> None:
        p = self.peaks[t.name]
        p.scrapes += 1
        if t.node_exporter_url:
            text = await fetch_metrics_text(http, t.node_exporter_url)
            node = text if isinstance(text, NA) else parse_node_exporter(text)
            if isinstance(node, NA):
                p.host_ram_used = _max(p.host_ram_used, node)
            else:
                used: Reading[int] = (node.mem_total_bytes - node.mem_available_bytes
                                      if not isinstance(node.mem_total_bytes, NA)
                                      and not isinstance(node.mem_available_bytes, NA)
                                      else NA("node_exporter lacks MemTotal/MemAvailable"))
                p.host_ram_used = _max(p.host_ram_used, used)
                p.host_ram_total = node.mem_total_bytes
                if p.last_node is not None:
                    p.host_cpu_busy = _max(p.host_cpu_busy,
                                           node_cpu_busy_percent(p.last_node, node))
                p.last_node = node
        if t.dcgm_exporter_url:
            text = await fetch_metrics_text(http, t.dcgm_exporter_url)
            gpus = text if isinstance(text, NA) else parse_dcgm(text)
            if isinstance(gpus, NA):
                p.gpu_fb_used = _max(p.gpu_fb_used, gpus)
            else:
                used_sum = sum(g.fb_used_bytes for g in gpus if not isinstance(g.fb_used_bytes, NA))
                p.gpu_fb_used = _max(p.gpu_fb_used, used_sum)
                p.gpu_fb_total = sum(g.fb_total_bytes for g in gpus
                                     if not isinstance(g.fb_total_bytes, NA))
        if t.scrape_server_metrics:
            # counters and queue gauges only: the rate gauges reset on each scrape (see remote)
            m = await fetch_llama_metrics(http, t.url, api_key=t.api_key)
            p.requests_deferred = _max(p.requests_deferred,
                                       m if isinstance(m, NA) else m.requests_deferred)

    async def _loop(self) -> None:
        async with httpx.AsyncClient(transport=self._transport, timeout=5.0) as http:
            while True:
                await self.scrape_once(http)
                await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self.targets and self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def to_json(self) -> dict[str, Any]:
        return {name: {"host_ram_used_peak": reading_json(p.host_ram_used),
                       "host_ram_total": reading_json(p.host_ram_total),
                       "gpu_memory_used_peak": reading_json(p.gpu_fb_used),
                       "gpu_memory_total": reading_json(p.gpu_fb_total),
                       "requests_deferred_peak": reading_json(p.requests_deferred),
                       "host_cpu_busy_percent_peak": reading_json(p.host_cpu_busy),
                       "scrapes": p.scrapes}
                for name, p in self.peaks.items()}
