"""The `quality` section of the run JSON as msgspec structs (built by core.quality.step).

Figures are rounded for the file (shares to 4 digits, divergences to 6). Shares are fractions.
"""

from __future__ import annotations

import msgspec

from quanttui.core.quality.accuracy import Accuracy
from quanttui.core.quality.diff import SegmentKind
from quanttui.core.quality.divergence import MeanCI, MeanUnc, cluster_mean, cluster_share
from quanttui.core.quality.outputs import OutputSummary
from quanttui.core.quality.teacher_forcing import Method
from quanttui.core.suites.tasks import Length


class QualityOptionsDoc(msgspec.Struct):
    distribution: bool
    tasks: bool
    k: int
    method: Method
    position_budget: int
    positions_per_prompt: int
    task_items: int | None  # how many items were given; None: the built-in suite


class OutputComparisonDoc(msgspec.Struct):
    """The two greedy outputs for one prompt (or task item)."""

    prompt_id: str
    exact_match: bool
    first_divergence: int | None
    token_agreement: float | None
    text_similarity: float
    n_ref: int
    n_other: int
    # aligned runs of tokens: [kind, ref start, ref end, other start, other end]
    segments: list[tuple[SegmentKind, int, int, int, int]]


class OutputsDoc(msgspec.Struct):
    summary: OutputSummary | None
    per_prompt: list[OutputComparisonDoc]


class PromptDivergenceDoc(msgspec.Struct):
    prompt_id: str
    n: int  # positions compared
    same_top1: float | None
    kld_mean: float | None


class DistributionDoc(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Teacher-forced comparison on the reference's continuation. The figures from `kld_label`
    to `tail_ref_max` are left out when no position was compared. Means carry `low`/`high`, their
    95% interval over prompts, and `unc`, the standard error over prompts
    (core.quality.divergence); in files written before the intervals, `unc` was a per-position
    standard error and there is no `low`/`high` (the reader recomputes them from `per_prompt`
    where it can: core.reports.run_file)."""

    method: Method
    k: int
    n_positions: int
    requests_ref: int
    requests_other: int
    grammar_fallbacks: int
    elapsed_s: float
    interrupted: bool
    kld_label: str | None = None  # "KLD@K": truncated at the top K of the reference
    same_top1: MeanCI | None = None
    kld: MeanCI | None = None
    kld_percentiles: dict[str, float] | None = None
    delta_p: MeanCI | None = None
    delta_p_percentiles: dict[str, float] | None = None
    rms_delta_p: MeanCI | None = None
    ln_ppl_ratio: MeanCI | None = None
    ppl_ref: float | None = None
    ppl_other: float | None = None
    tail_ref_mean: float | None = None
    tail_ref_max: float | None = None
    per_prompt: list[PromptDivergenceDoc]


class TaskOutputsDoc(msgspec.Struct):
    summary: OutputSummary | None
    per_item: list[OutputComparisonDoc]


class AccuracyDiffDoc(msgspec.Struct):
    """other − reference over the items both scored."""

    group: str
    n: int
    accuracy_ref: float
    accuracy_other: float
    diff: MeanUnc
    only_ref_correct: int
    only_other_correct: int
    ci_low: float | None = None  # paired 95% interval (Newcombe); absent before schema 2
    ci_high: float | None = None


class TasksDoc(msgspec.Struct):
    outputs: TaskOutputsDoc
    accuracy_diff: list[AccuracyDiffDoc]
    accuracy_diff_by_length: list[AccuracyDiffDoc]


class QualityPairDoc(msgspec.Struct):
    reference: str
    other: str
    outputs: OutputsDoc
    distribution: DistributionDoc | None
    tasks: TasksDoc


class TaskOutcomeDoc(msgspec.Struct):
    item_id: str
    category: str
    length: Length
    server: str
    correct: bool | None  # None: open item, or the request failed
    output: str
    error: str | None
    detail: str | None = None  # why the check failed (programs: "timeout", "AssertionError")


class QualitySection(msgspec.Struct):
    """Every other server against the reference: outputs, distributions, task accuracy."""

    reference: str
    options: QualityOptionsDoc
    pairs: list[QualityPairDoc]
    accuracy: list[Accuracy]
    accuracy_by_length: list[Accuracy]
    task_outcomes: list[TaskOutcomeDoc]
    notices: list[str]
    interrupted: bool
    elapsed_s: float


def _with_intervals(d: DistributionDoc) -> DistributionDoc:
    per = [pp for pp in d.per_prompt if pp.n > 0]
    sizes = [pp.n for pp in per]
    out = d
    if d.kld is not None and d.kld.low is None and all(pp.kld_mean is not None for pp in per):
        k = cluster_mean(sizes, [pp.kld_mean or 0.0 for pp in per], skewed=True)
        out = msgspec.structs.replace(out, kld=MeanCI(d.kld.value, k.unc, k.low, k.high))
    if (d.same_top1 is not None and d.same_top1.low is None
            and all(pp.same_top1 is not None for pp in per)):
        t = cluster_share(sizes, [round((pp.same_top1 or 0.0) * pp.n) for pp in per])
        out = msgspec.structs.replace(out, same_top1=MeanCI(d.same_top1.value, t.unc, t.low,
                                                            t.high))
    return out


def with_intervals(section: QualitySection) -> QualitySection:
    """A section from a file written before the 95% intervals, with KLD's and same-top-1's
    recomputed from its per-prompt figures (rounded as stored: 6 and 4 digits), so older runs
    read as new ones do; Δp and the rest keep their per-position `unc` and no interval."""
    pairs = [p if p.distribution is None else msgspec.structs.replace(
        p, distribution=_with_intervals(p.distribution)) for p in section.pairs]
    return msgspec.structs.replace(section, pairs=pairs)
