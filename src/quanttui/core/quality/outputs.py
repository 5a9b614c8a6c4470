"""Output comparison: two servers' greedy outputs for the same prompt, token by token.

Definitions (docs/metrics.md, Quality): exact match, first divergence (index of the
first differing token id; of the first differing word where a stream left ids out), token
agreement (share of equal ids position by position, up to the shorter output) and text
similarity (1 − Levenshtein distance / length of the longer text). The alignment and
the first two come from `core.diff`, which the TUI renders as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from statistics import fmean, median
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from quanttui.core.quality.diff import Cancelled, TokenDiff, common_prefix_len, diff_tokens, words
from quanttui.core.quality.divergence import MeanUnc, share_and_uncertainty

if TYPE_CHECKING:
    from quanttui.core.run.records import RequestRecord, RunResults


Unit = Literal["tok", "word"]


@dataclass(frozen=True, slots=True)
class OutputComparison:
    prompt_id: str
    exact_match: bool
    text_similarity: float
    diff: TokenDiff  # first divergence, agreement, aligned segments
    unit: Unit = "tok"  # what the diff's indices count

    @property
    def first_divergence(self) -> int | None:
        return self.diff.first_divergence

    @property
    def token_agreement(self) -> float | None:  # None when an output is empty
        return self.diff.agreement


# Characters (past the common ends) that the edit distance is computed over exactly; beyond, the
# rest of the longer text counts as replaced, an upper bound on the distance (see levenshtein).
# The cost is about len(a)·len(b)/30 machine-word operations: well under a second here.
MAX_EDIT_CHARS = 32_768


def levenshtein(a: str, b: str, max_chars: int = MAX_EDIT_CHARS,
                cancelled: Callable[[], bool] | None = None) -> int:
    """Edit distance (insert, delete, substitute: cost 1 each).

    Exact up to `max_chars` characters after the common prefix and suffix are stripped; past
    that, the distance of the first `max_chars` plus the longer remainder (an upper bound).
    Myers' bit-vector algorithm (Hyyrö's formulation for edit distance): one column of the
    dynamic-programming table is a pair of integers used as bit vectors, so the work is
    len(a) big-integer steps over len(b) bits instead of len(a)·len(b) Python steps. Raises
    `Cancelled` soon after `cancelled()` says so.
    """
    # Greedy outputs usually share a long prefix: strip common ends first.
    start = 0
    while start < len(a) and start < len(b) and a[start] == b[start]:
        start += 1
    end_a, end_b = len(a), len(b)
    while end_a > start and end_b > start and a[end_a - 1] == b[end_b - 1]:
        end_a -= 1
        end_b -= 1
    a, b = a[start:end_a], b[start:end_b]
    excess = max(len(a), len(b)) - max_chars
    if excess > 0:
        return levenshtein(a[:max_chars], b[:max_chars], max_chars, cancelled) + excess
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    peq: dict[str, int] = {}  # per character: the positions of b where it occurs, as bits
    for i, c in enumerate(b):
        peq[c] = peq.get(c, 0) | (1 << i)
    mask = (1 << len(b)) - 1
    last = 1 << (len(b) - 1)
    pv, mv, score = mask, 0, len(b)  # vertical deltas +1 / -1 of the current column
    for i, c in enumerate(a):
        if cancelled is not None and not i & 1023 and cancelled():
            raise Cancelled
        eq = peq.get(c, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = (mv | ~(xh | pv)) & mask
        mh = pv & xh
        if ph & last:
            score += 1
        elif mh & last:
            score -= 1
        ph = (ph << 1) | 1  # row 0 of the table grows by one per character of a
        mh <<= 1
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv & mask
    return score


def text_similarity(a: str, b: str, cancelled: Callable[[], bool] | None = None) -> float:
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b, cancelled=cancelled) / longest


def compare_outputs(ref_ids: Sequence[Hashable], other_ids: Sequence[Hashable], ref_text: str,
                    other_text: str, prompt_id: str = "",
                    cancelled: Callable[[], bool] | None = None, unit: Unit = "tok"
                    ) -> OutputComparison:
    """Raises `Cancelled` soon after `cancelled()` says so."""
    d = diff_tokens(ref_ids, other_ids, cancelled)
    return OutputComparison(prompt_id, d.identical,
                            text_similarity(ref_text, other_text, cancelled), d, unit)


@dataclass(frozen=True, slots=True)
class OutputSummary:
    n: int
    exact_match: MeanUnc  # share of prompts with identical outputs
    token_agreement_mean: float | None  # over the prompts where both outputs are non-empty
    text_similarity_mean: float
    first_divergence_median: float | None  # over the prompts that diverge
    first_divergence_min: int | None


def summarize_outputs(comparisons: Sequence[OutputComparison]) -> OutputSummary | None:
    if not comparisons:
        return None
    divs = [c.first_divergence for c in comparisons if c.first_divergence is not None]
    agree = [c.token_agreement for c in comparisons if c.token_agreement is not None]
    return OutputSummary(
        n=len(comparisons),
        exact_match=share_and_uncertainty(sum(c.exact_match for c in comparisons),
                                          len(comparisons)),
        token_agreement_mean=fmean(agree) if agree else None,
        text_similarity_mean=fmean(c.text_similarity for c in comparisons),
        first_divergence_median=float(median(divs)) if divs else None,
        first_divergence_min=min(divs) if divs else None,
    )


def representative_records(results: RunResults, server: str) -> dict[str, RequestRecord]:
    """One finished measured record per prompt: the lowest concurrency, first repetition."""
    out: dict[str, RequestRecord] = {}
    for r in sorted(results.measured(server), key=lambda r: (r.concurrency, r.repetition,
                                                              r.request_id)):
        if r.ok and r.prompt_id not in out:
            out[r.prompt_id] = r
    return out


def _all_ids(r: RequestRecord) -> bool:
    """The stream sent an id for every generated token (an empty output has none to send)."""
    if r.metrics is not None:
        missing = r.metrics.ids_missing
    else:
        missing = r.result.ids_missing if r.result is not None else 0
    return not missing and (bool(r.token_ids) or not r.text)


def compared_units(a: RequestRecord, b: RequestRecord
                   ) -> tuple[Sequence[Hashable], Sequence[Hashable], Unit]:
    """What two outputs are compared by, from what a run file keeps too (the ids and the joined
    text, not the stream's pieces), so a run in memory and the same run read back agree: the
    token ids where both streams sent one for every token; else the words of the texts (chat
    streams send no ids, and a token ending inside a UTF-8 character is never sent by id)."""
    if _all_ids(a) and _all_ids(b):
        return a.token_ids, b.token_ids, "tok"
    return words(a.text), words(b.text), "word"


def first_difference(a: RequestRecord, b: RequestRecord) -> tuple[int | None, Unit]:
    """Where b's output first differs from a's (None: identical), counted in `compared_units`."""
    ua, ub, unit = compared_units(a, b)
    p = common_prefix_len(ua, ub)
    return (None if p == len(ua) == len(ub) else p), unit


def compare_run_outputs(results: RunResults, reference: str, other: str,
                        cancelled: Callable[[], bool] = lambda: False
                        ) -> list[OutputComparison]:
    """Every prompt both servers answered, in the run's prompt order (those compared before
    `cancelled` said so)."""
    ref = representative_records(results, reference)
    oth = representative_records(results, other)
    out = []
    for p in ref:
        if p in oth:
            try:
                ua, ub, unit = compared_units(ref[p], oth[p])
                out.append(compare_outputs(ua, ub, ref[p].text, oth[p].text, p, cancelled,
                                           unit))
            except Cancelled:
                break
    return out


T = TypeVar("T")


async def off_loop(work: Callable[[Callable[[], bool]], T], stop: asyncio.Event | None
                   ) -> T | None:
    """`work(cancelled)` on a thread of its own, so the event loop (signals, the TUI) goes on
    while outputs are compared; None when `stop` is set (or the caller is cancelled) first.
    `work` checks `cancelled()` often (or raises `Cancelled` from a comparison that does) and
    ends soon after; the thread is a daemon, so an exit does not wait for it."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    cancel = threading.Event()

    def settle(value: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)  # type: ignore[arg-type]

    def run() -> None:
        try:
            value, error = work(cancel.is_set), None
        except Cancelled:  # nobody waits for it any more
            return
        except BaseException as e:  # handed to the awaiting coroutine
            value, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, daemon=True, name="quanttui-compare").start()
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    waits: list[asyncio.Future[Any]] = [done] if stopped is None else [done, stopped]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        cancel.set()
        if stopped is not None:
            stopped.cancel()
    return done.result() if done.done() else None
