"""Number formatting for the screen: short, fixed units, and n/a instead of a made-up 0."""

from __future__ import annotations

from quanttui.core.hardware.reading import format_bytes
from quanttui.core.run.stats import Summary


def size(n: float) -> str:
    """Bytes, as every face shows them (`format_bytes`: decimal units, MB = 10⁶)."""
    return format_bytes(n)


def signed_size(n: float) -> str:
    """A difference of sizes: "+12 MB", "-43 MB", "±0 B"."""
    sign = "+" if n > 0 else "-" if n < 0 else "±"
    return sign + format_bytes(abs(n))


def signed_pct(x: float) -> str:
    """A relative difference: "+5%", "-12%"."""
    return f"{x:+.0%}"


def count(n: float) -> str:
    """Parameter counts: 268M, 8.0B."""
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n:.0f}"


def num(v: float | None, fmt: str = ".1f") -> str:
    return "n/a" if v is None else format(v, fmt)


def rate(v: float | None) -> str:
    """Tokens a second, whole: "412"; past 10,000 (a prompt cached or timed near zero) in
    thousands or millions, so a column never holds an eight-digit figure: "18.0M"."""
    if v is None:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} s" if v >= 10_000 else f"{v:.0f} ms"


def mean(s: Summary | None, fmt: str = ".1f") -> str:
    return "n/a" if s is None else format(s.mean, fmt)


def hms(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def escape(text: str) -> str:
    """Text for Content markup: square brackets would otherwise be read as tags."""
    return text.replace("[", r"\[")
