"""A ladder started from the TUI (issue 23): marked in the model pane, L; its progress and time
left on the status line; x stops it and keeps what was measured; the verdict in the results
view; the run in the history. Fake servers stand in for llama-server (tui.ladder_run drives the
same core.ladder.runner as `quanttui ladder`, whose real runs tests/test_ladder_real.py covers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gguf import LlamaFileType
from textual.widgets import DataTable

from quanttui.core.quality.step import QualityOptions
from quanttui.core.reports.history import Store
from quanttui.tui.app import QuantTUI, build_app
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.screens.models import ModelsScreen
from quanttui.tui.screens.results import ResultsScreen
from quanttui.tui.screens.servers import ServersScreen
from test_ladder_views_agree import FakeLauncher
from test_models_discovery import write_gguf
from test_tui_flows import config, said, status, until

QUANTS = (("Q8_0", LlamaFileType.MOSTLY_Q8_0, 3000),
          ("Q4_K_M", LlamaFileType.MOSTLY_Q4_K_M, 2000),
          ("Q2_K", LlamaFileType.MOSTLY_Q2_K, 1000))


class PaneLauncher(FakeLauncher):
    """The fake launcher, with what the model pane asks of a launcher."""

    def by_model(self, path: Path) -> None:
        return None


def files(tmp_path: Path) -> Path:
    d = tmp_path / "gguf"
    d.mkdir()
    for q, ft, pad in QUANTS:
        with write_gguf(d / f"tiny-{q}.gguf", file_type=ft).open("ab") as f:
            f.write(b"\0" * pad)
    return d


def ladder_app(tmp_path: Path, **over: Any) -> QuantTUI:
    d = files(tmp_path)
    cfg = config(tmp_path, **{"generation.n_predict": 8, "models.dirs": [str(d)],
                              "models.default_places": False, **over})
    registry = ServerRegistry.from_config(cfg, [])
    registry.launcher = PaneLauncher()  # type: ignore[assignment]
    app = build_app(cfg, registry, animations=False, probe_on_start=False)
    app.ladder.quality = QualityOptions(distribution=False, tasks=False)
    return app


async def mark_all_and_ladder(pilot: Any, app: QuantTUI) -> None:
    await until(pilot, lambda: isinstance(app.screen, ServersScreen))
    await pilot.press("l")
    await until(pilot, lambda: isinstance(app.screen, ModelsScreen)
                and app.screen.result is not None)
    pane = app.screen
    assert isinstance(pane, ModelsScreen) and pane.result is not None
    table = pane.query_one(DataTable)
    for m in pane.result.models:
        table.move_cursor(row=table.get_row_index(str(m.path)))
        await pilot.press("space")
    assert len(pane.marked) == 3
    await pilot.press("L")


async def test_a_ladder_from_the_model_pane_runs_to_its_verdict_and_is_stored(
        tmp_path: Path) -> None:
    app = ladder_app(tmp_path)
    seen: list[str] = []
    streamed: list[bool] = []
    async with app.run_test(size=(120, 36)) as pilot:
        # What the screen showed while the ladder ran, looked at each time the status line is
        # drawn (the pilot's key press may return only once the app is idle: after the ladder)
        draw = app.compare.draw_status

        def looking() -> None:
            draw()
            seen.append(status(app))
            live = app.run_state.live
            # each pass streams on the compare screen as a run does: its servers as columns,
            # the fakes' words arriving in both
            streamed.append(live is not None and app.run_state.ladder is not None
                            and set(app.compare.columns) == set(live.servers)
                            and all(" fox" in c.output.text or " jumps" in c.output.text
                                    for c in app.compare.columns.values()))
        app.compare.draw_status = looking  # type: ignore[method-assign]
        await mark_all_and_ladder(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                    and app.screen.model is not None, 120)
        # the status line said where the ladder was, with the time left, and x to stop it
        assert any("ladder" in x and "[pass " in x and " left" in x and "x stops" in x
                   for x in seen), seen[-5:]
        assert any(streamed)
        screen = app.screen
        assert isinstance(screen, ResultsScreen) and screen.model is not None
        verdict = screen.model.verdict
        assert verdict is not None and any(q in verdict for q, _, _ in QUANTS), verdict
        assert app.run_state.ladder is None and not app.ladder.on
    logged = said(app)
    assert any("3 quants, reference Q8_0" in x for x in logged), logged
    stored = [x for x in logged if "stored in the history as #" in x]
    assert stored, logged
    run_id = int(stored[-1].split("#")[1].split()[0])
    doc = Store().get(run_id)
    assert doc["ladder"]["verdict"]["reason"]
    assert {r["name"] for r in doc["ladder"]["rows"]} == {"Q8_0", "Q4_K_M", "Q2_K"}


async def test_x_stops_a_ladder_and_keeps_what_it_measured(tmp_path: Path) -> None:
    app = ladder_app(tmp_path, **{"generation.n_predict": 64})
    async with app.run_test(size=(120, 36)) as pilot:
        await mark_all_and_ladder(pilot, app)
        # once the second pass is under way, stop
        await until(pilot, lambda: "[pass 2/" in status(app), 120)
        await pilot.press("x")
        await until(pilot, lambda: "stopping" in status(app) or app.run_state.ladder is None)
        await until(pilot, lambda: app.run_state.ladder is None, 120)
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen), 60)
        assert app.run_state.live is not None and app.run_state.live.results.interrupted
    assert not app.registry.launcher.fakes  # type: ignore[attr-defined]  # servers stopped


async def test_a_ladder_is_refused_while_a_run_is_on_and_files_that_are_not_one_model(
        tmp_path: Path) -> None:
    from quanttui.tui.messages import StartLadder

    app = ladder_app(tmp_path)
    other = write_gguf(tmp_path / "other-Q4_0.gguf", arch="gemma3", name="Other",
                       file_type=LlamaFileType.MOSTLY_Q4_0)
    async with app.run_test(size=(120, 36)) as pilot:
        app.post_message(StartLadder([tmp_path / "gguf" / "tiny-Q8_0.gguf", other]))
        await until(pilot, lambda: any(x.startswith("ladder:") for x in said(app)))
        assert app.run_state.ladder is None
        app._starting = True  # a run starting: the ladder waits
        app.post_message(StartLadder([tmp_path / "gguf" / "tiny-Q8_0.gguf",
                                      tmp_path / "gguf" / "tiny-Q2_K.gguf"]))
        await until(pilot, lambda: any("x stops it, then L" in x for x in said(app)))
        assert app.run_state.ladder is None


async def test_while_a_ladder_is_on_nothing_else_starts(tmp_path: Path) -> None:
    """A run, the quality step and opening a stored run each wait for a ladder (opening a
    stored run did not: it put another run in the results view under the ladder)."""
    import asyncio

    from quanttui.tui.messages import OpenRun

    app = ladder_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        app.ladder.stop_event = asyncio.Event()  # as while a ladder is on
        app.start_run()
        app.quality_step.start()
        app.post_message(OpenRun(1))
        await until(pilot, lambda: sum("A ladder is on: x stops it" in x for x in said(app)) == 3)
        assert app.run_state.live is None and not isinstance(app.screen, ResultsScreen)


async def test_q_during_a_ladder_stores_what_it_measured(tmp_path: Path) -> None:
    """Leaving mid-ladder (q, as a hang-up or SIGTERM leave): the ladder stops after the
    requests in flight and what it measured goes into the history; no server is left."""
    app = ladder_app(tmp_path, **{"generation.n_predict": 64})
    async with app.run_test(size=(120, 36)) as pilot:
        await mark_all_and_ladder(pilot, app)
        await until(pilot, lambda: "[pass 2/" in status(app), 120)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, 60)
    assert not app.registry.launcher.fakes  # type: ignore[attr-defined]
    rows = Store().list()
    assert len(rows) == 1
    doc = Store().get(rows[0].id)
    assert doc["interrupted"] and doc["ladder"]["rows"]
