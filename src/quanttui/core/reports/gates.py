"""Thresholds that make a headless run fail in CI, naming the figure that missed.

- min_decode_ratio: each other server's mean client decode tok/s over the first server's
  (paired per prompt) must be at least this;
- min_same_top1: each other server's same-top-1 against the first (from the quality section,
  which needs the distribution comparison to have run) must be at least this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quanttui.core.run.records import RunResults


@dataclass(frozen=True)
class GateResult:
    gate: str
    subject: str  # "B vs A"
    threshold: float
    actual: float | None  # None: not measured
    passed: bool

    @property
    def message(self) -> str:
        got = "not measured" if self.actual is None else f"{self.actual:.3f}"
        verdict = "ok" if self.passed else "FAILED"
        return f"gate {self.gate} ≥ {self.threshold:g} for {self.subject}: {got} — {verdict}"


def _same_top1(quality: dict[str, Any] | None, ref: str, other: str) -> float | None:
    """Finds the pair's same-top-1 in the quality section, whatever its nesting."""
    if not quality:
        return None
    for pair in quality.get("pairs", []) if isinstance(quality.get("pairs"), list) else []:
        if pair.get("reference") == ref and pair.get("other") == other:
            dist = pair.get("distribution") or {}
            v = dist.get("same_top1")
            if isinstance(v, dict):
                v = v.get("value", v.get("mean"))
            return float(v) if isinstance(v, (int, float)) else None
    return None


def evaluate(results: RunResults, min_decode_ratio: float | None = None,
             min_same_top1: float | None = None) -> list[GateResult]:
    names = results.server_names
    out: list[GateResult] = []
    if len(names) < 2:
        return out
    a = names[0]
    level = results.concurrency_levels[0]
    quality = results.extra.get("quality")
    for b in names[1:]:
        subject = f"{b} vs {a}"
        if min_decode_ratio is not None:
            d = results.paired("decode_tps_client", a, b, level)
            ratio = d.ratio if d is not None else None
            out.append(GateResult("decode_ratio", subject, min_decode_ratio, ratio,
                                  ratio is not None and ratio >= min_decode_ratio))
        if min_same_top1 is not None:
            s = _same_top1(quality, a, b)
            out.append(GateResult("same_top1", subject, min_same_top1, s,
                                  s is not None and s >= min_same_top1))
    return out
