"""The quality step's progress in words: one source for the TUI and the headless run (a
module of its own, light to import at the TUI's start)."""

from __future__ import annotations


def progress_words(stage: str, done: int, total: int, servers: int = 1) -> str:
    """The quality step's progress in plain words, the same in the TUI and headless:
    "tasks 12/78 answers (39 items × 2 servers)", "distribution 100/512 positions (256 per
    server × 2 servers)". The tables count per server (and only the answers that could be
    scored), so the split is said."""
    count = f"{done}/{total}"
    each = total // servers if servers > 1 and total % servers == 0 else None
    if stage == "outputs":
        return f"outputs {count} servers compared with the reference"
    if stage == "reference":
        return f"reference {count} prompts continued"
    if stage == "distribution":
        split = f" ({each} per server × {servers} servers)" if each else ""
        return f"distribution {count} positions{split}"
    if stage == "tasks":
        split = (f" ({each} item{'' if each == 1 else 's'} × {servers} servers)" if each
                 else "")
        return f"tasks {count} answers{split}"
    return f"{stage} {count}"
