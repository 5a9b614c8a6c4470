"""How faithful the client's timing is, on two real llama-servers (demo Q4_K_M and Q8_0).

Runs the same prompts in each schedule (simultaneous, alternating, sequential), once with each
way of timing tokens (docs/metrics.md: `arrival`, every read stamped on the client's clock, and
`server`, the default, the first token's arrival plus the server's running timings, reads paced),
and compares, request by request, quanttui's figures with llama-server's own from the same
request. The `arrival` pass is what says the two clocks agree, the ground the `server` pass
stands on; the `server` pass checks the path as shipped:

- client decode tok/s ÷ server `predicted_per_second` (both (n − 1) / time between the first
  and the last token; 1.00 is perfect): the two clocks time the same tokens, so the ratio is
  immune to how busy the machine is;
- client TTFT − server `prompt_ms` (HTTP, queueing, tokenization): never negative.

Targets, over every request of every schedule:
- median |client/server decode tok/s − 1| ≤ 0.005 (tighter than the 1/(n − 1) an n vs n − 1
  slip would cost at n_predict 64, so a convention error fails);
- worst |client/server decode tok/s − 1| ≤ 0.02;
- least TTFT − prompt_ms ≥ 0 ms.

    .venv/bin/python benchmarks/fidelity.py                # ~3 min
    .venv/bin/python benchmarks/fidelity.py --requests 3   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from _common import Targets, median
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


async def run(args: argparse.Namespace) -> int:
    models = demo.prepare(quants=("Q4_K_M", "Q8_0"), say=lambda m: None)
    prompts = tuple((builtin_suite("quick") * 4)[: args.requests])
    prompts = tuple(type(p)(f"{p.id}-{i}", p.text, p.category) for i, p in enumerate(prompts))
    all_ratios: list[float] = []
    all_gaps: list[float] = []
    expected = 0
    with ManagedServer(LaunchSpec(models["Q4_K_M"]), name="Q4_K_M") as a, \
            ManagedServer(LaunchSpec(models["Q8_0"]), name="Q8_0") as b:
        specs = [ServerSpec(s.label, s.url, pid=s.pid) for s in (a, b)]
        for schedule, times in [(s, t) for t in ("arrival", "server")
                                for s in ("simultaneous", "alternating", "sequential")]:
            res = await Session(specs, RunPlan(
                prompts=prompts, params=GenerationParams(n_predict=args.n_predict,
                                                         ignore_eos=True),
                schedule=schedule, server_times=times == "server")).run()
            ratios, gaps = [], []
            for r in res.measured():
                expected += 1
                m = r.metrics
                if m and m.decode_tps_client and m.decode_tps_server:
                    ratios.append(m.decode_tps_client / m.decode_tps_server)
                if m and m.client_overhead_ms is not None:
                    gaps.append(m.client_overhead_ms)
            print(f"{schedule}, token times: {times}:")
            print(row("client/server decode tok/s", ratios, ".4f"))
            print(row("TTFT − prompt_ms (ms)", gaps, ".2f"))
            all_ratios += ratios
            all_gaps += gaps
    n = f"{len(all_ratios)} of {expected} requests"
    dev = [abs(r - 1) for r in all_ratios]
    t = Targets("fidelity")
    lo, hi = (min(all_ratios), max(all_ratios)) if all_ratios else (float("nan"),) * 2
    # A request without both figures is a miss: the figure could not be checked.
    complete = len(all_ratios) == expected and expected > 0
    t.check("median |client/server decode tok/s − 1|", "≤", 0.005,
            median(dev) if complete else None, detail=f"{n}; ratios {lo:.4f}–{hi:.4f}")
    t.check("worst |client/server decode tok/s − 1|", "≤", 0.02,
            max(dev) if complete else None, detail=n)
    t.check("least TTFT − prompt_ms", "≥", 0.0,
            min(all_gaps) if len(all_gaps) == expected and all_gaps else None, "ms",
            detail=f"{len(all_gaps)} of {expected} requests; median {median(all_gaps):.3g} ms")
    return t.finish()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=6, help="prompts per schedule")
    ap.add_argument("--n-predict", type=int, default=64)
    args = ap.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
