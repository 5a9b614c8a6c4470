"""Texts for perplexity: a model scores a fixed text token by token (teacher forcing), and two
quants' perplexities on it compare without any generation in between.

`data/prose.txt` is written for this project (English prose, ~11 kB), so it cannot have been in
any model's training data verbatim.
"""

from __future__ import annotations

from pathlib import Path

PROSE_PATH = Path(__file__).with_name("data") / "prose.txt"


def prose(max_chars: int | None = 2000) -> str:
    """The prose text, cut at a paragraph break near `max_chars` (None: all of it)."""
    text = PROSE_PATH.read_text(encoding="utf-8")
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text.rfind("\n\n", 0, max_chars)
    return text[:cut if cut > 0 else max_chars]
