"""How a paired difference is said, in every face: a verdict only where the interval allows one.

Where the 95% interval covers 0 the data cannot tell the two servers apart, and that is what is
said ("no measurable difference"), never a winner; the per-prompt win rate is always named as
such, since "faster on 67% of prompts" reads as a verdict beside a ratio below 1.
"""

from __future__ import annotations

from quanttui.core.run.pairing import basis_words
from quanttui.core.run.stats import PairedDiff


def verdict(d: PairedDiff, a: str, b: str, *, higher: str = "higher", lower: str = "lower"
            ) -> str:
    """"B faster than A", "no measurable difference", or "too few prompts" (with n)."""
    how = basis_words(d.basis, d.floor)
    n = f"n={d.n}" + (f"; {how}" if how else "")
    if d.ci_low is None or d.ci_high is None:
        return f"too few prompts for an interval ({n})"
    if not d.measurable:
        return f"no measurable difference ({n})"
    return f"{b} {higher if d.mean_diff > 0 else lower} than {a} ({n})"


def interval(d: PairedDiff, digits: int = 1) -> str:
    """"[+0.5, +2.1]", or "n/a" below two prompts."""
    if d.ci_low is None or d.ci_high is None:
        return "n/a"
    return f"[{d.ci_low:+.{digits}f}, {d.ci_high:+.{digits}f}]"


def ratio(d: PairedDiff) -> str:
    """"×1.08 [1.03, 1.13]" (B / A with its interval), or "n/a"."""
    if d.ratio is None:
        return "n/a"
    ci = d.ratio_ci
    return f"×{d.ratio:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci is not None else "")


def win_rate(d: PairedDiff, b: str) -> str:
    return f"per-prompt win rate of {b} {d.win_rate_b:.0%}"
