"""Output comparison: exact match, first divergence, agreement, text similarity, per run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quanttui.core.llama.result import CompletionResult
from quanttui.core.quality.diff import Cancelled
from quanttui.core.quality.outputs import (
    compare_outputs,
    compare_run_outputs,
    levenshtein,
    off_loop,
    summarize_outputs,
    text_similarity,
)
from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo


def naive_levenshtein(a: str, b: str) -> int:
    @cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


@settings(max_examples=300, deadline=None)
@given(st.text("abc ", max_size=12), st.text("abc ", max_size=12))
def test_levenshtein_matches_the_definition(a: str, b: str) -> None:
    assert levenshtein(a, b) == naive_levenshtein(a, b)
    assert 0.0 <= text_similarity(a, b) <= 1.0


def test_identical_outputs() -> None:
    c = compare_outputs([1, 2, 3], [1, 2, 3], "abc", "abc", "p")
    assert c.exact_match and c.first_divergence is None and c.token_agreement == 1.0
    assert c.text_similarity == 1.0 and [s.kind for s in c.diff.segments] == ["equal"]


def test_divergence_agreement_and_similarity() -> None:
    c = compare_outputs([1, 2, 3, 4, 5], [1, 2, 9, 4, 5, 6], "the cat sat", "the cat sit")
    assert not c.exact_match and c.first_divergence == 2
    assert c.token_agreement == pytest.approx(4 / 5)  # positionally, up to the shorter
    assert c.text_similarity == pytest.approx(1 - 1 / 11)
    kinds = [s.kind for s in c.diff.segments]
    assert kinds[0] == "equal" and "replace" in kinds and kinds[-1] == "insert"


def test_prefix_output_diverges_where_the_shorter_ends() -> None:
    c = compare_outputs([1, 2], [1, 2, 3], "ab", "abc")
    assert c.first_divergence == 2 and c.token_agreement == 1.0 and not c.exact_match


def test_summary() -> None:
    cs = [compare_outputs([1, 2], [1, 2], "ab", "ab"), compare_outputs([1, 2], [1, 3], "ab", "ac"),
          compare_outputs([], [4], "", "d")]
    s = summarize_outputs(cs)
    assert s is not None and s.n == 3
    assert s.exact_match.value == pytest.approx(1 / 3)
    assert s.token_agreement_mean == pytest.approx(0.75)  # the empty output has none
    assert s.first_divergence_min == 0 and s.first_divergence_median == 0.5
    assert summarize_outputs([]) is None


def _record(rid: int, server: str, prompt: str, ids: list[int], text: str, *, rep: int = 0,
            warmup: bool = False, ok: bool = True) -> RequestRecord:
    res = CompletionResult(server=server, endpoint="completion", t_sent_ns=0, t_done_ns=1,
                           event_times_ns=list(range(len(ids))), event_ntokens=[1] * len(ids),
                           event_texts=list(text) if len(text) == len(ids) else [text],
                           token_ids=ids)
    from quanttui.core.run.metrics import request_metrics

    rec = RequestRecord(rid, server, prompt, "chat", rep, warmup, 1, 0, 0.0, result=res)
    if ok:
        rec.metrics = request_metrics(res)
    else:
        rec.error = "boom"
    return rec


def run_results(records: list[RequestRecord]) -> RunResults:
    return RunResults(servers=[ServerInfo("A", "http://a"), ServerInfo("B", "http://b")],
                      schedule="sequential", endpoint="completion", repetitions=2, warmup=1,
                      concurrency_levels=(1,), records=records)


def test_run_outputs_pair_prompts_and_skip_warmups_and_failures() -> None:
    res = run_results([
        _record(0, "A", "p1", [9, 9], "zz", warmup=True),
        _record(1, "A", "p1", [1, 2], "ab"),
        _record(2, "A", "p1", [1, 5], "ae", rep=1),
        _record(3, "B", "p1", [1, 3], "ac"),
        _record(4, "A", "p2", [4], "d"),
        _record(5, "B", "p2", [4], "d", ok=False),
        _record(6, "B", "p2", [4], "d", rep=1),
        _record(7, "A", "p3", [4], "d"),
    ])
    cs = compare_run_outputs(res, "A", "B")
    assert [c.prompt_id for c in cs] == ["p1", "p2"]  # p3: B has none
    assert cs[0].first_divergence == 1 and cs[1].exact_match  # first repetition that finished


def table_levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@settings(max_examples=100, deadline=None)
@given(st.text("ab xé", max_size=200), st.text("ab xé", max_size=200))
def test_levenshtein_over_many_machine_words(a: str, b: str) -> None:
    assert levenshtein(a, b) == table_levenshtein(a, b)


def test_levenshtein_past_its_size_is_an_upper_bound() -> None:
    a, b = "ab" * 300, "ba" * 250 + "c" * 50
    exact = table_levenshtein(a, b)
    assert levenshtein(a, b, max_chars=1000) == exact
    bounded = levenshtein(a, b, max_chars=100)
    assert bounded >= exact and bounded == table_levenshtein(a[1:101], b[1:101]) + 500


def test_long_differing_outputs_compare_quickly() -> None:
    """Two 2,048-token outputs that differ after 100 tokens (~10,000 characters each); the
    former O(n·m) Python loops took minutes on this."""
    vocab = [" the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", "."]
    a = [i % 10 for i in range(2048)]
    b = a[:100] + [(3 * i + 1) % 10 for i in range(100, 2048)]
    ta, tb = ("".join(vocab[t] for t in x) for x in (a, b))
    t0 = time.process_time()
    c = compare_outputs(a, b, ta, tb)
    assert time.process_time() - t0 < 2  # CPU time: a loaded machine doesn't make it flaky
    assert c.first_divergence == 100 and 0 < c.text_similarity < 1


async def test_a_comparison_off_the_loop_stops_when_asked() -> None:
    """The stop is heard at once, and the worker ends soon after (it checks as it goes)."""
    # ~20 s of work (past the usual cap, so the bound below is far from a deaf worker)
    a, b = "ab" * 90000, "ba" * 90000
    stop = asyncio.Event()
    ended = threading.Event()

    def work(cancelled: Callable[[], bool]) -> int:
        try:
            return levenshtein(a, b, max_chars=len(a), cancelled=cancelled)
        finally:
            ended.set()

    asyncio.get_running_loop().call_later(0.05, stop.set)
    t0 = time.monotonic()
    assert await off_loop(work, stop) is None
    assert time.monotonic() - t0 < 3.0
    assert await asyncio.to_thread(ended.wait, 5)
    with pytest.raises(Cancelled):
        compare_outputs([1], [2], a, b, cancelled=lambda: True)
    assert await off_loop(lambda cancelled: 7, stop=None) == 7
