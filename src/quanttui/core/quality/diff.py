"""Token-level comparison of two outputs: first divergence and aligned segments.

Works on token ids (one per event on `/completion`), or on any sequence of hashable units (e.g.
the text pieces of a chat stream, which carries no ids). Definitions follow
docs/metrics.md:

- first divergence: index of the first position where the two sequences differ, `None` when
  they are identical. When one output is a strict prefix of the other (one stopped earlier), it
  is the length of the shorter: at that position one has a token and the other has ended.
- token agreement: share of positions where the ids agree, up to the shorter output.
- segments: a shortest edit script (Myers' O((N+M)·D) algorithm) grouped into equal / replace /
  delete / insert runs, so that text which re-aligns after a divergence is shown as equal again.
  Bounded: past `MAX_EDITS` insertions and deletions the rest is one `replace` (outputs that
  differ that much have no alignment worth showing, and the search would grow as N·D).

Pure functions, no UI: used by the TUI and by reports.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

SegmentKind = Literal["equal", "replace", "delete", "insert"]

# Edits (inserted plus deleted units) the alignment looks for before it gives up: time is about
# (N+M)·MAX_EDITS steps at worst, well under a second for 2,048-token outputs in pure Python.
MAX_EDITS = 400


class Cancelled(Exception):
    """A comparison given a `cancelled` check stopped because it said so."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of A[a_start:a_end] against B[b_start:b_end]; `delete` has no B part, `insert`
    no A part."""

    kind: SegmentKind
    a_start: int
    a_end: int
    b_start: int
    b_end: int


@dataclass(frozen=True, slots=True)
class TokenDiff:
    n_a: int
    n_b: int
    first_divergence: int | None
    agreement: float | None  # positional, up to the shorter output; None if one is empty
    segments: tuple[Segment, ...]

    @property
    def identical(self) -> bool:
        return self.first_divergence is None

    def equal_mask(self, side: Literal["a", "b"]) -> list[bool]:
        """Per unit of that side: True where it lies in an equal segment."""
        mask = [False] * (self.n_a if side == "a" else self.n_b)
        for s in self.segments:
            if s.kind == "equal":
                lo, hi = (s.a_start, s.a_end) if side == "a" else (s.b_start, s.b_end)
                mask[lo:hi] = [True] * (hi - lo)
        return mask


def common_prefix_len(a: Sequence[Hashable], b: Sequence[Hashable], start: int = 0) -> int:
    """Length of the common prefix of a and b, given that the first `start` units agree."""
    n = min(len(a), len(b))
    i = min(start, n)
    while i < n and a[i] == b[i]:
        i += 1
    return i


def first_divergence(a: Sequence[Hashable], b: Sequence[Hashable]) -> int | None:
    """Index of the first differing unit; None when identical (same length, same units)."""
    i = common_prefix_len(a, b)
    return None if i == len(a) == len(b) else i


def token_agreement(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Share of positions where a[i] == b[i], up to the shorter sequence; None if one is empty."""
    n = min(len(a), len(b))
    if n == 0:
        return None
    return sum(1 for i in range(n) if a[i] == b[i]) / n


def diff_tokens(a: Sequence[Hashable], b: Sequence[Hashable],
                cancelled: Callable[[], bool] | None = None) -> TokenDiff:
    """Align two outputs. The common prefix and suffix are equal segments; the middle is
    aligned by `align`."""
    p = common_prefix_len(a, b)
    div = None if p == len(a) == len(b) else p
    segments: list[Segment] = []
    if p:
        segments.append(Segment("equal", 0, p, 0, p))
    if div is not None:
        s = 0  # common suffix, not reaching into the prefix
        while s < min(len(a), len(b)) - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
            s += 1
        ea, eb = len(a) - s, len(b) - s
        segments += align(a, b, p, ea, p, eb, cancelled=cancelled)
        if s:
            segments.append(Segment("equal", ea, len(a), eb, len(b)))
    return TokenDiff(len(a), len(b), div, token_agreement(a, b), tuple(segments))


