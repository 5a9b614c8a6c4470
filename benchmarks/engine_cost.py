"""The engine's own CPU per 1,000 streamed tokens, headless, against fake servers at full speed.

Two fake llama-servers run in other processes; this process runs a simultaneous Session over
them (client, SSE parsing, metrics, events, progress consumer), so its CPU time is what
quanttui costs. Compared side by side with the bare streaming client alone on the same streams.

    python benchmarks/engine_cost.py [--tokens 20000] [--prompts 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio

from _common import CpuTimer, fake_server_process, median
from quanttui.core.llama.client import LlamaClient, Timeouts
from quanttui.core.llama.params import GenerationParams
from quanttui.core.run.events import Event
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import Prompt

T = Timeouts(5, 60, None)


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


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tokens", type=int, default=20_000, help="tokens per request")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cost: dict[str, list[float]] = {"bare client": [], "engine (Session)": []}
    with fake_server_process() as u1, fake_server_process() as u2:
        urls = [u1, u2]
        await session_run(urls, 500, 1)
        for _ in range(args.rounds):
            for name, fn in (("bare client", client_only), ("engine (Session)", session_run)):
                with CpuTimer() as t:
                    toks = await fn(urls, args.tokens, args.prompts)
                cost[name].append(t.cpu / toks * 1000 * 1000)  # ms CPU per 1,000 tokens
    print(f"{args.prompts} prompts × 2 servers × {args.tokens} tokens, {args.rounds} rounds "
          "(median)")
    for name, xs in cost.items():
        print(f"  {name:<18} {median(xs):6.2f} ms CPU per 1,000 tokens")
    e, b = median(cost["engine (Session)"]), median(cost["bare client"])
    print(f"  engine / bare client: {e / b:.2f}×")
    print(f"  at 2×1,000 tok/s the engine would use {e * 2 / 1000:.1%} of a core")


if __name__ == "__main__":
    asyncio.run(main())
