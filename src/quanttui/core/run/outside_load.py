"""What else ran on the machine while it was measured, and requests that stalled.

Speeds on a shared machine move with what other processes do: the pairing cancels what hits
both servers in one block of time, but a busy host still slows both (and moves any comparison
with another run). Two notices say so, so that the figures they affect are read with it:

- "outside-load": other processes kept at least `OUTSIDE_LOAD_CORES` of the host's cores busy
  on average while the servers were measured (host CPU less the watched servers' and quanttui's
  own, from the hardware samples: core.hardware.summary.other_cpu_cores);
- "own-cost": quanttui itself took more than `OWN_CPU_BUDGET` % of a core on average (its UI,
  stream readers and poller: `hardware.own_cpu_percent_mean`), CPU the servers did not have;
- "stall": a request far slower than the other repetitions of its prompt on the same server
  (decode tok/s under `STALL_FRACTION` of their median), which the per-prompt mean it enters
  would otherwise hide.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from quanttui.core.run.events import Notice
from quanttui.core.run.records import RunResults

OUTSIDE_LOAD_CORES = 0.5  # half a core busy elsewhere, on average: worth saying
OWN_CPU_BUDGET = 2.0  # % of one core quanttui may take while it measures
STALL_FRACTION = 0.5  # a repetition at under half its prompt's median decode rate
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


def stall_notices(results: RunResults, metric: str = "decode_tps_client") -> list[dict[str, Any]]:
    """One warning per server whose repetitions of a prompt include one far below their
    median (needs ≥ 3 repetitions of the prompt to tell a stall from a slow prompt)."""
    by: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    for r in results.measured():
        v = getattr(r.metrics, metric) if r.ok and r.metrics is not None else None
        if v is not None:
            by.setdefault((r.server, r.prompt_id, r.concurrency), []).append((r.request_id, v))
    stalled: dict[str, list[str]] = {}
    for (server, prompt, _), vals in by.items():
        if len(vals) < 3:
            continue
        mid = median(v for _, v in vals)
        stalled[server] = stalled.get(server, []) + [
            f"{prompt} (#{rid}: {v:.1f} vs median {mid:.1f} tok/s)"
            for rid, v in vals if v < STALL_FRACTION * mid]
    return [{"level": "warning", "code": "stall", "server": s,
             "message": f"{s}: {len(xs)} request(s) decoded at under half their prompt's "
                        f"median speed (stalls: another process, swapping, a hiccup): "
                        f"{'; '.join(xs[:3])}{' …' if len(xs) > 3 else ''}; their prompts' "
                        "means and the paired intervals include them"}
            for s, xs in stalled.items() if xs]


def add_load_notices(results: RunResults, where: str = "") -> list[Notice]:
    """The notices, appended to the run's (after its hardware section is set) and returned
    for the face to say."""
    found = (outside_load_notice(results.hardware, where), own_cost_notice(results.hardware))
    new = [n for n in found if n] + stall_notices(results)
    results.notices += new
    return [Notice(x["level"], x["code"], x["message"], x["server"]) for x in new]
