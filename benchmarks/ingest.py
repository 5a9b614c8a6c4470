"""SSE ingest rate of quanttui's streaming client against a bare httpx line loop.

Both read the same full-speed /completion stream from a fake llama-server running in another
process; each rate is events per CPU-second of this process (i.e. on one core), measured in
alternating rounds so machine noise hits both alike. Targets: the client keeps ≥ 50% of the
bare loop's rate and ≥ 100k events/s, so even a pair of 1,000 tok/s GPU servers costs it under
2% of a core.

    python benchmarks/ingest.py [--events 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httpx

from _common import CpuTimer, fake_server_process, median
from quanttui.core.llama.client import LlamaClient, Timeouts
from quanttui.core.llama.params import GenerationParams


async def bare(url: str, n: int) -> int:
    body = {"prompt": "x", "n_predict": n, "stream": True}
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


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rates: dict[str, list[float]] = {"bare httpx aiter_lines": [], "quanttui LlamaClient": []}
    with fake_server_process() as url:
        await bare(url, 1000)  # warm both paths
        await client(url, 1000)
        for _ in range(args.rounds):
            for name, fn in (("bare httpx aiter_lines", bare), ("quanttui LlamaClient", client)):
                with CpuTimer() as t:
                    n = await fn(url, args.events)
                rates[name].append(n / t.cpu)
    b = median(rates["bare httpx aiter_lines"])
    c = median(rates["quanttui LlamaClient"])
    print(f"events per request: {args.events}, rounds: {args.rounds} (median shown)")
    for name, rs in rates.items():
        print(f"  {name:<24} {median(rs):>10,.0f} events/s per core   "
              f"(min {min(rs):,.0f}, max {max(rs):,.0f})")
    print(f"  ratio client/bare: {c / b:.2f}  (target ≥ 0.50)")
    print(f"  client ≥ 100k events/s: {'yes' if c >= 100_000 else 'NO'}")
    print(f"  a 2×1,000 tok/s pair would cost the client {2000 / c:.2%} of a core")


if __name__ == "__main__":
    asyncio.run(main())
