"""Textual's DataTable, drawn again once its column widths are measured.

A DataTable measures its columns on its next idle, after rows are added. A frame drawn before
that (a busy machine, a table rebuilt with `clear()`) renders the rows at the old widths (the
headers' alone, for a new table), and Textual 8 keeps that rendering: its caches don't know the
widths, and nothing else asks for a new one while the table's size stays the same. The models
pane stayed so for minutes with its names cut to "Gemma" and "exit" and no room for a mark.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.widgets import DataTable as _DataTable
from textual.widgets.data_table import RowKey


class DataTable(_DataTable[Any]):
    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        super()._update_dimensions(new_rows)
        self._clear_caches()
        self._update_count += 1  # the row and cell caches are keyed by it
        self.refresh()
