"""Per-request figures, as defined in docs/metrics.md.

Client times come from the stream's monotonic stamps; server figures are copied from
llama-server's `timings` and kept beside them, never mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from quanttui.core.llama.result import CompletionResult

NS_PER_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class RequestMetrics:
    ttfr_ms: float | None  # sent → first body byte (any event)
    ttft_ms: float | None  # sent → first event carrying a generated token
    e2e_ms: float | None  # sent → final event
    tpot_ms: float | None  # (E2E − TTFT) / (n_out − 1)
    itl_ms: tuple[float, ...]  # gaps between token-bearing events, per token
    decode_tps_client: float | None  # (n − 1) / (t_last − t_first), n = streamed tokens
    decode_tps_server: float | None  # timings.predicted_per_second
    prompt_tps_server: float | None  # timings.prompt_per_second
    prompt_ms_server: float | None  # timings.prompt_ms (server-side TTFT)
    client_overhead_ms: float | None  # TTFT − prompt_ms
    n_prompt: int | None  # prompt_n + cache_n
    n_out: int
    cache_n: int
    cache_hit: bool
    ids_missing: int = 0  # streamed tokens without an id (byte-fallback): the diff uses text


def decode_rate(n_after_first: int, t_first_ns: int | None, t_last_ns: int | None
                ) -> float | None:
    """Decode tok/s: the tokens after the first one, over the time from the first to the last
    token-bearing event (llama-server's n − 1 convention). The one formula for the final figure
    (`request_metrics`) and the live one the TUI shows while a request streams."""
    if t_first_ns is None or t_last_ns is None or t_last_ns <= t_first_ns or n_after_first < 1:
        return None
    return n_after_first / ((t_last_ns - t_first_ns) / 1e9)


def _ms(a: int | None, b: int | None) -> float | None:
    return None if a is None or b is None else (b - a) / NS_PER_MS


def request_metrics(r: CompletionResult) -> RequestMetrics:
    times = r.event_times_ns
    ntoks = r.event_ntokens
    ttft = _ms(r.t_sent_ns, r.t_first_token_ns)
    e2e = _ms(r.t_sent_ns, r.t_done_ns)
    n_out = r.n_tokens
    # Streamed count for the client rate: on /completion the server's own running count per
    # event; an event whose token count is unknown (chat deltas) counts as one.
    n_streamed = r.n_streamed
    itl: list[float] = []
    for i in range(1, len(times)):
        per = max(ntoks[i], 1)
        gap = (times[i] - times[i - 1]) / NS_PER_MS / per
        itl.extend([gap] * per)
    decode_client = None
    if len(times) >= 2:
        decode_client = decode_rate(n_streamed - max(ntoks[0], 1), times[0], times[-1])
    tpot = None
    if ttft is not None and e2e is not None and n_out > 1:
        tpot = (e2e - ttft) / (n_out - 1)
    t = r.timings
    decode_server = prompt_tps = prompt_ms = overhead = None
    n_prompt = None
    cache_n = 0
    if t is not None:
        decode_server = t.predicted_per_second if t.predicted_n > 1 else None
        prompt_tps = t.prompt_per_second if t.prompt_n > 0 else None
        prompt_ms = t.prompt_ms
        overhead = None if ttft is None else ttft - t.prompt_ms
        n_prompt = t.prompt_n + t.cache_n
        cache_n = t.cache_n
    elif r.usage is not None:
        n_prompt = r.usage.prompt_tokens
    return RequestMetrics(
        ttfr_ms=_ms(r.t_sent_ns, r.t_first_event_ns),
        ttft_ms=ttft,
        e2e_ms=e2e,
        tpot_ms=tpot,
        itl_ms=tuple(itl),
        decode_tps_client=decode_client,
        decode_tps_server=decode_server,
        prompt_tps_server=prompt_tps,
        prompt_ms_server=prompt_ms,
        client_overhead_ms=overhead,
        n_prompt=n_prompt,
        n_out=n_out,
        cache_n=cache_n,
        cache_hit=cache_n > 0,
        ids_missing=r.ids_missing,
    )
