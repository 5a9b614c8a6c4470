"""The app's DataTable (tui.widgets.data_table) is drawn at its measured widths even when a frame
came between filling it and measuring it: Textual 8's own kept that frame's rendering, the
models pane's names cut to the headers' widths for minutes on a busy machine."""

from __future__ import annotations

import time

from textual.app import App, ComposeResult
from textual.geometry import Region

from quanttui.tui.widgets.data_table import DataTable


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable(id="t", cursor_type="row")


async def test_a_frame_before_the_widths_are_measured_is_not_kept() -> None:
    app = TableApp()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one(DataTable)
        for _ in range(3):  # filled anew, as the models pane is after a rescan or a mark
            table.clear(columns=True)
            table.add_column("", key="mark")
            table.add_column("file", key="file")
            table.add_row("·", "exit-tui-Q4_K_M.gguf", key="a")
            table.add_row("✓", "exit-tui-Q2_K.gguf", key="b")
            table.move_cursor(row=0)
            table.render_lines(Region(0, 0, 80, 3))  # a frame drawn before the table's idle
            deadline = time.monotonic() + 30
            while table._require_update_dimensions:  # until the table has measured them
                assert time.monotonic() < deadline, "the table never measured its columns"
                await pilot.pause(0.02)
            await pilot.pause()
            lines = [s.text for s in table.render_lines(Region(0, 0, 80, 3))]
            assert "exit-tui-Q4_K_M.gguf" in lines[1] and "✓" in lines[2], lines
