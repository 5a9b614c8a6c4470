"""How faithful the client's timing is, on two real llama-servers (demo Q4_K_M and Q8_0).

Prints, over every request of a run in each schedule, the distribution of
client decode tok/s ÷ server `predicted_per_second` (1.00 is perfect) and of
client TTFT − server `prompt_ms` (HTTP, queueing, tokenization; never negative).

    python benchmarks/fidelity.py [--requests 6] [--n-predict 64]
"""

from __future__ import annotations

import argparse
import asyncio

from quanttui import demo
from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.servers import LaunchSpec, ManagedServer
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.run.stats import summarize
from quanttui.core.suites.prompts import builtin_suite


def row(name: str, xs: list[float], fmt: str) -> str:
    s = summarize(xs)
    if s is None:
        return f"  {name:<30} n/a"
    return (f"  {name:<30} n={s.n:<3} mean {s.mean:{fmt}}  p50 {s.p50:{fmt}}  "
            f"p90 {s.p90:{fmt}}  min {s.min:{fmt}}  max {s.max:{fmt}}")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=6, help="prompts per schedule")
    ap.add_argument("--n-predict", type=int, default=64)
    args = ap.parse_args()
    models = demo.prepare(say=lambda m: None)
    prompts = tuple((builtin_suite("quick") * 4)[: args.requests])
    prompts = tuple(type(p)(f"{p.id}-{i}", p.text, p.category) for i, p in enumerate(prompts))
    with ManagedServer(LaunchSpec(models["Q4_K_M"]), name="Q4_K_M") as a, \
            ManagedServer(LaunchSpec(models["Q8_0"]), name="Q8_0") as b:
        specs = [ServerSpec(s.label, s.url, pid=s.pid) for s in (a, b)]
        for schedule in ("simultaneous", "alternating", "sequential"):
            res = await Session(specs, RunPlan(
                prompts=prompts, params=GenerationParams(n_predict=args.n_predict,
                                                         ignore_eos=True),
                schedule=schedule)).run()  # type: ignore[arg-type]
            ratios, gaps = [], []
            for r in res.measured():
                m = r.metrics
                if m and m.decode_tps_client and m.decode_tps_server:
                    ratios.append(m.decode_tps_client / m.decode_tps_server)
                if m and m.client_overhead_ms is not None:
                    gaps.append(m.client_overhead_ms)
            print(f"{schedule}:")
            print(row("client/server decode tok/s", ratios, ".4f"))
            print(row("TTFT − prompt_ms (ms)", gaps, ".2f"))


if __name__ == "__main__":
    asyncio.run(main())
