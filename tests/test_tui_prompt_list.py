"""The prompt list (`p`): each prompt's KLD and same-top-1 against the reference where the run
carries a quality section, and a list that fits the screen's width, leaving out whole columns
(least telling first) rather than cutting figures."""

from __future__ import annotations

from typing import Any

import pytest
from textual.widgets import DataTable

from quanttui.tui.results_model import prompt_rows
from quanttui.tui.screens.prompts import PromptsScreen
from test_tui_flows import until
from test_tui_snapshots import compare_app, fixed_results, results_with_quality


def test_prompt_rows_carry_the_quality_sections_figures() -> None:
    rows = {r.prompt_id: r for r in prompt_rows(results_with_quality())}
    assert rows["quick-2"].kld == {"Q4_K_M": 0.0302}
    assert rows["quick-2"].same_top1 == {"Q4_K_M": 0.889}
    assert rows["quick-2"].divergence == {"Q4_K_M": 7} and rows["quick-2"].unit == {
        "Q4_K_M": "tok"}
    assert all(not r.kld and not r.same_top1 for r in prompt_rows(fixed_results()))


async def open_list(pilot: Any, with_quality: bool = True) -> PromptsScreen:
    app = pilot.app
    app.show_results(results_with_quality() if with_quality else fixed_results())
    await pilot.pause()
    await pilot.press("p")
    await until(pilot, lambda: isinstance(app.screen, PromptsScreen)
                and app.screen.query_one(DataTable).row_count == 3)
    screen = app.screen
    assert isinstance(screen, PromptsScreen)
    table = screen.query_one(DataTable)
    await until(pilot, lambda: table.size.width > 0 and not table._require_update_dimensions)
    return screen


def cells(table: DataTable[Any], row: str) -> list[str]:
    return [str(c) for c in table.get_row(row)]


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_the_list_fits_the_width_and_shows_kld_and_top1(size: tuple[int, int]) -> None:
    app = compare_app()
    async with app.run_test(size=size) as pilot:
        screen = await open_list(pilot)
        table = screen.query_one(DataTable)
        titles = [str(c.label) for c in table.columns.values()]
        assert titles[:4] == ["prompt", "output", "KLD", "top-1"]
        assert cells(table, "quick-2")[:4] == ["quick-2", "≠ tok 7", "0.0302", "88.9%"]
        # every column whole on the screen: no horizontal scrolling, no figure cut
        assert table.virtual_size.width <= table.size.width
        for col in table.columns.values():
            assert col.get_render_width(table) >= max(
                [len(str(col.label))] + [len(c) for c in cells_of(table, col.key)])
        if size[0] == 80:
            assert "category" not in titles and "category" in screen.left_out
            assert "Q8_0 t/s" in titles and "Q4_K_M TTFT" in titles
        else:
            assert screen.left_out == [] and titles[-2:] == ["category", "text"]


def cells_of(table: DataTable[Any], key: Any) -> list[str]:
    return [str(table.get_cell(r, key)) for r in table.rows]


async def test_narrowing_the_terminal_drops_columns_and_widening_brings_them_back() -> None:
    app = compare_app()
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_list(pilot, with_quality=False)
        table = screen.query_one(DataTable)
        assert "text" in table.columns and "KLD" not in [
            str(c.label) for c in table.columns.values()]  # no quality step: no column
        await pilot.press("down")  # the cursor stays on its row through a redraw
        row = table.cursor_row
        await pilot.resize_terminal(60, 24)
        await until(pilot, lambda: "text" not in table.columns)
        assert table.cursor_row == row
        await until(pilot, lambda: table.virtual_size.width <= table.size.width)
        await pilot.resize_terminal(160, 48)
        await until(pilot, lambda: "text" in table.columns and not screen.left_out)
