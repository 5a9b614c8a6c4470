"""The verdict from rows: which quant, why, what fails, what was within noise."""

from __future__ import annotations

from quanttui.core.ladder.table import Diff, QuantRow
from quanttui.core.ladder.verdict import Constraints, Verdict, decide


def row(name: str, size: int, *, ref: bool = False, kld: float | None = None,
        top1: float | None = None, speed: Diff | None = None,
        acc: dict[str, Diff] | None = None, private: int = 100_000_000,
        kld_ci: tuple[float, float] | None = None,
        top1_ci: tuple[float, float] | None = None) -> QuantRow:
    """A row; KLD and same-top-1 get a 95% interval of width 0 unless one is given."""
    kl = kld_ci or ((kld, kld) if kld is not None else (None, None))
    tl = top1_ci or ((top1, top1) if top1 is not None else (None, None))
    return QuantRow(name=name, quant=name, path=f"/m/{name}.gguf", reference=ref,
                    requantized_from=None, size_bytes=size, bits_per_weight=None,
                    memory_private_peak=private, memory_model_pages_peak=size,
                    decode_tps=10.0, decode_vs_ref=speed, kld_mean=kld, same_top1=top1,
                    kld_low=kl[0], kld_high=kl[1], same_top1_low=tl[0], same_top1_high=tl[1],
                    accuracy_vs_ref=acc or {})


FAST = Diff(value=1.3, low=1.2, high=1.4, n=8, measurable=True)
SAME = Diff(value=1.01, low=0.95, high=1.07, n=8, measurable=False)


def test_the_smallest_quant_that_keeps_the_quality_is_recommended() -> None:
    rows = [row("Q8_0", 8_000_000_000, ref=True),
            row("Q5_K_M", 5_500_000_000, kld=0.01, top1=0.97, speed=FAST),
            row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94, speed=FAST),
            row("Q2_K", 3_000_000_000, kld=0.40, top1=0.70, speed=FAST)]
    v = decide(rows, [], Constraints())
    assert v.recommended == "Q4_K_M"
    assert "Run Q4_K_M" in v.reason and "KLD 0.030 [0.030, 0.030] ≤ 0.05" in v.reason
    assert ("Smaller ones are out: Q2_K fails KLD 0.400 [0.400, 0.400] > 0.05, same-top-1 0.70 "
            "[0.70, 0.70] < 0.9." in v.reason)
    assert set(v.failing) == {"Q2_K"}


def test_memory_budget_and_speed_are_constraints() -> None:
    rows = [row("Q8_0", 8_000_000_000, ref=True),
            row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94, speed=SAME)]
    v = decide(rows, [], Constraints(min_speedup=1.2))
    assert v.recommended == "Q8_0"
    assert "decode ×1.01 [0.95, 1.07] < ×1.2" in v.failing["Q4_K_M"][0]
    assert any("no measurable difference" in x for x in v.within_noise)
    # an interval across the limit decides nothing: a step to take, not a failure
    close = Diff(value=1.22, low=1.1, high=1.34, n=8, measurable=True)
    v = decide([rows[0], row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94, speed=close)], [],
               Constraints(min_speedup=1.2))
    assert v.failing["Q4_K_M"] == ["not yet decided: measure more (decode ×1.22 [1.10, 1.34] "
                                   "against ≥ ×1.2)"]
    v = decide([rows[0], row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94, speed=FAST)], [],
               Constraints(min_speedup=1.2))
    assert v.recommended == "Q4_K_M"
    v = decide(rows, [], Constraints(memory_budget_bytes=6_000_000_000))
    assert v.recommended == "Q4_K_M" and "memory" in v.failing["Q8_0"][0]
    v = decide(rows, [], Constraints(memory_budget_bytes=1_000_000_000))
    assert v.recommended is None and v.reason.startswith("No quant meets the constraints")


def _with_accuracy(d: Diff, c: Constraints | None = None) -> Verdict:
    return decide([row("Q8_0", 8_000_000_000, ref=True),
                   row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94, acc={"math": d})], [],
                  c or Constraints())


