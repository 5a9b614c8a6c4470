"""One server against another: the one definition of "B's speed against A's" that every view
uses (run summaries, the Markdown details, ladder rows and neighbours, the TUI, `compare`, gates,
the verdict).

Requests carry the block of time they were measured in (`RequestRecord.block`): servers that
alternate or stream side by side in one pass share a block; the sequential schedule gives each
server a block of its own, and a ladder's passes are blocks. A drift of the machine shared by a
block (another tenant on the VPS, thermal state, a page cache) moves everything measured in it,
so per-prompt pairing only cancels it between values of the same block. Three cases, said in
`PairedDiff.basis`:

- "interleaved": both servers ran in the same block(s); each prompt's mean over those blocks is
  paired (a server's requests in other blocks are left out of this pair).
- "via <server>": A and B never shared a block, but a third server ran beside each (a ladder's
  reference, beside every candidate): each prompt's value is taken relative to that server in
  the same block, which cancels the blocks' drift; the interval carries the third server's noise
  twice, so it is honestly wider. Means are rescaled by the third server's overall mean so they
  still read as tok/s.
- "across blocks": nothing cancels the drift between the blocks, so the paired interval is
  widened by ± `floor` (relative to A's mean): differences smaller than the drift a shared
  machine shows between minutes are not called. The floor is `run.drift_floor` (3% by default:
  1–2% drift between blocks is ordinary on a shared VPS), a prior: where a server that did not
  change ran in two or more blocks (a ladder's reference), its own change between them raises
  the floor when larger (`estimated_floor`), never lowers it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from statistics import fmean
from typing import TYPE_CHECKING

from quanttui.core.run.stats import PairedDiff, paired_difference

if TYPE_CHECKING:
    from quanttui.core.run.records import RequestRecord

DEFAULT_DRIFT_FLOOR = 0.03  # ±3% of A: what differences across blocks of time must exceed

INTERLEAVED = "interleaved"
ACROSS_BLOCKS = "across blocks"

# (server, block) -> prompt -> mean of the metric over that block's measured repetitions
_Cells = dict[tuple[str, int], dict[str, float]]


def cells(records: Iterable[RequestRecord], metric: str, concurrency: int | None = None
          ) -> _Cells:
    acc: dict[tuple[str, int], dict[str, list[float]]] = {}
    for r in records:
        if r.warmup or not r.ok or r.metrics is None:
            continue
        if concurrency is not None and r.concurrency != concurrency:
            continue
        v = getattr(r.metrics, metric)
        if v is None:
            continue
        acc.setdefault((r.server, r.block), {}).setdefault(r.prompt_id, []).append(float(v))
    return {k: {p: fmean(vs) for p, vs in per.items()} for k, per in acc.items()}


def _blocks(c: _Cells, server: str) -> set[int]:
    return {b for (s, b) in c if s == server}


def _pooled(c: _Cells, server: str, blocks: set[int]) -> dict[str, float]:
    """Per prompt, the mean over `blocks` of the block means."""
    acc: dict[str, list[float]] = {}
    for b in sorted(blocks):
        for p, v in c.get((server, b), {}).items():
            acc.setdefault(p, []).append(v)
    return {p: fmean(vs) for p, vs in acc.items()}


def widen(d: PairedDiff, floor: float) -> PairedDiff:
    """The interval of a difference between blocks of time, widened by ± floor × A's mean."""
    if d.ci_low is None or d.ci_high is None or floor <= 0:
        return replace(d, basis=ACROSS_BLOCKS, floor=floor)
    pad = floor * abs(d.mean_a)
    return replace(d, ci_low=d.ci_low - pad, ci_high=d.ci_high + pad, basis=ACROSS_BLOCKS,
                   floor=floor)


def _via(c: _Cells, a: str, b: str, servers: list[str]) -> PairedDiff | None:
    ba, bb = _blocks(c, a), _blocks(c, b)
    for v in servers:
        if v in (a, b):
            continue
        bv = _blocks(c, v)
        sa, sb = ba & bv, bb & bv
        if not sa or not sb:
            continue
        va, vb = _pooled(c, v, sa), _pooled(c, v, sb)
        pa, pb = _pooled(c, a, sa), _pooled(c, b, sb)
        scale_vals = [x for x in (*va.values(), *vb.values()) if x]
        if not scale_vals:
            continue
        scale = fmean(scale_vals)
        rel_a = {p: x / va[p] * scale for p, x in pa.items() if va.get(p)}
        rel_b = {p: x / vb[p] * scale for p, x in pb.items() if vb.get(p)}
        d = paired_difference(rel_a, rel_b)
        if d is not None:
            return replace(d, basis=f"via {v}")
    return None


def pair(records: Iterable[RequestRecord], metric: str, a: str, b: str,
         concurrency: int | None = None, *, servers: list[str] | None = None,
         floor: float = DEFAULT_DRIFT_FLOOR) -> PairedDiff | None:
    """B − A per prompt, paired as the module docstring says; `servers` are the candidates for
    a third server to pair through (in order of preference: the reference first)."""
    c = cells(records, metric, concurrency)
    ba, bb = _blocks(c, a), _blocks(c, b)
    shared = ba & bb
    if shared:
        d = paired_difference(_pooled(c, a, shared), _pooled(c, b, shared))
        return d if d is None else replace(d, basis=INTERLEAVED)
    if not ba or not bb:
        return None
    via = _via(c, a, b, servers or [])
    if via is not None:
        return via
    d = paired_difference(_pooled(c, a, ba), _pooled(c, b, bb))
    return None if d is None else widen(d, floor)


def block_drift(records: Iterable[RequestRecord], metric: str, server: str
                ) -> list[tuple[int, float]]:
    """A server's mean per block (over the prompts it ran in every block), in block order: how
    far the machine moved between blocks for a server that did not change."""
    c = cells(records, metric)
    blocks = sorted(_blocks(c, server))
    if len(blocks) < 2:
        return []
    common = set.intersection(*(set(c[(server, b)]) for b in blocks))
    if not common:
        return []
    return [(b, fmean(c[(server, b)][p] for p in common)) for b in blocks]


def moved(levels: list[float]) -> float | None:
    """How far a server's means moved between blocks: highest / lowest − 1; None under two."""
    if len(levels) < 2 or min(levels) <= 0:
        return None
    return max(levels) / min(levels) - 1


def estimated_floor(records: Iterable[RequestRecord], server: str, prior: float,
                    metric: str = "decode_tps_client") -> float:
    """The drift floor for pairs across blocks: the configured `prior`, raised to `server`'s
    own change between the blocks it ran in (`block_drift`, `moved`) when that is larger."""
    m = moved([v for _, v in block_drift(records, metric, server)])
    return prior if m is None else max(prior, m)


def basis_words(basis: str, floor: float = 0.0) -> str:
    """How a pair was made, for the faces: "" when interleaved (the usual case, said once in a
    table's legend), else a short clause."""
    if basis == INTERLEAVED:
        return ""
    if basis == ACROSS_BLOCKS:
        return (f"measured apart in time: interval widened by the ±{floor:.0%} drift floor"
                if floor else "measured apart in time")
    return f"{basis}, each relative to it in its own pass"
