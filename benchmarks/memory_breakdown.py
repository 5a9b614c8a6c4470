"""Where a server's memory goes, against what is measured, at two contexts.

For each demo quant (`quanttui demo --prepare` makes them) and each context, one real
llama-server at a time (one thread, -np 1, as quanttui starts them: -lv 4): a prompt of token
ids fills the KV cache to `--fill` of the context (the depth is printed), then the process is
measured (private memory + the model file's resident pages, /proc/PID/smaps) and set beside

- the parts llama-server's log names (core.hardware.breakdown: weights mapped and repacked, KV
  cache written, compute and output buffers, context checkpoints) plus the runtime allowance;
- the fit check's prediction made before the start (core.models.fit: file + KV cache + runtime).

Targets: |sum of parts − measured| ≤ 5% of measured, |predicted − measured| ≤ 10% of measured,
for every quant and context.

    python benchmarks/memory_breakdown.py [--quants Q8_0,Q4_K_M,IQ4_NL,Q3_K_S,Q2_K]
                                          [--contexts 2048,16384] [--fill 0.9]

About 1 minute per quant at 16k context on one core of a 2-core machine (the prompt).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _common import Targets
from quanttui import demo
from quanttui.core.hardware.breakdown import TOLERANCE, breakdown
from quanttui.core.hardware.process import ModelPages, ProcessSampler, ProcessTarget
from quanttui.core.hardware.reading import format_bytes
from quanttui.core.models import fit
from quanttui.core.models.buffers import read_server_log
from quanttui.core.models.servers import LaunchSpec, ManagedServer

SHORT_ARGS = ["--quants", "IQ4_NL,Q8_0", "--contexts", "2048,16384"]
PREDICTION_TOLERANCE = 0.10


def measure(model: Path, ctx: int, fill: float, logs: Path) -> dict[str, object]:
    server = ManagedServer(LaunchSpec(model=model, threads=1, ctx_size=ctx), log_dir=logs,
                           name=model.stem)
    predicted = fit.estimate(model, ctx).ram_bytes  # before the start, as the launcher checks
    with server:
        depth = int(ctx * fill)
        t0 = time.monotonic()
        httpx.post(server.url + "/completion", timeout=1800, json={
            "prompt": list(range(1000, 1000 + depth)), "n_predict": 4, "cache_prompt": False,
            "temperature": 0,
        }).raise_for_status()
        took = time.monotonic() - t0
        time.sleep(0.2)
        sample = ProcessSampler(ProcessTarget(model.stem, pid=server.pid)).sample()
        assert isinstance(sample.model, ModelPages) and isinstance(sample.private_bytes, int)
        bd = breakdown(read_server_log(server.log_path), sample.private_bytes,
                       sample.model.resident_bytes)
    return {"bd": bd, "predicted": predicted, "depth": depth, "took": took}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quants", default="Q8_0,Q4_K_M,IQ4_NL,Q3_K_S,Q2_K")
    ap.add_argument("--contexts", default="2048,16384")
    ap.add_argument("--fill", type=float, default=0.9,
                    help="share of the context the prompt fills (default 0.9)")
    args = ap.parse_args()
    models = demo.prepare(say=lambda m: print(m, file=sys.stderr))
    t = Targets("memory_breakdown")
    with tempfile.TemporaryDirectory(prefix="quanttui-mem-") as tmp:
        for ctx in (int(c) for c in args.contexts.split(",")):
            for q in args.quants.split(","):
                m = measure(models[q], ctx, args.fill, Path(tmp))
                bd = m["bd"]
                assert not isinstance(bd, (str, int, float)) and bd.measured
                predicted = int(m["predicted"])  # type: ignore[call-overload]
                parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in bd.parts())
                print(f"{q} -c {ctx}, filled to {m['depth']} tokens "
                      f"({m['took']:.0f} s): {parts}; sum {format_bytes(bd.parts_total or 0)}, "
                      f"measured {format_bytes(bd.measured)} (difference "
                      f"{bd.difference_text() or 'n/a'}); fit check predicted "
                      f"{format_bytes(predicted)}", flush=True)
                where = f"{q} -c {ctx}"
                t.check(f"{where}: |sum of parts − measured| / measured", "≤", TOLERANCE,
                        abs(bd.difference or 0) / bd.measured if bd.difference is not None
                        else None, "%",
                        f"{format_bytes(bd.parts_total or 0)} vs {format_bytes(bd.measured)}")
                t.check(f"{where}: |predicted − measured| / measured", "≤", PREDICTION_TOLERANCE,
                        abs(predicted - bd.measured) / bd.measured, "%",
                        f"{format_bytes(predicted)} vs {format_bytes(bd.measured)}")
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
