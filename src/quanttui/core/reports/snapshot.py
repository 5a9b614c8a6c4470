"""Write a run as a set of files: JSON, Markdown, CSV, and an SVG of the TUI screen.

Used by `quanttui snapshot`, the headless run and the TUI's snapshot key alike. Every file is
written atomically, so an export interrupted at any point leaves each file either as it was or
complete, never half written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from quanttui.core.reports import csv_export, markdown
from quanttui.core.reports.run_file import encode_run, write_atomic
from quanttui.core.run.records import RunResults

FORMATS = ("json", "md", "csv", "svg")


def render_json(results: RunResults) -> bytes:
    return encode_run(results)


def write_snapshot(
    results: RunResults,
    out_dir: Path,
    stem: str,
    formats: Sequence[str] = ("json", "md", "csv"),
    svg: Callable[[RunResults], str] | None = None,
) -> list[Path]:
    """Files written, in the order of `formats`. `svg` renders the screen (the TUI provides it)."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(FORMATS)}")
    written: list[Path] = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        if fmt == "json":
            data = render_json(results)
        elif fmt == "md":
            data = markdown.render(results).encode()
        elif fmt == "csv":
            data = csv_export.render(results).encode()
        else:
            if svg is None:
                raise ValueError("an SVG of the screen needs the TUI (pip install quanttui)")
            data = svg(results).encode()
        write_atomic(path, data)
        written.append(path)
    return written
