"""What a ladder costs beyond its parts.

Runs a real ladder on the demo quants (`quanttui demo --prepare` makes them) and compares its
wall time with the sum of the parts it cannot avoid: starting the servers, the requests (each
pass's whole session: probe, warm-up and measured requests), teacher forcing (distributions and
the perplexity text) and the task items, each timed where it runs (core.ladder.runner). What is
left is orchestration: the hardware poller, going from pass to pass, building the rows and the
verdict.

Target: overhead ≤ 10% of the wall time.

    python benchmarks/ladder_cost.py [--quants Q4_K_M,IQ4_NL,Q2_K] [--prompts 3] [-n 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from _common import Targets
from quanttui import demo
from quanttui.core.ladder.lineup import collect_models, lineup
from quanttui.core.ladder.runner import LadderOptions, run_ladder
from quanttui.core.ladder.section import ladder_section
from quanttui.core.ladder.verdict import Constraints
from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.launcher import Launcher
from quanttui.core.quality.step import QualityOptions
from quanttui.core.run.plan import RunPlan
from quanttui.core.suites.prompts import builtin_suite
from quanttui.core.suites.tasks import builtin_tasks


async def main(args: argparse.Namespace) -> int:
    models = demo.prepare(say=lambda m: print(m, file=sys.stderr))
    lu = lineup(collect_models([models[q] for q in args.quants.split(",")]))
    opts = LadderOptions(
        plan=RunPlan(prompts=tuple(builtin_suite("quick")[:args.prompts]),
                     params=GenerationParams(n_predict=args.n_predict), warmup=1),
        quality=QualityOptions(k=100, position_budget=args.positions, positions_per_prompt=16,
                               task_items=tuple(builtin_tasks()[:args.tasks])),
        text_positions=args.positions)
    t0 = time.monotonic()
    run = await run_ladder(lu, opts, Launcher(), say=lambda m: print(m, file=sys.stderr))
    ladder_section(run, Constraints())  # rows and the verdict are part of the cost
    wall = time.monotonic() - t0
    parts = sum(run.timings.values())
    for part, s in sorted(run.timings.items()):
        print(f"{part:>16}: {s:7.2f} s")
    print(f"{'sum of parts':>16}: {parts:7.2f} s")
    print(f"{'wall':>16}: {wall:7.2f} s  ({len(lu.names)} quants, "
          f"{'reference beside each' if run.together else 'one at a time'})")
    t = Targets("ladder_cost")
    t.check("ladder overhead beyond its parts", "≤", 0.10, (wall - parts) / wall, "%",
            f"{wall - parts:.1f} s of {wall:.1f} s")
    return t.finish()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quants", default="Q4_K_M,IQ4_NL,Q2_K")
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("-n", "--n-predict", type=int, default=16)
    ap.add_argument("--positions", type=int, default=32)
    ap.add_argument("--tasks", type=int, default=8)
    sys.exit(asyncio.run(main(ap.parse_args())))
