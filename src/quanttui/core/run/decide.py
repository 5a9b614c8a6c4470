"""`--until-decided`: how many repetitions to measure, and which of them the reported intervals
come from. Pure and synchronous: the session calls `next_step` between repetitions, and
tests/test_stats_coverage.py drives the same function with simulated speeds.

Two stages, in repetitions (one repetition = every prompt once more on every server):

1. Deciding. After each repetition, each server's decode ratio to the first is looked at with
   `stats.decided` (its 95% interval within ± half_width, or a 99% interval excluding 1), over
   all repetitions so far. Another one is added while a ratio is undecided and the budget has
   room for it and for the confirmation after it.
2. Confirming. As many repetitions again as deciding took (fewer only when the budget has no
   room; at least one), which no decision looks at. The reported paired intervals come from
   these alone (`RunResults.confirm_from`).

Why not report the deciding repetitions: stopping when an interval looks narrow, or looks
different, picks runs whose noise happened to look small; with no true difference an interval
over those same repetitions excluded 1 in 6.6–24% of runs (2–12 prompts, ≤ 10 repetitions).
The confirmation's noise is drawn afresh, so given how many repetitions it has, its interval is
the ordinary paired t interval over prompts, with its 95%. The unit of replication stays the
prompt: repetitions only average each prompt's requests, so the interval has n − 1 degrees of
freedom for n prompts however many repetitions there are (a confidence sequence over
repetitions, or Stein's two stages, would treat repetitions as the independent units).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quanttui.core.run.stats import PairedDiff, decided


@dataclass(frozen=True, slots=True)
class Step:
    open: tuple[int, ...]  # indices of the ratios given that are not decided yet
    more: bool  # measure one more deciding repetition
    confirm: int  # when not `more`: the confirmation repetitions to measure


def next_step(diffs: Sequence[PairedDiff | None], half_width: float, *, repetitions: int,
              elapsed_s: float, repetition_s: float, budget_s: float) -> Step:
    """What to do after `repetitions` deciding repetitions, given each server's decode ratio
    to the first over all of them. `elapsed_s` is on the budget's clock; `repetition_s` is
    what one repetition has taken on average, for what the rest would cost."""
    open_ = tuple(i for i, d in enumerate(diffs) if not decided(d, half_width))
    # room for one more deciding repetition and a confirmation as long as all of deciding
    if open_ and elapsed_s + repetition_s * (repetitions + 2) <= budget_s:
        return Step(open_, more=True, confirm=0)
    room = int((budget_s - elapsed_s) // repetition_s) if repetition_s > 0 else repetitions
    return Step(open_, more=False, confirm=max(1, min(repetitions, room)))
