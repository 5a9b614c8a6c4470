"""Figures read over HTTP: llama-server `/metrics`, node_exporter and dcgm-exporter.

Used when a server runs on another machine (psutil and NVML can't see it) and as a cross-check
of llama-server's own counters. Parsers are pure functions from Prometheus text to readings; a
metric that isn't in the text is `NA`, never 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from quanttui.core.hardware.reading import NA, Reading, describe_error
from quanttui.core.secrets import mask_url

LLAMA_PREFIX = "llamacpp:"
MIB = 1024 * 1024
NOT_EXPOSED = "not in this /metrics output"
# A node_exporter page is ~100 KB, dcgm-exporter's and llama-server's less: past this a scrape is
# not read on (an endless or hostile endpoint would otherwise fill the memory).
MAX_METRICS_BYTES = 4 * MIB


def _family_key(name: str) -> str:
    # The parser strips `_total` from counter families (and appends it to counters that lacked
    # it, like llama-server's `n_tokens_max`), so compare names without it.
    return name.removesuffix("_total")


def _families(text: str) -> Iterator[Any]:
    yield from text_string_to_metric_families(text)


# ---------------------------------------------------------------------------------------------
# llama-server


@dataclass(frozen=True, slots=True)
class LlamaMetrics:
    """llama-server `/metrics` (names without the `llamacpp:` prefix).

    Counters are totals since the server started. The two throughput gauges
    (`prompt_tokens_seconds`, `predicted_tokens_seconds`) are averages over the window since the
    previous scrape, which that scrape reset.
    """

    # counters
    prompt_tokens_total: Reading[float]
    prompt_tokens_cached_total: Reading[float]
    prompt_seconds_total: Reading[float]
    tokens_predicted_total: Reading[float]
    tokens_predicted_seconds_total: Reading[float]
    n_decode_total: Reading[float]
    n_tokens_max: Reading[float]
    spec_decode_num_draft_tokens_total: Reading[float]
    spec_decode_num_accepted_tokens_total: Reading[float]
    spec_decode_num_drafts_total: Reading[float]
    # gauges
    prompt_tokens_seconds: Reading[float]
    predicted_tokens_seconds: Reading[float]
    requests_processing: Reading[float]
    requests_deferred: Reading[float]
    n_busy_slots_per_decode: Reading[float]
    # spec_decode_num_accepted_tokens_per_pos_total{position="N"}
    accepted_tokens_per_pos: Mapping[int, float]
    # unlabelled llamacpp: metrics this version doesn't know (family name, without `_total`)
    other: Mapping[str, float]


_LLAMA_FIELDS = {
    _family_key(f.name): f.name
    for f in fields(LlamaMetrics)
    if f.name not in ("accepted_tokens_per_pos", "other")
}
_PER_POS = "spec_decode_num_accepted_tokens_per_pos"


def parse_llama_metrics(text: str) -> Reading[LlamaMetrics]:
    """Parse llama-server's Prometheus text into `LlamaMetrics`."""
    found: dict[str, float] = {}
    per_pos: dict[int, float] = {}
    other: dict[str, float] = {}
    try:
        for family in _families(text):
            if not family.name.startswith(LLAMA_PREFIX):
                continue
            key = _family_key(family.name.removeprefix(LLAMA_PREFIX))
            for sample in family.samples:
                if key == _PER_POS and "position" in sample.labels:
                    per_pos[int(sample.labels["position"])] = float(sample.value)
                elif sample.labels:
                    continue  # no other labelled llamacpp: metric exists
                elif key in _LLAMA_FIELDS:
                    found[_LLAMA_FIELDS[key]] = float(sample.value)
                else:
                    other[key] = float(sample.value)
    except Exception as exc:
        return NA(f"cannot parse /metrics: {describe_error(exc)}")
    if not found and not per_pos and not other:
        return NA("no llamacpp: metrics in the response")
    values: dict[str, Reading[float]] = {
        name: found.get(name, NA(NOT_EXPOSED)) for name in _LLAMA_FIELDS.values()
    }
    return LlamaMetrics(**values, accepted_tokens_per_pos=per_pos, other=other)


# ---------------------------------------------------------------------------------------------
# node_exporter


@dataclass(frozen=True, slots=True)
class NodeSample:
    """node_exporter memory and CPU counters of one machine."""

    mem_total_bytes: Reading[int]
    mem_available_bytes: Reading[int]
    # node_cpu_seconds_total summed over CPUs, per mode ("idle", "user", "iowait", ...)
    cpu_seconds_by_mode: Reading[Mapping[str, float]]
    cpu_count: Reading[int]


def parse_node_exporter(text: str) -> Reading[NodeSample]:
    total: float | None = None
    available: float | None = None
    by_mode: dict[str, float] = {}
    cpus: set[str] = set()
    try:
        for family in _families(text):
            for sample in family.samples:
                if sample.name == "node_memory_MemTotal_bytes":
                    total = float(sample.value)
                elif sample.name == "node_memory_MemAvailable_bytes":
                    available = float(sample.value)
                elif sample.name == "node_cpu_seconds_total":
                    mode = sample.labels.get("mode", "")
                    by_mode[mode] = by_mode.get(mode, 0.0) + float(sample.value)
                    cpus.add(sample.labels.get("cpu", ""))
    except Exception as exc:
        return NA(f"cannot parse node_exporter metrics: {describe_error(exc)}")
    missing = NA("not in node_exporter output")
    return NodeSample(
        mem_total_bytes=missing if total is None else int(total),
        mem_available_bytes=missing if available is None else int(available),
        cpu_seconds_by_mode=dict(by_mode) if by_mode else missing,
        cpu_count=len(cpus) if cpus else missing,
    )


