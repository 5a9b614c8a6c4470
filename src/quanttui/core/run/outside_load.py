"""What else ran on the machine while it was measured, and requests that stalled.

Speeds on a shared machine move with what other processes do: the pairing cancels what hits
both servers in one block of time, but a busy host still slows both (and moves any comparison
with another run). Two notices say so, so that the figures they affect are read with it:

- "outside-load": other processes kept at least `OUTSIDE_LOAD_CORES` of the host's cores busy
  on average while the servers were measured (host CPU less the watched servers' and quanttui's
  own, from the hardware samples: core.hardware.summary.other_cpu_cores);
- "own-cost": quanttui itself took more than `OWN_CPU_BUDGET` % of a core on average (its UI,
  stream readers and poller: `hardware.own_cpu_percent_mean`), CPU the servers did not have;
- "stall": a request decoding far slower than it should (decode tok/s under `STALL_FRACTION`
  of its baseline: the median of its prompt's repetitions on the same server when the prompt
  ran ≥ `STALL_MIN_SAME` times, else the median of the server's other requests at the same
  concurrency: one server's decode speed varies little across prompts), which the per-prompt
  mean it enters would otherwise hide. So a stall is seen with one repetition too.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from quanttui.core.run.events import Notice
from quanttui.core.run.records import RunResults

OUTSIDE_LOAD_CORES = 0.5  # half a core busy elsewhere, on average: worth saying
OWN_CPU_BUDGET = 2.0  # % of one core quanttui may take while it measures
STALL_FRACTION = 0.5  # a request at under half its baseline (a median decode rate)
STALL_MIN_SAME = 3  # repetitions of a prompt for its own median to be the baseline
STALL_MIN_OTHERS = 2  # else: the server's other requests needed for theirs to be
STALL_MIN_TOKENS = 8  # a shorter request's rate is too jittery to judge or to judge by
# what a stall slows: the figures that include a stalled request
STALL_AFFECTS = ("decode tok/s, TPOT, ITL and E2E of that server, its prompts' means and the "
                 "paired decode and E2E intervals with it")
# the notices' codes: what slowed the measurement, said beside the figures it affects
LOAD_CODES = ("outside-load", "own-cost", "stall")


def outside_load_notice(hardware: dict[str, Any] | None, where: str = "") -> dict[str, Any] | None:
    """A warning when other processes kept the host busy while measuring; None otherwise or
    when it can't be told (remote servers, no samples)."""
    host = (hardware or {}).get("host") or {}
    other = host.get("other_cpu_cores_mean")
    cores = host.get("logical_cores")
    if not isinstance(other, (int, float)) or other < OUTSIDE_LOAD_CORES:
        return None
    of = f" of {cores}" if isinstance(cores, int) else ""
    return {"level": "warning", "code": "outside-load", "server": None,
            "message": f"{where}other processes kept {other:.1f}{of} cores busy on average "
                       "while the servers were measured: every speed here is slowed by them, "
                       "and a comparison with another run moves with them (pairs within this "
                       "run share the load)"}


def own_cost_notice(hardware: dict[str, Any] | None) -> dict[str, Any] | None:
    own = (hardware or {}).get("own_cpu_percent_mean")
    if not isinstance(own, (int, float)) or own <= OWN_CPU_BUDGET:
        return None
    return {"level": "warning", "code": "own-cost", "server": None,
            "message": f"quanttui itself used {own:.1f}% of a core on average while measuring "
                       f"(its budget: {OWN_CPU_BUDGET:g}%): CPU the servers did not have, so "
                       "their speeds may read a little low (a headless run costs least)"}


def stalled_requests(results: RunResults, metric: str = "decode_tps_client"
                     ) -> dict[str, list[tuple[int, str, float, float, str]]]:
    """Per server, its stalled requests: (request id, prompt id, rate, baseline median, what
    the baseline is), in request order. A request's baseline is its prompt's repetitions on
    the same server (itself included) when there are ≥ `STALL_MIN_SAME`, else the server's
    other requests at the same concurrency (≥ `STALL_MIN_OTHERS`); none, no call. Requests
    of fewer than `STALL_MIN_TOKENS` tokens are left out of both."""
    by: dict[tuple[str, int], list[tuple[int, str, float]]] = {}
    for r in results.measured():
        v = getattr(r.metrics, metric) if r.ok and r.metrics is not None else None
        if v is not None and r.metrics is not None and r.metrics.n_out >= STALL_MIN_TOKENS:
            by.setdefault((r.server, r.concurrency), []).append(
                (r.request_id, r.prompt_id, float(v)))
    stalled: dict[str, list[tuple[int, str, float, float, str]]] = {}
    for (server, _), vals in by.items():
        for rid, prompt, v in vals:
            same = [x for _, p, x in vals if p == prompt]
            if len(same) >= STALL_MIN_SAME:
                mid, what = median(same), "its prompt's median"
            else:
                others = [x for i, _, x in vals if i != rid]
                if len(others) < STALL_MIN_OTHERS:
                    continue
                mid, what = median(others), "the server's median"
            if v < STALL_FRACTION * mid:
                stalled.setdefault(server, []).append((rid, prompt, v, mid, what))
    return stalled


def stall_notices(results: RunResults, metric: str = "decode_tps_client") -> list[dict[str, Any]]:
    """One warning per server with stalled requests (`stalled_requests`), naming them and the
    figures they are in."""
    out = []
    for s, xs in stalled_requests(results, metric).items():
        named = [f"#{rid} {prompt}: {v:.1f} vs {what} {mid:.1f} tok/s"
                 for rid, prompt, v, mid, what in xs]
        out.append({
            "level": "warning", "code": "stall", "server": s,
            "message": f"{s}: {len(xs)} request(s) decoded at under {STALL_FRACTION:.0%} of "
                       "their baseline speed (stalls: another process, swapping, a hiccup): "
                       f"{'; '.join(named[:3])}"
                       f"{''.join(f', #{x[0]}' for x in xs[3:])}; they stay "
                       f"in the figures: {STALL_AFFECTS}"})
    return out


def add_load_notices(results: RunResults, where: str = "") -> list[Notice]:
    """The notices, appended to the run's (after its hardware section is set) and returned
    for the face to say."""
    found = (outside_load_notice(results.hardware, where), own_cost_notice(results.hardware))
    new = [n for n in found if n] + stall_notices(results)
    results.notices += new
    return [Notice(x["level"], x["code"], x["message"], x["server"]) for x in new]
