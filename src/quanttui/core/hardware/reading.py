"""A figure that is either a value or n/a with a reason.

Hardware figures are often unreadable (no GPU, another user's process, a remote server). The
type makes that explicit: a `Reading[T]` is either a plain `T` or an `NA` carrying why, so a
missing figure can never be confused with 0. Check with `isinstance(r, NA)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

T = TypeVar("T")
U = TypeVar("U")
N = TypeVar("N", int, float)


@dataclass(frozen=True, slots=True)
class NA:
    """Not available, and why (shown to the user as "n/a: <reason>")."""

    reason: str

    def __str__(self) -> str:
        return f"n/a ({self.reason})"


# A generic alias rather than a wrapper class: values stay plain ints/floats for consumers.
Reading: TypeAlias = T | NA


def is_na(reading: object) -> bool:
    return isinstance(reading, NA)


def value_or(reading: Reading[T], default: T) -> T:
    """The value, or `default` when n/a (for display code only, never for stored figures)."""
    return default if isinstance(reading, NA) else reading


def map_reading(reading: Reading[T], fn: Callable[[T], U]) -> Reading[U]:
    """Apply `fn` to a value; an n/a passes through with its reason."""
    return reading if isinstance(reading, NA) else fn(reading)


def peak(readings: Iterable[Reading[N]]) -> Reading[N]:
    """Maximum of a series, ignoring n/a points; n/a (last reason) when no point had a value."""
    best: N | None = None
    last_na = NA("no samples")
    for r in readings:
        if isinstance(r, NA):
            last_na = r
        elif best is None or r > best:
            best = r
    return last_na if best is None else best


def format_bytes(n: float) -> str:
    """A size as every face shows it: decimal units (kB = 10³, MB = 10⁶, GB = 10⁹ bytes), whole
    kB and MB, GB and TB with one decimal. llama.cpp's logs use binary units (MiB = 2²⁰ bytes):
    its "226.1 MiB" is 237 MB here."""
    # Each unit starts where the one below would print as 1000.
    for start, scale, unit, digits in ((999.95e9, 1e12, "TB", 1), (999.5e6, 1e9, "GB", 1),
                                       (999.5e3, 1e6, "MB", 0), (999.5, 1e3, "kB", 0)):
        if n >= start:
            return f"{n / scale:.{digits}f} {unit}"
    return f"{n:.0f} B"


def describe_error(exc: BaseException) -> str:
    """A short reason string for an unexpected exception (type plus message)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