def test_accuracy_may_drop_at_most_the_margin_by_its_interval() -> None:
    """Non-inferiority per category, 10% by default: it passes when the 95% interval starts
    at or above −10%, fails when a measurable loss lies wholly below −10%, and otherwise
    can't tell with the items it had, which is a step to run (more items), not a failure."""
    v = _with_accuracy(Diff(value=-0.02, low=-0.08, high=0.04, n=200, measurable=False))
    assert v.recommended == "Q4_K_M" and not v.failing
    v = _with_accuracy(Diff(value=-0.3, low=-0.5, high=-0.15, n=20, measurable=True))
    assert v.recommended == "Q8_0"
    assert v.failing["Q4_K_M"] == ["accuracy more than 10% lower: math -30% [-50%, -15%]"]
    assert "Q4_K_M fails accuracy more than 10% lower" in v.reason
    v = _with_accuracy(Diff(value=-0.08, low=-0.31, high=0.15, n=12, measurable=False))
    assert v.recommended == "Q8_0" and "fails" not in v.reason
    assert v.reason.startswith("Run Q8_0 (the reference) until more is measured")
    assert ("can't tell with 12 items whether it is at most 10% lower in math -8% [-31%, +15%]"
            in v.reason)
    assert ("Q4_K_M vs Q8_0 accuracy: no measurable difference in math (up to 12 items each; "
            "a loss up to 31% can't be ruled out)") in v.within_noise
    # measurably lower but perhaps by less than the margin: can't tell either
    lower = Diff(value=-0.2, low=-0.35, high=-0.05, n=40, measurable=True)
    v = _with_accuracy(lower)
    assert v.recommended == "Q8_0" and "can't tell with 40 items" in v.reason
    # below the margin, but not measurable once Holm has had its say: not a failure
    v = _with_accuracy(Diff(value=-0.3, low=-0.5, high=-0.15, n=20, measurable=False))
    assert "fails" not in v.reason and "can't tell with 20 items" in v.reason
    # the margin is the user's
    assert _with_accuracy(lower, Constraints(max_accuracy_drop=0.35)).recommended == "Q4_K_M"
    assert "task accuracy at most 35% lower in each category" in Constraints(
        max_accuracy_drop=0.35).describe()


def test_a_reference_at_the_floor_or_ceiling_of_a_category_is_warned_of() -> None:
    """0/n: no quant can do worse there, so "no loss" means nothing; n/n: no gain can show."""
    ref = row("Q8_0", 8_000_000_000, ref=True)
    ref.accuracy = {"arithmetic": 0.0, "code": 0.5, "facts": 1.0}
    ref.accuracy_n = {"arithmetic": 12, "code": 6, "facts": 8}
    v = decide([ref, row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94)], [], Constraints())
    assert v.warnings == [
        "Q8_0 scored 0/12 in arithmetic: no quant can score lower, so that category can't show "
        "a loss (its items are too hard for this model)",
        "Q8_0 scored 8/8 in facts: no quant can score higher, so that category can't show a "
        "gain"]
    ref.accuracy = {"code": 0.5}
    assert decide([ref, row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94)], [],
                  Constraints()).warnings == []


def test_quality_not_measured_is_a_step_to_run_not_a_failure() -> None:
    """Without teacher-forced figures no smaller quant is recommended, and the sentence says
    that measuring is what is missing, not that the quants failed."""
    rows = [row("Q8_0", 8_000_000_000, ref=True, private=10),
            row("Q4_K_M", 4_800_000_000, speed=FAST),
            row("Q2_K", 3_000_000_000, speed=FAST)]
    v = decide(rows, [], Constraints())
    assert v.recommended == "Q8_0"
    assert v.reason.startswith("Run Q8_0 (the reference) until quality is measured")
    assert "quality not measured for Q4_K_M, Q2_K" in v.reason and "fails" not in v.reason
    # one measured and failing, one not measured: each named for what it is
    rows[1] = row("Q4_K_M", 4_800_000_000, kld=0.2, top1=0.8, speed=FAST)
    v = decide(rows, [], Constraints())
    assert v.reason == ("Run Q8_0 (the reference): nothing smaller keeps the quality asked for "
                        "— Q4_K_M fails KLD 0.200 [0.200, 0.200] > 0.05, same-top-1 0.80 "
                        "[0.80, 0.80] < 0.9; quality not measured for Q2_K.")
    # a measured quant that keeps quality is recommended over an unmeasured smaller one
    rows[1] = row("Q4_K_M", 4_800_000_000, kld=0.01, top1=0.97, speed=FAST)
    v = decide(rows, [], Constraints())
    assert v.recommended == "Q4_K_M"
    assert v.reason.endswith("Smaller ones are out: quality not measured for Q2_K.")


def test_kld_and_same_top1_are_decided_by_their_intervals() -> None:
    """Within the limits only when the whole 95% interval is: the upper end of KLD ≤ max, the
    lower end of same-top-1 ≥ min."""
    ref = row("Q8_0", 8_000_000_000, ref=True)
    ok = row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.95, kld_ci=(0.02, 0.045),
             top1_ci=(0.92, 0.97), speed=FAST)
    v = decide([ref, ok], [], Constraints())
    assert v.recommended == "Q4_K_M" and not v.failing
    assert ("KLD 0.030 [0.020, 0.045] ≤ 0.05 and same-top-1 0.95 [0.92, 0.97] ≥ 0.9 "
            "(95% intervals over prompts)") in v.reason


