"""Short names for servers on a narrow screen: the quant label where the names carry one.

Server names are often model file stems ("gemma3-270m-Q4_K_M", "gemma3-270m-Q8_0") that differ
only in the quant; the screen says `Q4_K_M vs Q8_0`, not the whole names. The full name stays in
tooltips, the servers screen and every export. No Textual here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# llama.cpp's quant names as they appear in GGUF file names: Q4_K_M, IQ4_NL, Q8_0, IQ2_XXS, F16,
# BF16, MXFP4, TQ1_0 ... (case-insensitive; "q4_k_m" is written as found).
_QUANT = re.compile(
    r"(?<![A-Za-z0-9])((?:I?Q|TQ)\d(?:_[0-9A-Za-z]{1,3}){0,2}|BF16|F16|F32|MXFP4)(?![A-Za-z0-9])",
    re.IGNORECASE)
_SEP = re.compile(r"([-_. :/]+)")
MAX_LABEL = 18


def quant_in(name: str) -> str | None:
    """The one quant name in `name` (the last, when there are several), else None."""
    found = _QUANT.findall(name)
    return found[-1] if found else None


def _strip_common(names: Sequence[str]) -> list[str]:
    """Drop the words (split at - _ . : /) every name starts or ends with."""
    parts = [_SEP.split(n) for n in names]
    words = [p[0::2] for p in parts]
    lo = 0
    while all(len(w) > lo + 1 for w in words) and len({w[lo] for w in words}) == 1:
        lo += 1
    hi = 0
    while all(len(w) > lo + hi + 1 for w in words) and len({w[-1 - hi] for w in words}) == 1:
        hi += 1
    out = []
    for p in parts:
        # words sit at even indexes, separators at odd ones
        start, end = 2 * lo, len(p) - 2 * hi
        out.append("".join(p[start:end]))
    return out


def shorten(text: str, width: int = MAX_LABEL) -> str:
    """`text` cut in the middle to `width` characters ("127.0.…:8081")."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def short_labels(names: Sequence[str], width: int = MAX_LABEL) -> dict[str, str]:
    """A short, distinct label per server: the quant in its name when every name has a
    different one, else the name without the words all names share, else the name; each cut to
    `width` characters."""
    if not names:
        return {}
    quants = [quant_in(n) for n in names]
    if all(quants) and len({q.upper() for q in quants if q}) == len(names):
        return {n: shorten(q or n, width) for n, q in zip(names, quants, strict=True)}
    if len(names) > 1:
        stripped = _strip_common(names)
        if all(stripped) and len(set(stripped)) == len(names):
            return {n: shorten(s, width) for n, s in zip(names, stripped, strict=True)}
    cut = {n: shorten(n, width) for n in names}
    if len(set(cut.values())) == len(names):
        return cut
    return {n: n for n in names}


def versus(labels: dict[str, str], b: str, a: str) -> str:
    """`Q4_K_M vs Q8_0`."""
    return f"{labels.get(b, b)} vs {labels.get(a, a)}"
