"""The run JSON ("quanttui.run") as msgspec structs: the one definition of the format.

`run_file` writes these structs and reads them back; docs/run.schema.json is generated from them:

    python -m quanttui.core.reports.schema > docs/run.schema.json

Where the run already has a plain record type (ServerInfo, RequestMetrics, Summary, PairedDiff,
Timings, Notice), the document uses it as is. Fields a reader needs are required; the others have
defaults, so a file from an older writer that left them out still reads. Unknown fields are
ignored. Hardware, config and provenance are open-ended mappings.

Versions: 1 was the same document built from dicts (it reads as 2); 2 is defined by these structs.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from quanttui.core.ladder.section import LadderSection
from quanttui.core.llama.protocol import Timings
from quanttui.core.quality.section import QualitySection
from quanttui.core.run.events import Notice
from quanttui.core.run.metrics import RequestMetrics
from quanttui.core.run.pairing import DEFAULT_DRIFT_FLOOR
from quanttui.core.run.perturbation import Perturbation
from quanttui.core.run.records import ServerInfo
from quanttui.core.run.stats import PairedDiff, Summary

SCHEMA = "quanttui.run"
SCHEMA_VERSION = 2


class RecordDoc(msgspec.Struct, kw_only=True):
    """One request. Warm-up requests are kept (warmup: true) but left out of the statistics."""

    request_id: int
    server: str
    prompt_id: str
    category: str
    repetition: int
    warmup: bool
    concurrency: int
    round: int
    started_at: str | None  # ISO 8601, UTC
    # the block of time it was measured in: servers are paired within a block (core.run.pairing)
    block: int = 0
    ok: bool = False
    error_kind: str | None = None
    error: str | None = None
    n_events: int = 0
    text: str = ""
    token_ids: list[int] = []
    stop_reason: str | None = None
    truncated: bool = False
    timings: Timings | None = None  # llama-server's own, as received
    # how tokens after the first were timed (docs/metrics.md): "server", the first token's
    # arrival plus the server's running predicted_ms; "arrival", each event's arrival
    token_times: Literal["server", "arrival"] = "arrival"
    metrics: RequestMetrics | None = None  # None when the request failed


class RoundDoc(msgspec.Struct, kw_only=True):
    """`concurrency` requests in flight on one server, and the aggregate throughput."""

    server: str
    concurrency: int
    round: int
    n_requests: int
    n_ok: int
    wall_s: float
    tokens: int
    aggregate_tps: float = 0.0  # tokens / wall_s
    requests_per_s: float = 0.0  # n_ok / wall_s


class LevelStats(msgspec.Struct):
    """One server at one concurrency level, over its measured requests (warm-ups excluded): the
    distribution of each per-request figure (null when no request had it), inter-token latency
    pooled over the requests, and the aggregate throughput of the level's rounds."""

    # the figures of core.run.records.SUMMARY_METRICS, in its order
    ttfr_ms: Summary | None
    ttft_ms: Summary | None
    e2e_ms: Summary | None
    tpot_ms: Summary | None
    decode_tps_client: Summary | None
    decode_tps_server: Summary | None
    prompt_tps_server: Summary | None
    prompt_ms_server: Summary | None
    client_overhead_ms: Summary | None
    n_out: Summary | None
    itl_ms: Summary | None  # pooled over the requests' inter-token gaps
    aggregate_tps: float | None  # over the level's rounds
    requests_per_s: float | None
    n_ok: int
    n_failed: int


class PairedLevel(msgspec.Struct):
    """B − A per prompt at one concurrency level; null when the two servers share no prompt
    with the figure."""

    # the figures of core.run.records.PAIRED_METRICS, in its order
    decode_tps_client: PairedDiff | None
    decode_tps_server: PairedDiff | None
    ttft_ms: PairedDiff | None
    e2e_ms: PairedDiff | None


class RunDoc(msgspec.Struct, kw_only=True):
    """A quanttui run: servers, one record per request, and the statistics derived from them.

    `stats` and `paired` are keyed by server (or "B vs A") and then by concurrency level. They
    are derived from `records` and `rounds`, which is what a reader rebuilds a run from."""

    schema: str  # "quanttui.run"
    schema_version: int
    quanttui_version: str | None = None
    started_at: str | None = None  # ISO 8601, UTC
    finished_at: str | None = None
    interrupted: bool = False
    schedule: str
    endpoint: str
    repetitions: int
    # --until-decided: `paired` comes from the repetitions from this one on, the confirmation;
    # the earlier ones decided when to stop (core.run.decide). Absent: from every repetition
    confirm_from: int | None = None
    warmup: int
    concurrency_levels: list[int]
    # differences across blocks of time must exceed ± this share (core.run.pairing): the
    # configured run.drift_floor, a ladder's raised to its reference's change between passes
    drift_floor: float = DEFAULT_DRIFT_FLOOR
    config: dict[str, Any] | None = None  # the settings the run used (config file sections)
    provenance: dict[str, Any] | None = None  # quanttui, llama.cpp, model files, host
    servers: list[ServerInfo]
    stats: dict[str, dict[int, LevelStats]] = {}
    paired: dict[str, dict[int, PairedLevel]] = {}
    rounds: list[RoundDoc] = []
    notices: list[Notice] = []
    hardware: dict[str, Any] | None = None  # memory/CPU peaks per server, host, GPUs
    records: list[RecordDoc]
    # only in runs with a quality step; left out of the JSON otherwise
    quality: QualitySection | msgspec.UnsetType = msgspec.UNSET
    # only in ladder runs (quanttui ladder): one row per quant, neighbours, the verdict
    ladder: LadderSection | msgspec.UnsetType = msgspec.UNSET
    # only in runs the TUI drew: what drawing cost the servers' decode speed
    # (core.run.perturbation); headless runs draw nothing and are the control
    perturbation: Perturbation | msgspec.UnsetType = msgspec.UNSET


def json_schema() -> bytes:
    """The JSON Schema of RunDoc, as committed in docs/run.schema.json."""
    return msgspec.json.format(msgspec.json.encode(msgspec.json.schema(RunDoc)), indent=2) + b"\n"


if __name__ == "__main__":
    import sys

    sys.stdout.buffer.write(json_schema())
