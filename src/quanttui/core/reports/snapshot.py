"""Write a run as a set of files: JSON, Markdown, CSV, and an SVG of the TUI screen.

Used by `quanttui snapshot`, the headless run and the TUI's snapshot key alike. Every file is
written atomically, so an export interrupted at any point leaves each file either as it was or
complete, never half written. `save_run` keeps a run even when its files can't be written: the
history first, then the files, and the JSON in the user data dir when they fail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from quanttui.core.dirs import data_dir
from quanttui.core.reports import csv_export, markdown
from quanttui.core.reports.history import HistoryError, Store
from quanttui.core.reports.run_file import encode_run, results_dict, write_atomic
from quanttui.core.run.records import RunResults

FORMATS = ("json", "md", "csv", "svg")


class ExportError(OSError):
    """A file of an export could not be written (`path`); `written`: those written before it."""

    def __init__(self, path: Path, cause: OSError, written: Sequence[Path] = ()) -> None:
        reason = cause.strerror or str(cause)
        if isinstance(cause, (FileExistsError, NotADirectoryError)):
            blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
            if blocker is not None:
                reason = f"{blocker} is a file, not a folder"
        super().__init__(cause.errno, reason, str(path))
        self.path = path
        self.written = list(written)

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.strerror}"


def render_json(results: RunResults) -> bytes:
    return encode_run(results)


def write_snapshot(
    results: RunResults,
    out_dir: Path,
    stem: str,
    formats: Sequence[str] = ("json", "md", "csv"),
    svg: Callable[[RunResults], str] | None = None,
) -> list[Path]:
    """Files written, in the order of `formats`. `svg` renders the screen (the TUI provides it).
    Raises ExportError (an OSError) naming the file that could not be written."""
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
        try:
            write_atomic(path, data)
        except OSError as e:
            raise ExportError(path, e, written) from e
        written.append(path)
    return written


@dataclass
class Saved:
    """Where `save_run` kept a run, and what it could not do."""

    written: list[Path] = field(default_factory=list)
    run_id: int | None = None  # in the history
    history_error: str | None = None  # why it is not in the history (when asked to store it)
    export_error: ExportError | None = None
    fallback: Path | None = None  # the JSON in the user data dir, when the export failed
    fallback_error: str | None = None
    warnings: list[str] = field(default_factory=list)  # from opening the history

    def kept_in(self) -> str:
        """Where the results are when the export failed, for the error message."""
        places = [str(p) for p in self.written if p.suffix == ".json"]
        if self.run_id is not None:
            places.append(f"run #{self.run_id} in the history (quanttui snapshot --run-id "
                          f"{self.run_id} -o DIR writes its files again)")
        if self.fallback is not None:
            places.append(str(self.fallback))
        return " and ".join(places) if places else "nowhere: " + (
            self.fallback_error or self.history_error or "nothing could be written")


def _fallback_path(stem: str) -> Path:
    folder = data_dir() / "unsaved"
    path, i = folder / f"{stem}.json", 1
    while path.exists():
        i += 1
        path = folder / f"{stem}-{i}.json"
    return path


def save_run(
    results: RunResults,
    out_dir: Path,
    stem: str,
    formats: Sequence[str] = ("json",),
    *,
    svg: Callable[[RunResults], str] | None = None,
    history: bool = True,
) -> Saved:
    """Keep a run: in the history (when `history` and a request was made), then as files.

    Nothing here raises for a full disk or a folder that can't be written: `Saved` says what
    failed, and when the files could not be written the JSON goes to `<user data dir>/unsaved/`.
    """
    saved = Saved()
    if history and not results.records:
        saved.history_error = "no request was made"
    elif history:
        try:
            store = Store()
            saved.warnings = store.warnings
            saved.run_id = store.add(results_dict(results))
        except (HistoryError, OSError) as e:
            saved.history_error = str(e)
    try:
        saved.written = write_snapshot(results, out_dir, stem, formats, svg=svg)
    except ExportError as e:
        saved.export_error = e
        saved.written = e.written
        if not any(p.suffix == ".json" for p in saved.written):
            fallback = _fallback_path(stem)
            try:
                write_atomic(fallback, render_json(results))
                saved.fallback = fallback
            except OSError as e2:
                saved.fallback_error = f"cannot write {fallback}: {e2.strerror or e2}"
    return saved
