"""Live figures against the fake server: the real Session → LiveRun path the TUI draws from.

The fake streams one event per token at a set rate, so the true rate and TTFT are known.
"""

from __future__ import annotations

import pytest

from quanttui.core.llama.params import GenerationParams
from quanttui.core.run.events import Event, TokenBatch
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import Prompt
from quanttui.testing.fake_server import FakeLlamaServer
from quanttui.tui.live import LiveRun

PROMPT = (Prompt("p", "x"),)


async def _run_live(server: FakeLlamaServer, n_predict: int, after_tokens: int
                    ) -> tuple[list[float], float, float | None, float | None]:
    """(live rates seen once `after_tokens` had arrived, the request's final client rate, the
    live TTFT, the final TTFT)."""
    plan = RunPlan(prompts=PROMPT, params=GenerationParams(n_predict=n_predict), warmup=0)
    live: LiveRun | None = None
    seen: list[float] = []
    first_ttft: list[float | None] = []

    def emit(ev: Event) -> None:
        assert live is not None
        live.on_event(ev)
        if isinstance(ev, TokenBatch):
            cur = live.by_server["A"].current
            assert cur is not None
            if not first_ttft:
                first_ttft.append(cur.ttft_ms)
            rate = cur.decode_tps()
            if cur.n_tokens >= after_tokens and rate is not None:
                seen.append(rate)

    session = Session([ServerSpec("A", server.url)], plan, emit=emit)
    live = LiveRun(session.results)
    results = await session.run()
    (rec,) = results.measured("A")
    assert rec.ok and rec.result is not None
    final = request_metrics(rec.result)
    assert final.decode_tps_client is not None
    return seen, final.decode_tps_client, first_ttft[0], final.ttft_ms


async def test_live_decode_rate() -> None:
    """After 8 tokens at 90 tok/s the live figure is within 5% of the true rate, from the first
    batch on: a batch's tokens are counted from its first event's time, not its last's."""
    with FakeLlamaServer(token_delay=1 / 90) as server:
        seen, true_rate, _, _ = await _run_live(server, n_predict=90, after_tokens=8)
    assert seen, "no live figure after 8 tokens"
    assert true_rate == pytest.approx(90, rel=0.15)  # the fake keeps its pace on this machine
    for rate in seen:
        assert rate == pytest.approx(true_rate, rel=0.05)


async def test_live_ttft_with_the_first_token() -> None:
    """A 300 ms prompt: the live TTFT shows with the first batch and agrees with the final one;
    both read 300–330 ms."""
    with FakeLlamaServer(token_delay=0.01, prompt_delay=0.3) as server:
        _, _, live_ttft, final_ttft = await _run_live(server, n_predict=10, after_tokens=2)
    assert final_ttft is not None and 300 <= final_ttft <= 330
    assert live_ttft is not None and live_ttft == pytest.approx(final_ttft, abs=1.0)


async def test_decode_rate_at_50_tok_s() -> None:
    with FakeLlamaServer(token_delay=1 / 50) as server:
        seen, true_rate, _, _ = await _run_live(server, n_predict=40, after_tokens=8)
    assert true_rate == pytest.approx(50, rel=0.05)
    assert seen and all(r == pytest.approx(50, rel=0.05) for r in seen)


def test_a_steady_rate_draws_flat_whatever_the_batches() -> None:
    """Tokens come to the screen in batches (a quarter of a second, or whatever a paced read
    brought); each batch's tokens go into the seconds its events span, so a steady 40 tok/s
    in 0.3 s batches charts 40 every second, not 36 and 48 by turns (the seconds that three
    or four batches happen to end in)."""
    from quanttui.core.run.events import RequestStarted

    results = Session([ServerSpec("A", "http://127.0.0.1:9")],
                      RunPlan(prompts=PROMPT, warmup=0)).results
    live = LiveRun(results)
    live.on_event(RequestStarted(1, "A", "p", 0, False))
    ns, t = 1_000_000_000, 5_000_000_000
    for _ in range(40):  # 12 s of 0.3 s batches, 12 tokens each
        start, t = t, t + 300_000_000
        live.on_event(TokenBatch(1, "A", 0, start + 25_000_000, t, "x" * 12, (), 12, 12, False))
    values = live.by_server["A"].rate.values
    assert sum(values) == 40 * 12  # every token counted once
    # the first second holds the first batch's gap before it; the last is partial
    assert all(abs(v - 40) <= 1 for v in values[1:-1]), values
    assert len(values) == (t - 5_025_000_000) // ns + 1  # from the first token
