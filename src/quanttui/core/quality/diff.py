"""Token-level comparison of two outputs: first divergence and aligned segments.

Works on token ids (one per event on `/completion`), or on any sequence of hashable units (e.g.
the text pieces of a chat stream, which carries no ids). Definitions follow
docs/metrics.md:

- first divergence: index of the first position where the two sequences differ, `None` when
  they are identical. When one output is a strict prefix of the other (one stopped earlier), it
  is the length of the shorter: at that position one has a token and the other has ended.
- token agreement: share of positions where the ids agree, up to the shorter output.
- segments: an alignment (difflib, no autojunk) into equal / replace / delete / insert runs, so
  that text which re-aligns after a divergence is shown as equal again.

Pure functions, no UI: used by the TUI and by reports.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

SegmentKind = Literal["equal", "replace", "delete", "insert"]


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


def diff_tokens(a: Sequence[Hashable], b: Sequence[Hashable]) -> TokenDiff:
    """Align two outputs. The common prefix is one equal segment; only the tails are matched."""
    p = common_prefix_len(a, b)
    div = None if p == len(a) == len(b) else p
    segments: list[Segment] = []
    if p:
        segments.append(Segment("equal", 0, p, 0, p))
    if div is not None:
        sm = SequenceMatcher(None, list(a[p:]), list(b[p:]), autojunk=False)
        for tag, i1, i2, j1, j2 in sm.get_opcodes():
            segments.append(Segment(tag, p + i1, p + i2, p + j1, p + j2))
    return TokenDiff(len(a), len(b), div, token_agreement(a, b), tuple(segments))


def units(token_ids: Sequence[int], texts: Sequence[str]) -> Sequence[Hashable]:
    """What to compare: (id, text) per piece when there is one id per text piece, else the text
    pieces (chat streams carry no ids). The text rides along because a piece that completes a
    multi-byte character carries only its last token's id: the same id can end two different
    characters."""
    if token_ids and len(token_ids) == len(texts):
        return list(zip(token_ids, texts, strict=True))
    return texts
