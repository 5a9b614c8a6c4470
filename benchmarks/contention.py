"""Alternating scheduling gives each server its solo speed when simultaneous runs compete.

Two real llama-servers (demo Q4_K_M and Q8_0) with cores // 2 + 1 threads each (2 each on a
2-core machine): more busy threads than cores, the case the contention warning is about.
Rounds alternate between the schedules (simultaneous, alternating, simultaneous, ...) so
machine noise hits both alike; per server, the median round's server-side decode tok/s
under each schedule is compared.

Target, for each server: decode tok/s alternating ÷ simultaneous ≥ 1.1 (the warning's advice
is worth taking).

Oversubscribed, simultaneous rounds crawl (1–13 tok/s against ~45 alone on 2 cores here):

    .venv/bin/python benchmarks/contention.py             # ~3 min
    .venv/bin/python benchmarks/contention.py --rounds 1  # a quick look, ~1 min
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import psutil

from _common import Targets, median
from quanttui import demo
from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.servers import LaunchSpec, ManagedServer
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import builtin_suite

SHORT_ARGS = ["--rounds", "1"]
CORES = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
THREADS = CORES // 2 + 1  # two servers: more threads than cores


async def run(args: argparse.Namespace) -> int:
    models = demo.prepare(quants=("Q4_K_M", "Q8_0"), say=lambda m: None)
    prompts = tuple(builtin_suite("quick")[:2])
    params = GenerationParams(n_predict=24, ignore_eos=True)
    rates: dict[tuple[str, str], list[float]] = {}
    names = ("Q4_K_M", "Q8_0")
    with ManagedServer(LaunchSpec(models["Q4_K_M"], threads=THREADS), name="Q4_K_M") as a, \
            ManagedServer(LaunchSpec(models["Q8_0"], threads=THREADS), name="Q8_0") as b:
        specs = [ServerSpec(s.label, s.url, pid=s.pid) for s in (a, b)]
        for i in range(args.rounds):
            for schedule in ("simultaneous", "alternating"):
                res = await Session(specs, RunPlan(prompts=prompts, params=params,
                                                   schedule=schedule)).run()
                for name in names:
                    s = res.summary(name, "decode_tps_server")
                    if s is not None:
                        rates.setdefault((name, schedule), []).append(s.mean)
                print(f"round {i + 1} {schedule}: " + ", ".join(
                    f"{n} {rates.get((n, schedule), [float('nan')])[-1]:.2f} tok/s"
                    for n in names))
    t = Targets("contention")
    for name in names:
        sim, alt = rates.get((name, "simultaneous")), rates.get((name, "alternating"))
        ratio = median(alt) / median(sim) if sim and alt else None
        t.check(f"{name} decode tok/s alternating ÷ simultaneous", "≥", 1.1, ratio,
                detail=f"{len(sim or [])} rounds each, {THREADS} threads × 2 servers on "
                       f"{CORES} cores")
    return t.finish()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
