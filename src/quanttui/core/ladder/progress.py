"""How far a ladder has come and how long the rest should take, from what it has measured.

The ladder is planned as steps in order: server starts, the cache fills of a context / KV cache
ladder (in tokens), each pass's requests, the reference's continuations, and per quant its
teacher forcing and task items. Each kind of step has a pace
(seconds per unit) learned from the units done so far, and the time left is every step's units
left at its kind's pace. Sizes not known in advance (requests per pass, positions per quant) are
taken from the first step of their kind that says its size. While a size or a pace is not
measured yet the estimate is None, not a guess.

This module only counts; the faces (headless_ladder, the TUI) decide how to show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["server start", "cache fill", "requests", "reference continuations",
               "teacher forcing", "task items"]


@dataclass(frozen=True, slots=True)
class LadderProgress:
    """Where the ladder is: the step under way and the whole ladder's estimate."""

    pass_no: int
    passes: int
    who: str  # the quant (or quants, for a pass's requests) the step is about
    stage: Kind
    done: int
    total: int | None
    elapsed_s: float  # since the ladder started
    eta_s: float | None  # the whole ladder's time left; None until measured

    @property
    def fraction(self) -> float | None:
        """The share of the whole ladder's time behind us (None while the estimate is)."""
        if self.eta_s is None:
            return None
        whole = self.elapsed_s + self.eta_s
        return self.elapsed_s / whole if whole > 0 else 1.0


@dataclass
class Step:
    kind: Kind
    pass_no: int
    who: str
    total: int | None = None  # None: learned from the first step of its kind that says
    done: int = 0
    seconds: float = 0.0  # spent on it, the part under way included once it is over
    began: float | None = None
    over: bool = False


def ladder_steps(groups: Sequence[Sequence[str]], reference: str, *, ref_first: bool,
                 distribution: bool, task_items: int,
                 fill: Mapping[str, int] | None = None) -> list[Step]:
    """The steps of a ladder whose passes run `groups` of servers (ref_first: the reference is
    started once before the first pass and stays up); `fill`: the tokens each server's cache is
    filled with before its first pass's requests."""
    steps: list[Step] = []
    if ref_first:
        steps.append(Step("server start", 1, reference, 1))
    seen: set[str] = set()
    filled: set[str] = set()
    up = {reference} if ref_first else set()  # already up when a pass begins
    for i, names in enumerate(groups, 1):
        if new := [n for n in names if n not in up]:
            steps.append(Step("server start", i, " and ".join(new), len(new)))
        for n in names:
            if fill and n in fill and n not in filled:
                filled.add(n)
                steps.append(Step("cache fill", i, n, fill[n]))
        steps.append(Step("requests", i, " and ".join(names)))
        if distribution and reference in names and reference not in seen:
            steps.append(Step("reference continuations", i, reference))
        for n in names:
            if n in seen:
                continue
            seen.add(n)
            if distribution:
                steps.append(Step("teacher forcing", i, n))
            if task_items:
                steps.append(Step("task items", i, n, task_items))
    return steps


class ProgressTracker:
    """Follows a ladder's steps and emits a LadderProgress at each begin and advance."""

    def __init__(self, emit: Callable[[LadderProgress], object] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.clock = clock
        self.steps: list[Step] = []
        self.passes = 0
        self.started = clock()
        self._at = 0  # the step under way (or next)

    def plan(self, steps: list[Step], passes: int) -> None:
        self.steps, self.passes, self._at = steps, passes, 0

    def begin(self, kind: Kind, pass_no: int, who: str, total: int | None = None) -> None:
        """The step (kind, pass_no, who) starts; the steps planned before it are over (done or
        skipped: a server that would not start, a quality step that failed)."""
        now = self.clock()
        idx = next((j for j in range(self._at, len(self.steps))
                    if (self.steps[j].kind, self.steps[j].pass_no, self.steps[j].who)
                    == (kind, pass_no, who)), None)
        if idx is None:  # not planned: counted where it happens, so the rest still adds up
            idx = self._at
            self.steps.insert(idx, Step(kind, pass_no, who))
        for s in self.steps[self._at:idx + 1]:
            self._close(s, now)
        step = self.steps[idx]
        step.over, step.began, step.done = False, now, 0
        self._at = idx
        if total is not None:
            self._size(step, total)
        self._emit(step, now)

    def advance(self, *, done: int | None = None, by: int = 0,
                total: int | None = None) -> None:
        """Units done in the step under way: `done` in all, or `by` more."""
        if self._at >= len(self.steps) or self.steps[self._at].began is None:
            return
        step = self.steps[self._at]
        if total is not None:
            self._size(step, total)
        step.done = done if done is not None else step.done + by
        self._emit(step, self.clock())

    def finish(self) -> None:
        """The step under way is over."""
        if self._at < len(self.steps):
            self._close(self.steps[self._at], self.clock())
            self._at += 1

    def snapshot(self) -> LadderProgress | None:
        if self._at >= len(self.steps):
            return None
        step = self.steps[self._at]
        return self._progress(step, self.clock())

    def eta(self, now: float) -> float | None:
        pace: dict[Kind, float] = {}
        units: dict[Kind, int] = {}
        for s in self.steps:
            spent = s.seconds + (now - s.began if s.began is not None and not s.over else 0.0)
            pace[s.kind] = pace.get(s.kind, 0.0) + spent
            units[s.kind] = units.get(s.kind, 0) + s.done
        left = 0.0
        for s in self.steps[self._at:]:
            if s.over:
                continue
            if s.total is None or not units.get(s.kind):
                return None
            left += max(s.total - s.done, 0) * pace[s.kind] / units[s.kind]
        return left

    def _size(self, step: Step, total: int) -> None:
        step.total = total
        for s in self.steps[self._at + 1:]:  # the same work on every pass or quant
            if s.kind == step.kind and s.total is None:
                s.total = total

    def _close(self, step: Step, now: float) -> None:
        if step.began is not None and not step.over:
            step.seconds += now - step.began
        step.over = True

    def _progress(self, step: Step, now: float) -> LadderProgress:
        return LadderProgress(step.pass_no, self.passes, step.who, step.kind, step.done,
                              step.total, now - self.started, self.eta(now))

    def _emit(self, step: Step, now: float) -> None:
        if self.emit is not None:
            self.emit(self._progress(step, now))


def later(p: LadderProgress, seconds: float) -> LadderProgress:
    """`p` as it reads `seconds` after it was made, with no news in between (the time left
    counts down, never below zero)."""
    eta = None if p.eta_s is None else max(p.eta_s - seconds, 0.0)
    return replace(p, elapsed_s=p.elapsed_s + seconds, eta_s=eta)


def time_left(seconds: float | None) -> str:
    if seconds is None:
        return "time left not measured yet"
    if seconds < 60:
        return "under a minute left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


def step_text(p: LadderProgress) -> str:
    """The step under way: "[pass 2/4] Q2_K: task items 12/39"."""
    count = f"{p.done}/{p.total}" if p.total is not None else f"{p.done}"
    return f"[pass {p.pass_no}/{p.passes}] {p.who}: {p.stage} {count}"


def progress_text(p: LadderProgress) -> str:
    """One line: "[pass 2/4] Q2_K: task items 12/39 · ladder 45% · about 6 min left"."""
    share = "" if p.fraction is None else f" · ladder {p.fraction:.0%}"
    return f"{step_text(p)}{share} · {time_left(p.eta_s)}"