def align(a: Sequence[Hashable], b: Sequence[Hashable], a0: int, a1: int, b0: int, b1: int,
          max_edits: int = MAX_EDITS, cancelled: Callable[[], bool] | None = None
          ) -> list[Segment]:
    """Segments covering a[a0:a1] against b[b0:b1]: Myers' greedy shortest edit script (the
    furthest point reached on each diagonal, per number of edits), traced back. Past
    `max_edits` the path that got furthest is kept and the rest is one `replace`. Raises
    `Cancelled` soon after `cancelled()` says so."""
    n, m = a1 - a0, b1 - b0
    if n == 0 or m == 0:
        if n or m:
            return [Segment("delete" if n else "insert", a0, a1, b0, b1)]
        return []
    limit = min(n + m, max_edits)
    v = {1: 0}  # diagonal k = x - y -> furthest x with d edits
    trace: list[dict[int, int]] = []
    end: tuple[int, int] | None = None
    for d in range(limit + 1):
        if cancelled is not None and cancelled():
            raise Cancelled
        trace.append(dict(v))
        for k in range(-d, d + 1, 2):
            x = v[k + 1] if k == -d or (k != d and v[k - 1] < v[k + 1]) else v[k - 1] + 1
            y = x - k
            while x < n and y < m and a[a0 + x] == b[b0 + y]:
                x += 1
                y += 1
            v[k] = x
            if x >= n and y >= m:
                end = (x, y)
                break
        if end is not None:
            break
    if end is None:  # cut off: the diagonal that got furthest along both outputs
        x, k = max(((v[k], k) for k in range(-limit, limit + 1, 2)
                    if v[k] - k <= m), key=lambda t: 2 * t[0] - t[1])
        end = (x, x - k)
        d = limit
    # Back from `end`: each edit is one step off the previous edit count's diagonal, then a
    # snake of equal units.
    ops: list[tuple[SegmentKind, int, int, int, int]] = []  # reversed
    x, y = end
    if end != (n, m):
        ops.append(("replace", x, n, y, m))
    for dd in range(d, 0, -1):
        vp = trace[dd]
        k = x - y
        down = k == -dd or (k != dd and vp[k - 1] < vp[k + 1])
        pk = k + 1 if down else k - 1
        px = vp[pk]
        py = px - pk
        sx, sy = (px, py + 1) if down else (px + 1, py)  # after the edit, before the snake
        if x > sx:
            ops.append(("equal", sx, x, sy, y))
        ops.append(("insert", px, px, py, sy) if down else ("delete", px, sx, py, py))
        x, y = px, py
    if x > 0:
        ops.append(("equal", 0, x, 0, y))
    segments: list[Segment] = []
    for kind, i1, i2, j1, j2 in reversed(ops):
        last = segments[-1] if segments else None
        if last is not None and kind != "equal" and last.kind != "equal":
            # runs of inserts and deletes between two equal runs: one change, as difflib says
            merged: SegmentKind = kind if kind == last.kind else "replace"
            segments[-1] = Segment(merged, last.a_start, a0 + i2, last.b_start, b0 + j2)
        else:
            segments.append(Segment(kind, a0 + i1, a0 + i2, b0 + j1, b0 + j2))
    return segments


_WORDS = re.compile(r"\s*\S+|\s+")


def words(text: str) -> list[str]:
    """The text as words, each with the spaces before it (they join back to the text)."""
    return _WORDS.findall(text)


def units(token_ids: Sequence[int], texts: Sequence[str]) -> Sequence[Hashable]:
    """What to compare: (id, text) per piece when there is one id per text piece, else the text
    pieces (chat streams carry no ids). The text rides along because a piece that completes a
    multi-byte character carries only its last token's id: the same id can end two different
    characters."""
    if token_ids and len(token_ids) == len(texts):
        return list(zip(token_ids, texts, strict=True))
    return texts