def node_cpu_busy_percent(prev: NodeSample, cur: NodeSample) -> Reading[float]:
    """Share of all CPUs that was busy between two scrapes, 0–100 (idle and iowait are idle)."""
    a, b = prev.cpu_seconds_by_mode, cur.cpu_seconds_by_mode
    if isinstance(a, NA):
        return a
    if isinstance(b, NA):
        return b
    d_total = sum(b.values()) - sum(a.values())
    if d_total <= 0:
        return NA("no CPU time elapsed between the two scrapes (or the counters reset)")
    idle = ("idle", "iowait")
    d_idle = sum(b.get(m, 0.0) for m in idle) - sum(a.get(m, 0.0) for m in idle)
    return min(100.0, max(0.0, 100.0 * (d_total - d_idle) / d_total))


# ---------------------------------------------------------------------------------------------
# dcgm-exporter


@dataclass(frozen=True, slots=True)
class DcgmGpu:
    """One GPU as dcgm-exporter reports it (framebuffer figures converted from MiB to bytes)."""

    gpu: str
    uuid: str | None
    model_name: str | None
    hostname: str | None
    fb_used_bytes: Reading[int]
    fb_free_bytes: Reading[int]
    util_percent: Reading[float]

    @property
    def fb_total_bytes(self) -> Reading[int]:
        """used + free (DCGM's reserved framebuffer is not included)."""
        if isinstance(self.fb_used_bytes, NA):
            return self.fb_used_bytes
        if isinstance(self.fb_free_bytes, NA):
            return self.fb_free_bytes
        return self.fb_used_bytes + self.fb_free_bytes


_DCGM = {
    "DCGM_FI_DEV_FB_USED": "fb_used",
    "DCGM_FI_DEV_FB_FREE": "fb_free",
    "DCGM_FI_DEV_GPU_UTIL": "util",
}


def parse_dcgm(text: str) -> Reading[tuple[DcgmGpu, ...]]:
    """GPUs from dcgm-exporter text, ordered by their `gpu` label."""
    by_gpu: dict[str, dict[str, float]] = {}
    labels: dict[str, Mapping[str, str]] = {}
    try:
        for family in _families(text):
            for sample in family.samples:
                what = _DCGM.get(sample.name)
                if what is None:
                    continue
                gpu = sample.labels.get("gpu") or sample.labels.get("UUID") or "?"
                by_gpu.setdefault(gpu, {})[what] = float(sample.value)
                labels.setdefault(gpu, sample.labels)
    except Exception as exc:
        return NA(f"cannot parse dcgm-exporter metrics: {describe_error(exc)}")
    if not by_gpu:
        return NA("no DCGM GPU metrics in the response")
    missing = NA("not in dcgm-exporter output")
    gpus = []
    for gpu in sorted(by_gpu, key=lambda g: (not g.isdigit(), int(g) if g.isdigit() else 0, g)):
        vals, lab = by_gpu[gpu], labels[gpu]
        gpus.append(
            DcgmGpu(
                gpu=gpu,
                uuid=lab.get("UUID"),
                model_name=lab.get("modelName"),
                hostname=lab.get("Hostname"),
                fb_used_bytes=int(vals["fb_used"] * MIB) if "fb_used" in vals else missing,
                fb_free_bytes=int(vals["fb_free"] * MIB) if "fb_free" in vals else missing,
                util_percent=vals.get("util", missing),
            )
        )
    return tuple(gpus)


# ---------------------------------------------------------------------------------------------
# Fetching


async def fetch_metrics_text(
    client: httpx.AsyncClient, url: str, *, timeout_s: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> Reading[str]:
    """GET a Prometheus text endpoint; any failure is `NA` with the reason.

    Careful with llama-server: each scrape of its `/metrics` resets the throughput gauges
    `llamacpp:prompt_tokens_seconds` and `llamacpp:predicted_tokens_seconds` (they average over
    the window since the previous scrape). Only one scraper per server should read them, and
    quanttui must not scrape a server that someone else's Prometheus is already scraping if it
    wants those two gauges. The counters are unaffected.
    """
    shown = mask_url(url)
    try:
        # bounded whole (not only each read: a trickle of bytes would go on for ever)
        status, body = await asyncio.wait_for(_get(client, url, timeout_s, headers), timeout_s)
    except asyncio.TimeoutError:
        return NA(f"cannot fetch {shown}: no complete answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        return NA(f"cannot fetch {shown}: {describe_error(exc)}")
    if status == 501:
        return NA("llama-server was started without --metrics (HTTP 501)")
    if status != 200:
        return NA(f"HTTP {status} from {shown}")
    if len(body) > MAX_METRICS_BYTES:
        return NA(f"{shown} sent more than {MAX_METRICS_BYTES // MIB} MiB; not read on")
    return body.decode("utf-8", "replace")


async def _get(client: httpx.AsyncClient, url: str, timeout_s: float,
               headers: Mapping[str, str] | None) -> tuple[int, bytes]:
    """Status and body, the body read up to one byte past MAX_METRICS_BYTES."""
    async with client.stream("GET", url, timeout=timeout_s, headers=headers) as response:
        body = bytearray()
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > MAX_METRICS_BYTES:
                break
        return response.status_code, bytes(body)


async def fetch_llama_metrics(
    client: httpx.AsyncClient, base_url: str, *, timeout_s: float = 5.0,
    api_key: str | None = None,
) -> Reading[LlamaMetrics]:
    """Scrape `<base_url>/metrics` and parse it (resets the throughput gauges, see above);
    `api_key` for a server started with one (its /metrics needs it)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    text = await fetch_metrics_text(client, base_url.rstrip("/") + "/metrics",
                                    timeout_s=timeout_s, headers=headers)
    return text if isinstance(text, NA) else parse_llama_metrics(text)