def test_an_interval_wholly_past_a_limit_fails() -> None:
    ref = row("Q8_0", 8_000_000_000, ref=True)
    bad = row("Q2_K", 3_000_000_000, kld=0.09, top1=0.93, kld_ci=(0.06, 0.13),
              top1_ci=(0.85, 0.97), speed=FAST)
    v = decide([ref, bad], [], Constraints())
    assert v.recommended == "Q8_0"
    # the clear KLD failure settles it; same-top-1's undecided interval is not a second reason
    assert v.failing["Q2_K"] == ["KLD 0.090 [0.060, 0.130] > 0.05"]
    bad = row("Q2_K", 3_000_000_000, kld=0.02, top1=0.8, kld_ci=(0.01, 0.03),
              top1_ci=(0.7, 0.88), speed=FAST)
    v = decide([ref, bad], [], Constraints())
    assert v.failing["Q2_K"] == ["same-top-1 0.80 [0.70, 0.88] < 0.9"]
    assert "nothing smaller keeps the quality asked for — Q2_K fails" in v.reason


def test_an_interval_across_a_limit_is_not_yet_decided() -> None:
    """A point estimate inside the limit is not enough: the interval straddles it, so the
    verdict asks for more measurement, as it does for a quant not measured, and names the
    interval and the limit."""
    ref = row("Q8_0", 8_000_000_000, ref=True)
    q4 = row("Q4_K_M", 4_800_000_000, kld=0.04, top1=0.95, kld_ci=(0.02, 0.07),
             top1_ci=(0.92, 0.97), speed=FAST)
    v = decide([ref, q4], [], Constraints())
    assert v.recommended == "Q8_0"
    assert v.failing["Q4_K_M"] == [
        "not yet decided: measure more (KLD 0.040 [0.020, 0.070] against ≤ 0.05)"]
    assert v.reason == (
        "Run Q8_0 (the reference) until more is measured: no smaller quant is shown to keep "
        "the quality asked for (Q4_K_M not yet decided: measure more (KLD 0.040 [0.020, 0.070] "
        "against ≤ 0.05)); measure to see whether one does.")
    assert "fails" not in v.reason
    # no interval at all (one prompt): not decided either
    q4 = row("Q4_K_M", 4_800_000_000, kld=0.01, top1=0.97, kld_ci=(0.01, 0.01), speed=FAST)
    q4.same_top1_low = q4.same_top1_high = None
    assert decide([ref, q4], [], Constraints()).failing["Q4_K_M"] == [
        "not yet decided: measure more (same-top-1 0.97 against ≥ 0.9)"]


def test_markdown_shows_the_warnings_and_what_measurable_accuracy_means() -> None:
    from quanttui.core.ladder.section import LadderSection
    from quanttui.core.reports.ladder import ACCURACY_NOTE, render_ladder

    ref = row("Q8_0", 8_000_000_000, ref=True)
    ref.accuracy, ref.accuracy_n = {"arithmetic": 0.0, "facts": 0.75}, {"arithmetic": 12,
                                                                         "facts": 12}
    q4 = row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94, acc={
        "facts": Diff(value=-0.08, low=-0.31, high=0.15, n=12, measurable=False)})
    v = decide([ref, q4], [], Constraints())
    md = "\n".join(render_ladder(LadderSection(reference="Q8_0", k=100, together=True,
                                               rows=[ref, q4], neighbours=[], verdict=v,
                                               answers=[]), "# ladder"))
    assert ("Warnings:\n- Q8_0 scored 0/12 in arithmetic: no quant can score lower, so that "
            "category can't show a loss") in md
    assert ACCURACY_NOTE in md and "Holm" in ACCURACY_NOTE
    assert "arithmetic 0/12 = 0% [0%, 24%], facts 9/12 = 75% [47%, 91%]" in md
    assert "can't tell with 12 items" in md


def test_a_quant_undecided_on_several_limits_is_said_once() -> None:
    wide = Diff(value=-0.08, low=-0.31, high=0.17, n=12, measurable=False)
    v = decide([row("Q8_0", 8_000_000_000, ref=True),
                row("Q4_K_M", 4_800_000_000, kld=0.09, top1=0.83, kld_ci=(0.049, 0.148),
                    top1_ci=(0.69, 0.92), acc={"arithmetic": wide})], [], Constraints())
    (reason,) = v.failing["Q4_K_M"]
    assert reason.count("not yet decided") == 1
    assert "KLD 0.090 [0.049, 0.148] against ≤ 0.05" in reason and "arithmetic" in reason
    assert v.reason.count("Q4_K_M not yet decided") == 1
