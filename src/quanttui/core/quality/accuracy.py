"""Task accuracy: the task items (core.suites.tasks) run greedily on each server, scored, and
accuracy per category and server, with the paired difference to a reference. Items of kind
"program" are checked by the `run_program` given (the sandbox, core.quality.code_exec), on a
thread so that the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from quanttui.core.llama.client import LlamaClient
from quanttui.core.llama.params import GenerationParams
from quanttui.core.llama.result import ServerError
from quanttui.core.quality.divergence import MeanUnc, share_and_uncertainty
from quanttui.core.run.stats import holm, mcnemar_p, paired_proportion_interval, wilson_interval
from quanttui.core.suites.tasks import Length, ProgramRunner, TaskItem, check


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    item_id: str
    category: str
    length: Length
    server: str
    output: str
    token_ids: tuple[int, ...]
    correct: bool | None  # None: open item, or the request failed
    error: str | None = None
    detail: str | None = None  # why the check failed (programs: "timeout", "AssertionError")
    notes: tuple[str, ...] = ()  # how it was checked, e.g. "network not isolated"


async def run_tasks(
    client: LlamaClient,
    items: Sequence[TaskItem],
    server: str,
    *,
    on_item: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
    run_program: ProgramRunner | None = None,
) -> list[TaskOutcome]:
    """Greedy, one request at a time, no prompt cache (so outputs don't depend on order), with
    each item's stop strings. A failed request is recorded with its error and counts as not
    scored; "program" items are scored only with a `run_program`."""
    out: list[TaskOutcome] = []
    for item in items:
        if stop is not None and stop.is_set():
            break
        body: dict[str, Any] = GenerationParams(n_predict=item.n_predict, stop=item.stop).body()
        body.update(prompt=item.prompt, stream=False, return_tokens=True)
        try:
            data = await client.post_json("/completion", body)
        except ServerError as e:
            out.append(TaskOutcome(item.id, item.category, item.length, server, "", (), None,
                                   str(e)))
        else:
            text = str(data.get("content", ""))
            ids = tuple(int(t) for t in data.get("tokens") or ())
            c = (await asyncio.to_thread(check, item, text, run_program)
                 if run_program is not None else check(item, text))
            out.append(TaskOutcome(item.id, item.category, item.length, server, text, ids,
                                   c.correct, detail=c.detail, notes=c.notes))
        if on_item is not None:
            on_item()
    return out


@dataclass(frozen=True, slots=True)
class Accuracy:
    group: str  # a category, or a length class
    server: str
    n: int  # scored items
    n_correct: int
    accuracy: MeanUnc


@dataclass(frozen=True, slots=True)
class AccuracyDiff:
    """other − reference over the items both scored, per item (paired)."""

    group: str
    reference: str
    other: str
    n: int
    accuracy_ref: float
    accuracy_other: float
    diff: MeanUnc
    only_ref_correct: int
    only_other_correct: int
    ci_low: float | None = None  # paired 95% interval of the difference (Bonett–Price)
    ci_high: float | None = None


class PairedCounts(Protocol):
    """An accuracy difference as stored (AccuracyDiff, or its JSON form)."""

    @property
    def only_ref_correct(self) -> int: ...
    @property
    def only_other_correct(self) -> int: ...
    @property
    def ci_low(self) -> float | None: ...
    @property
    def ci_high(self) -> float | None: ...


K = TypeVar("K", bound=Hashable)


def measurable_differences(family: Mapping[K, PairedCounts], alpha: float = 0.05
                           ) -> dict[K, bool]:
    """Which accuracy differences of one report are measurable: those whose exact McNemar
    test survives Holm's correction over every comparison in `family` (each quant × category
    the report shows) and whose 95% interval excludes 0. Without the correction, a quant that
    loses nothing in 10 categories of 12 items is "measurably worse" in one of them in about
    one ladder in nine; with it, in at most 5% (tests/test_stats_coverage.py). The interval
    shown stays the unadjusted 95% one, so one that just excludes 0 may still not count."""
    keys = list(family)
    rejected = holm([mcnemar_p(family[k].only_ref_correct, family[k].only_other_correct)
                     for k in keys], alpha)
    out = {}
    for k, r in zip(keys, rejected, strict=True):
        lo, hi = family[k].ci_low, family[k].ci_high
        out[k] = r and lo is not None and hi is not None and (lo > 0 or hi < 0)
    return out


def share_text(k: int, n: int) -> str:
    """"7/12 = 58% [31%, 81%]": one accuracy with its 95% Wilson interval (never "± 0%" at
    0/n or n/n)."""
    if n <= 0:
        return "n/a"
    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.0%} [{lo:.0%}, {hi:.0%}]"


def accuracy_by(outcomes: Iterable[TaskOutcome], key: Callable[[TaskOutcome], str] | None = None
                ) -> list[Accuracy]:
    """Per group (default: category) and server, over the scored items."""
    key = key or (lambda o: o.category)
    acc: dict[tuple[str, str], list[bool]] = {}
    for o in outcomes:
        if o.correct is not None:
            acc.setdefault((key(o), o.server), []).append(o.correct)
    return [Accuracy(g, s, len(v), sum(v), share_and_uncertainty(sum(v), len(v)))
            for (g, s), v in acc.items()]


def accuracy_diff(outcomes: Iterable[TaskOutcome], reference: str, other: str,
                  key: Callable[[TaskOutcome], str] | None = None) -> list[AccuracyDiff]:
    key = key or (lambda o: o.category)
    by_item: dict[str, dict[str, TaskOutcome]] = {}
    for o in outcomes:
        if o.correct is not None and o.server in (reference, other):
            by_item.setdefault(o.item_id, {})[o.server] = o
    groups: dict[str, list[tuple[bool, bool]]] = {}
    for pair in by_item.values():
        if reference in pair and other in pair:
            a, b = pair[reference], pair[other]
            assert a.correct is not None and b.correct is not None
            groups.setdefault(key(a), []).append((a.correct, b.correct))
    out = []
    for g, pairs in groups.items():
        n = len(pairs)
        d = [int(b) - int(a) for a, b in pairs]
        mean = sum(d) / n
        var = sum(x * x for x in d) / n - mean * mean
        unc = math.sqrt(var / (n - 1)) if n > 1 and var > 0 else 0.0
        only_ref = sum(a and not b for a, b in pairs)
        only_other = sum(b and not a for a, b in pairs)
        both = sum(a and b for a, b in pairs)
        neither = n - both - only_ref - only_other
        ci = paired_proportion_interval(both, only_ref, only_other, neither)
        out.append(AccuracyDiff(
            g, reference, other, n, sum(a for a, _ in pairs) / n, sum(b for _, b in pairs) / n,
            MeanUnc(mean, unc), only_ref, only_other,
            ci[0] if ci else None, ci[1] if ci else None))
    return out
