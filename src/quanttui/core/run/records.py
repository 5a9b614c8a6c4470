"""What a run keeps: one record per request, per concurrency round, per server; and the
statistics derived from them.

Statistics are computed from the records on demand, never stored beside them, so a stored run
re-rendered later gives the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quanttui.core.llama.result import CompletionResult
from quanttui.core.run.metrics import RequestMetrics
from quanttui.core.run.pairing import DEFAULT_DRIFT_FLOOR, pair
from quanttui.core.run.stats import PairedDiff, Summary, summarize

# Per-request figures summarized per server (RequestMetrics field names).
SUMMARY_METRICS = (
    "ttfr_ms", "ttft_ms", "e2e_ms", "tpot_ms", "decode_tps_client", "decode_tps_server",
    "prompt_tps_server", "prompt_ms_server", "client_overhead_ms", "n_out",
)
# Figures compared B − A per prompt.
PAIRED_METRICS = ("decode_tps_client", "decode_tps_server", "ttft_ms", "e2e_ms")


@dataclass
class ServerInfo:
    """A compared server as the run saw it at the start."""

    name: str
    url: str
    pid: int | None = None
    managed: bool = False
    model_path: str | None = None
    model_ftype: str | None = None
    model_size: int | None = None
    n_params: int | None = None
    n_ctx: int | None = None
    total_slots: int | None = None
    build_info: str | None = None
    reachable: bool = True
    error: str | None = None
    launch_args: list[str] | None = None
    requantized_from: str | None = None  # the file says it was made from this quantized file

    def update_from(self, props: dict[str, Any], models: dict[str, Any]) -> None:
        """Fill in what the server says about itself in /props and /v1/models."""
        self.model_path = props.get("model_path")
        self.model_ftype = props.get("model_ftype")
        self.total_slots = props.get("total_slots")
        # "b0-unknown" (a build without git) says less than the release set beforehand
        # (ServerSpec.release, from the binary quanttui started)
        said = props.get("build_info")
        if not (self.build_info and (not said or str(said).startswith("b0"))):
            self.build_info = said
        self.n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
        meta = ((models.get("data") or [{}])[0]).get("meta") or {}
        self.model_size = meta.get("size")
        self.n_params = meta.get("n_params")
        self.model_ftype = self.model_ftype or meta.get("ftype")


@dataclass(eq=False)
class RequestRecord:
    request_id: int
    server: str
    prompt_id: str
    category: str
    repetition: int
    warmup: bool
    concurrency: int
    round: int
    started_at: float  # wall clock (time.time()), for reports; durations use the monotonic clock
    metrics: RequestMetrics | None = None
    # the stretch of time it was measured in: servers interleaved in one pass share a block;
    # the sequential schedule gives each server its own, a ladder's passes are blocks
    # (core.run.pairing pairs servers within a block)
    block: int = 0
    error_kind: str | None = None
    error: str | None = None
    result: CompletionResult | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None and self.metrics is not None

    @property
    def text(self) -> str:
        return self.result.text if self.result is not None else ""

    @property
    def token_ids(self) -> list[int]:
        return self.result.token_ids if self.result is not None else []

    @property
    def n_events(self) -> int:
        return self.result.n_events if self.result is not None else 0


@dataclass(frozen=True)
class RoundRecord:
    """N requests in flight on one server: the aggregate throughput under load."""

    server: str
    concurrency: int
    round: int
    n_requests: int
    n_ok: int
    wall_s: float
    tokens: int

    @property
    def aggregate_tps(self) -> float:
        return self.tokens / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.n_ok / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class RunResults:
    servers: list[ServerInfo]
    schedule: str
    endpoint: str
    repetitions: int
    warmup: int
    concurrency_levels: tuple[int, ...]
    records: list[RequestRecord] = field(default_factory=list)
    rounds: list[RoundRecord] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float | None = None
    interrupted: bool = False
    hardware: dict[str, Any] | None = None  # core.hardware.summary.hardware_json
    # --until-decided: the repetitions from this one on are the confirmation, the only ones
    # paired figures come from (core.run.decide); None: every repetition
    confirm_from: int | None = None
    drift_floor: float = DEFAULT_DRIFT_FLOOR  # core.run.pairing: pairs across blocks of time
    # Sections carried as data into the JSON as they are: "config", "provenance", "quality"
    # (core.quality.step.quality_dict, after the run)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def server_names(self) -> list[str]:
        return [s.name for s in self.servers]

    def measured(self, server: str | None = None, concurrency: int | None = None
                 ) -> list[RequestRecord]:
        return [r for r in self.records if not r.warmup
                and (server is None or r.server == server)
                and (concurrency is None or r.concurrency == concurrency)]

    @property
    def failures(self) -> list[RequestRecord]:
        return [r for r in self.records if r.error is not None]

    def summary(self, server: str, metric: str, concurrency: int | None = None
                ) -> Summary | None:
        vals = [getattr(r.metrics, metric) for r in self.measured(server, concurrency)
                if r.ok and r.metrics is not None]
        return summarize([v for v in vals if v is not None])

    def itl_summary(self, server: str, concurrency: int | None = None) -> Summary | None:
        """ITL pooled over all of a server's requests."""
        pooled = [g for r in self.measured(server, concurrency) if r.ok and r.metrics
                  for g in r.metrics.itl_ms]
        return summarize(pooled)

    def reported(self, r: RequestRecord) -> bool:
        """Whether paired figures use this record: with --until-decided not the repetitions
        that decided when to stop (their intervals are too narrow), only the confirmation."""
        return self.confirm_from is None or r.repetition >= self.confirm_from

    def per_prompt(self, server: str, metric: str, concurrency: int | None = None
                   ) -> dict[str, float]:
        """Mean over the `reported` repetitions per prompt id, for pairing across servers."""
        acc: dict[str, list[float]] = {}
        for r in self.measured(server, concurrency):
            if r.ok and r.metrics is not None and self.reported(r):
                v = getattr(r.metrics, metric)
                if v is not None:
                    acc.setdefault(r.prompt_id, []).append(float(v))
        return {k: sum(v) / len(v) for k, v in acc.items()}

    def paired(self, metric: str, a: str, b: str, concurrency: int | None = None
               ) -> PairedDiff | None:
        """B against A per prompt, paired within the blocks of time both ran in, else through
        a server that ran beside each, else across blocks with the drift floor
        (core.run.pairing: the one definition every view uses)."""
        return pair(filter(self.reported, self.records), metric, a, b, concurrency,
                    servers=self.server_names, floor=self.drift_floor)

    def unrepeatable(self, server: str) -> list[str]:
        """Prompts whose finished repetitions on this server gave different outputs (token ids,
        or text where no ids were streamed). At temperature 0 a server should repeat itself;
        where it doesn't, a diff between two servers mixes that noise into the quantization
        effect."""
        outs: dict[tuple[str, int], set[tuple[tuple[int, ...], str]]] = {}
        for r in self.measured(server):
            if r.ok and r.result is not None and r.result.stop_reason != "cancelled":
                outs.setdefault((r.prompt_id, r.concurrency), set()).add(
                    (tuple(r.token_ids), r.text))
        return sorted({p for (p, _), seen in outs.items() if len(seen) > 1})

    def aggregate(self, server: str, concurrency: int) -> tuple[float, float] | None:
        """(aggregate tok/s, requests/s) over a server's rounds at that concurrency."""
        rs = [r for r in self.rounds if r.server == server and r.concurrency == concurrency]
        wall = sum(r.wall_s for r in rs)
        if not rs or wall <= 0:
            return None
        return sum(r.tokens for r in rs) / wall, sum(r.n_ok for r in rs) / wall
