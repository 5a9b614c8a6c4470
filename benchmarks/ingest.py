"""SSE ingest rate of quanttui's streaming client against a bare httpx line loop.

Both read the same full-speed /completion stream (the request quanttui sends: return_tokens,
timings_per_token) from a fake llama-server in another process that writes as llama-server
does: one SSE event per token, each in a chunk of its own, one write each, with the running
timings in every event. Each rate is events per CPU-second of this process (i.e. on one core),
measured in alternating rounds so machine noise hits both alike; the median round counts.

Targets:
- client / bare httpx ingest rate ≥ 0.50 (the client keeps at least half the bare loop's rate);
- client ≥ 100,000 events per CPU-second (2,000 events a second, a pair of 1,000 tok/s GPU
  servers, would then cost ≤ 2% of a core if they came this fast; paced as a real server sends
  them, one event per read, each costs more: engine_cost.py measures that case).

    .venv/bin/python benchmarks/ingest.py                            # ~30 s
    .venv/bin/python benchmarks/ingest.py --events 20000 --rounds 3  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx

from _common import CpuTimer, Targets, fake_server_process, median
from quanttui.core.llama.client import LlamaClient, Timeouts
from quanttui.core.llama.params import GenerationParams

BARE = "bare httpx aiter_lines"
CLIENT = "quanttui LlamaClient"


async def bare(url: str, n: int) -> int:
    body = {"prompt": "x", "n_predict": n, "stream": True, "return_tokens": True,
            "timings_per_token": True}
    count = 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as http, http.stream(
            "POST", "/completion", content=json.dumps(body)) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                count += 1
    return count


async def client(url: str, n: int) -> int:
    async with LlamaClient(url, timeouts=Timeouts(5, 60, None)) as c:
        res = await c.complete("x", GenerationParams(n_predict=n))
    return res.n_events + 1  # + the final event


async def measure(events: int, rounds: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {BARE: [], CLIENT: []}
    with fake_server_process() as url:
        await bare(url, 1000)  # warm both paths
        await client(url, 1000)
        for _ in range(rounds):
            for name, fn in ((BARE, bare), (CLIENT, client)):
                with CpuTimer() as t:
                    n = await fn(url, events)
                if n != events + 1:
                    raise RuntimeError(f"{name} read {n} events of {events + 1}")
                rates[name].append(n / t.cpu)
    return rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="events per request")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (median counts)")
    args = ap.parse_args()
    rates = asyncio.run(measure(args.events, args.rounds))
    b, c = median(rates[BARE]), median(rates[CLIENT])
    print(f"events per request: {args.events}, rounds: {args.rounds} (median shown)")
    for name, rs in rates.items():
        print(f"  {name:<24} {median(rs):>10,.0f} events/s per core   "
              f"(min {min(rs):,.0f}, max {max(rs):,.0f})")
    t = Targets("ingest")
    t.check("client/bare httpx ingest rate", "≥", 0.50, c / b,
            detail=f"client {c:,.0f}, bare {b:,.0f} events per CPU-second")
    t.check("client ingest rate", "≥", 100_000, c, "/s",
            detail=f"per CPU-second, full speed: 2,000 events would cost {2000 / c:.2%} "
                   "of a core")
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
