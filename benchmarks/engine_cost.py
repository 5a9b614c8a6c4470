"""The engine's own CPU while two servers stream, headless, against the bare streaming client.

Two fake llama-servers run in other processes and write as llama-server does (one SSE event per
token, one write each, running timings in every event). This process runs a simultaneous
Session over them (client, SSE parsing, metrics, events, a consumer that touches every event),
so its CPU time is what quanttui's engine costs; the bare streaming client (LlamaClient alone,
the same requests to both servers at once) runs in alternating rounds beside it.

Two cases:
- full speed: the fakes write as fast as they can; CPU milliseconds per 1,000 tokens;
- fast: 2 servers × 1,000 tok/s (a GPU pair), paced by the fakes' clock; share of one core
  (CPU time / wall time) over the run.

Targets:
- full speed: engine CPU per token / bare client's ≤ 1.5 (the run's bookkeeping, metrics and
  events cost at most half again what reading the streams costs);
- fast case: the same ratio at 2 × 1,000 tok/s (reading 2,000 events a second costs the bare
  client itself several % of a core; what the engine adds is its own).

    .venv/bin/python benchmarks/engine_cost.py                  # ~1.5 min
    .venv/bin/python benchmarks/engine_cost.py --prompts 4 --rounds 2 --fast-tokens 1000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from _common import CpuTimer, Targets, fake_server_process, median
from quanttui.core.llama.client import LlamaClient, Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.run.events import Event
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import Prompt

T = Timeouts(5, 60, None)
BARE = "bare client"
ENGINE = "engine (Session)"

Runner = Callable[[list[str], int, int], Awaitable[int]]


async def session_run(urls: list[str], n: int, prompts: int) -> int:
    seen = 0

    def emit(e: Event) -> None:  # a consumer that touches every event, like a UI buffer would
        nonlocal seen
        seen += 1

    plan = RunPlan(prompts=tuple(Prompt(f"p{i}", f"prompt {i}") for i in range(prompts)),
                   params=GenerationParams(n_predict=n), warmup=0, timeouts=T)
    res = await Session([ServerSpec(f"S{i}", u) for i, u in enumerate(urls)], plan,
                        emit=emit).run()
    return sum(r.metrics.n_out for r in res.records if r.metrics)


async def client_only(urls: list[str], n: int, prompts: int) -> int:
    total = 0
    clients = [LlamaClient(u, timeouts=T) for u in urls]
    for i in range(prompts):
        rs = await asyncio.gather(*(c.complete(f"prompt {i}", GenerationParams(n_predict=n))
                                    for c in clients))
        total += sum(r.n_tokens for r in rs)
    for c in clients:
        await c.aclose()
    return total


async def rounds(delay: float, n: int, prompts: int, k: int
                 ) -> dict[str, list[tuple[float, float, int]]]:
    """(CPU s, wall s, tokens) per round for each runner, alternating bare / engine."""
    out: dict[str, list[tuple[float, float, int]]] = {BARE: [], ENGINE: []}
    runners: tuple[tuple[str, Runner], ...] = ((BARE, client_only), (ENGINE, session_run))
    with fake_server_process(delay) as u1, fake_server_process(delay) as u2:
        urls = [u1, u2]
        await session_run(urls, 50, 1)  # warm both paths
        await client_only(urls, 50, 1)
        for _ in range(k):
            for name, fn in runners:
                with CpuTimer() as t:
                    toks = await fn(urls, n, prompts)
                if toks != 2 * n * prompts:
                    raise RuntimeError(f"{name} got {toks} tokens of {2 * n * prompts}")
                out[name].append((t.cpu, t.wall, toks))
    return out


async def run(args: argparse.Namespace) -> int:
    t = Targets("engine_cost")

    full = await rounds(0.0, args.tokens, args.prompts, args.rounds)
    ms = {k: median([c / toks * 1e6 for c, _, toks in v]) for k, v in full.items()}
    print(f"full speed: {args.prompts} prompts × 2 servers × {args.tokens} tokens, "
          f"{args.rounds} rounds (median)")
    for name, x in ms.items():
        print(f"  {name:<18} {x:6.2f} ms CPU per 1,000 tokens")
    print(f"  engine / bare client: {ms[ENGINE] / ms[BARE]:.2f}×")

    fast = await rounds(0.001, args.fast_tokens, args.fast_prompts, args.rounds)
    share = {k: median([c / w for c, w, _ in v]) for k, v in fast.items()}
    rate = {k: median([toks / w for _, w, toks in v]) for k, v in fast.items()}
    print(f"fast: 2 servers × 1,000 tok/s, {args.fast_prompts} prompts × {args.fast_tokens} "
          f"tokens, {args.rounds} rounds (median)")
    for name in share:
        print(f"  {name:<18} {share[name]:6.2%} of a core   ({rate[name]:,.0f} tok/s in all, "
              f"CPU / wall over the run)")

    t.check("engine/bare client CPU per token at full speed", "≤", 1.5, ms[ENGINE] / ms[BARE],
            detail=f"engine {ms[ENGINE]:.2f}, bare {ms[BARE]:.2f} ms per 1,000 tokens")
    # At 2×1,000 tok/s reading the events alone costs a few % of a core (one read per event,
    # as llama-server writes them); what the engine adds on top is what it owns.
    t.check("engine/bare client CPU at 2×1,000 tok/s", "≤", 1.5, share[ENGINE] / share[BARE],
            detail=f"engine {share[ENGINE]:.2%}, bare client {share[BARE]:.2%} of one core")
    return t.finish()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=2000,
                    help="tokens per request at full speed (llama-server -c 2048: ≤ 2,048)")
    ap.add_argument("--prompts", type=int, default=10, help="prompts per round at full speed")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median counts)")
    ap.add_argument("--fast-tokens", type=int, default=2000,
                    help="tokens per request in the fast case (2 s each at 1,000 tok/s)")
    ap.add_argument("--fast-prompts", type=int, default=3, help="prompts per round, fast case")
    args = ap.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
