"""Token-level diff: first divergence, agreement, aligned segments."""

from __future__ import annotations

import time
from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from quanttui.core.quality.diff import (
    Segment,
    align,
    common_prefix_len,
    diff_tokens,
    first_divergence,
    token_agreement,
    units,
)


def test_identical_outputs() -> None:
    d = diff_tokens([1, 2, 3], [1, 2, 3])
    assert d.identical and d.first_divergence is None
    assert d.agreement == 1.0
    assert [s.kind for s in d.segments] == ["equal"]
    assert d.equal_mask("a") == [True, True, True]


def test_first_divergence_and_realignment() -> None:
    a = [10, 11, 12, 13, 14, 15]
    b = [10, 11, 99, 13, 14, 15]
    d = diff_tokens(a, b)
    assert d.first_divergence == 2
    assert [(s.kind, s.a_start, s.a_end, s.b_start, s.b_end) for s in d.segments] == [
        ("equal", 0, 2, 0, 2), ("replace", 2, 3, 2, 3), ("equal", 3, 6, 3, 6)]
    assert d.equal_mask("b") == [True, True, False, True, True, True]
    assert d.agreement == 5 / 6


def test_shifted_tail_realigns_but_positional_agreement_drops() -> None:
    a = [1, 2, 3, 4, 5, 6]
    b = [1, 7, 2, 3, 4, 5]  # one token inserted: the rest is shifted
    d = diff_tokens(a, b)
    assert d.first_divergence == 1
    kinds = [s.kind for s in d.segments]
    assert kinds == ["equal", "insert", "equal", "delete"]
    assert d.agreement == 1 / 6


def test_prefix_divergence_is_length_of_shorter() -> None:
    assert first_divergence([1, 2, 3], [1, 2]) == 2
    d = diff_tokens([1, 2], [1, 2, 3, 4])
    assert d.first_divergence == 2
    assert d.segments[-1].kind == "insert" and (d.segments[-1].b_start, d.segments[-1].b_end) \
        == (2, 4)
    assert d.agreement == 1.0  # up to the shorter output


def test_empty_outputs() -> None:
    assert first_divergence([], []) is None
    assert token_agreement([], [1]) is None
    d = diff_tokens([], [5])
    assert d.first_divergence == 0 and d.agreement is None


def test_common_prefix_len_resumes() -> None:
    a, b = [1, 2, 3, 4], [1, 2, 3, 9]
    assert common_prefix_len(a, b) == 3
    assert common_prefix_len(a, b, start=2) == 3
    assert common_prefix_len(a[:2], b) == 2


def test_units_prefers_ids_when_one_per_piece() -> None:
    assert units([5, 6], ["a", "b"]) == [(5, "a"), (6, "b")]
    # byte-fallback: the same last id can end two different characters
    assert units([9], ["\U00013002"]) != units([9], ["\U00013003"])
    assert units([], ["a", "b"]) == ["a", "b"]  # chat: no ids
    assert units([5, 6, 7], ["ab", "c"]) == ["ab", "c"]


@given(st.lists(st.integers(0, 5), max_size=40), st.lists(st.integers(0, 5), max_size=40))
def test_segments_cover_both_sides(a: list[int], b: list[int]) -> None:
    d = diff_tokens(a, b)
    ai = bi = 0
    for s in d.segments:
        assert (s.a_start, s.b_start) == (ai, bi)
        if s.kind == "equal":
            assert a[s.a_start:s.a_end] == b[s.b_start:s.b_end]
        ai, bi = s.a_end, s.b_end
    assert (ai, bi) == (len(a), len(b))
    assert d.first_divergence == first_divergence(a, b)
    if d.first_divergence is not None:
        assert a[:d.first_divergence] == b[:d.first_divergence]


def lcs_len(a: list[int], b: list[int]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[-1]))
        prev = cur
    return prev[-1]


def covers(a: list[int], b: list[int], segments: Sequence[Segment]) -> int:
    """Checks that the segments tile both sides; the number of units they call equal."""
    ai = bi = equal = 0
    for s in segments:
        assert (s.a_start, s.b_start) == (ai, bi)
        assert (s.a_end > s.a_start or s.b_end > s.b_start)
        if s.kind == "equal":
            assert a[s.a_start:s.a_end] == b[s.b_start:s.b_end]
            equal += s.a_end - s.a_start
        ai, bi = s.a_end, s.b_end
    assert (ai, bi) == (len(a), len(b))
    return equal


@given(st.lists(st.integers(0, 3), max_size=40), st.lists(st.integers(0, 3), max_size=40))
def test_alignment_is_a_shortest_edit_script(a: list[int], b: list[int]) -> None:
    assert covers(a, b, diff_tokens(a, b).segments) == lcs_len(a, b)


@given(st.lists(st.integers(0, 3), max_size=40), st.lists(st.integers(0, 3), max_size=40),
       st.integers(0, 5))
def test_cut_off_alignment_still_tiles_both_sides(a: list[int], b: list[int],
                                                  max_edits: int) -> None:
    covers(a, b, align(a, b, 0, len(a), 0, len(b), max_edits))


def test_long_differing_outputs_are_aligned_in_bounded_time() -> None:
    """2,048 tokens from a 10-token vocabulary, different after 100: the worst case for
    difflib (seconds to minutes), a cut-off for this alignment."""
    a = [i % 10 for i in range(2048)]
    b = a[:100] + [(3 * i + 1) % 10 for i in range(100, 2048)]
    t0 = time.process_time()
    d = diff_tokens(a, b)
    assert time.process_time() - t0 < 1.5  # CPU time: a loaded machine doesn't make it flaky
    assert d.first_divergence == 100
    covers(a, b, d.segments)
