"""The verdict from rows: which quant, why, what fails, what was within noise."""

from __future__ import annotations

from quanttui.core.ladder.table import Diff, QuantRow
from quanttui.core.ladder.verdict import Constraints, decide


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
    assert v.recommended == "Q8_0" and "decode ×1.01 < ×1.2" in v.failing["Q4_K_M"][0]
    assert any("no measurable difference" in x for x in v.within_noise)
    v = decide(rows, [], Constraints(memory_budget_bytes=6_000_000_000))
    assert v.recommended == "Q4_K_M" and "memory" in v.failing["Q8_0"][0]
    v = decide(rows, [], Constraints(memory_budget_bytes=1_000_000_000))
    assert v.recommended is None and v.reason.startswith("No quant meets the constraints")


def test_a_category_measurably_worse_fails_only_when_the_interval_says_so() -> None:
    worse = Diff(value=-0.3, low=-0.5, high=-0.1, n=20, measurable=True)
    noisy = Diff(value=-0.3, low=-0.7, high=0.1, n=5, measurable=False)
    rows = [row("Q8_0", 8_000_000_000, ref=True),
            row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94, acc={"math": worse})]
    assert decide(rows, [], Constraints()).recommended == "Q8_0"
    rows[1] = row("Q4_K_M", 4_800_000_000, kld=0.03, top1=0.94, acc={"math": noisy})
    v = decide(rows, [], Constraints())
    assert v.recommended == "Q4_K_M" and any("math" in x for x in v.within_noise)


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
