"""The TUI answers "which quant should I run": the results view after a run, the quality step from
the TUI, every prompt browsable (side by side, jump to the first divergence, columns scrolling
together), servers that answer nothing never blocking a run, the run in the history, snapshots in
the user data dir, and what a narrow screen shows. Driven with Pilot against the real core (the
session, the client, `rows_from_run`, `decide`, `compare_quality`) and fake llama-servers; the
quality step also against real ones, where the teacher forcing is the point.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from quanttui.config import load_config
from quanttui.core.hardware import NA, HostSample, HwSample, ModelPages, ProcessSample
from quanttui.core.llama.client import Timeouts
from quanttui.core.llama.result import CompletionResult
from quanttui.core.models.servers import ManagedServer
from quanttui.core.run.metrics import request_metrics
from quanttui.core.run.plan import ServerSpec
from quanttui.core.run.records import RequestRecord, RunResults, ServerInfo
from quanttui.testing.fake_server import FakeLlamaServer, Fault
from quanttui.tui.app import QuantTUI, build_app
from quanttui.tui.messages import HardwareSampled
from quanttui.tui.registry import PROBE_TIMEOUTS, ServerRegistry
from quanttui.tui.screens.compare import CompareScreen
from quanttui.tui.screens.prompts import PromptsScreen
from quanttui.tui.screens.results import ResultsScreen
from quanttui.tui.widgets.line import FitLine, Line
from quanttui.tui.widgets.stream_view import FIRST
from quanttui.tui.widgets.table import TableView
from test_tui_flows import (
    app_for,
    config,
    ended,
    probed,
    run_prompt,
    said,
    status,
    toasts,
    until,
)

SIZE = (80, 24)


@pytest.fixture
def pair() -> Iterator[tuple[FakeLlamaServer, FakeLlamaServer]]:
    with FakeLlamaServer(token_delay=0.002, model="gemma3-270m-Q8_0.gguf", ftype="Q8_0") as a, \
            FakeLlamaServer(token_delay=0.002, model="gemma3-270m-Q4_K_M.gguf") as b:
        yield a, b


def suite_config(tmp_path: Path, **over: Any) -> Any:
    return config(tmp_path, **{"generation.n_predict": 8, "prompts.suites": ["quick"], **over})


def tables(app: QuantTUI) -> dict[str, str]:
    """The results view's tables as plain text, by title."""
    return {t.table.title: t.plain() for t in app.screen.query(TableView)}


async def run_suite(pilot: Pilot[Any], app: QuantTUI, timeout: float = 60) -> None:
    before = app.results
    await pilot.press("r")
    await until(pilot, lambda: app.results is not before and not app.running, timeout)
    # shown once the run is in the history (a thread): what the tests go on from
    await until(pilot, lambda: isinstance(app.screen, ResultsScreen), 60)


# ---------------------------------------------------------------------- the results view


async def test_results_view_shows_after_a_suite_run(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    a, b = pair
    app = app_for(suite_config(tmp_path), ("gemma3-270m-Q8_0", a.url),
                  ("gemma3-270m-Q4_K_M", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await run_suite(pilot, app)
        # the view builds its model once it is drawn: wait for that, not only for the screen
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                    and app.screen.model is not None)
        screen = app.screen
        assert isinstance(screen, ResultsScreen) and screen.model is not None
        model = screen.model
        assert "6 prompts × 1" in model.heading and "12 requests" in model.heading
        # the verdict from core, and what would make it better
        assert model.verdict is not None and model.verdict.startswith("Run ")
        assert model.hint is not None and "k runs the quality step" in model.hint
        shown = tables(app)
        speed = shown["Speed"]
        # the servers by their quant, the reference first; the paired ratio with its interval
        rows = [line for line in speed.splitlines() if line.startswith(("Q8_0", "Q4_K_M"))]
        assert rows[0].startswith("Q8_0 (ref)") and rows[1].startswith("Q4_K_M")
        assert "×" in rows[1] and "[" in rows[1] and "6/6" in speed
        assert "Memory" in shown and "Quality against Q8_0" in shown
        # 80 columns: nothing cut, the wide table stacked rather than scrolled away
        assert all(t.region.width <= SIZE[0] for t in app.screen.query(TableView))
        await pilot.press("escape")
        assert app.screen is app.compare
        await pilot.press("v")
        assert isinstance(app.screen, ResultsScreen)


async def test_a_typed_prompt_stays_on_the_outputs(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await run_prompt(pilot, app, "Hello")
        # stored in the history: a suite run's results view would have been shown by now
        await until(pilot, lambda: any("history as #" in s for s in said(app)), 60)
        assert app.screen is app.compare  # the results view is one key away: v
        await pilot.press("v")
        assert isinstance(app.screen, ResultsScreen)


async def test_a_typed_prompt_after_a_suite_run_leaves_its_results(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    a, b = pair
    app = app_for(suite_config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await run_suite(pilot, app)
        suite = app.results
        await pilot.press("k")
        await until(pilot, lambda: any("updated with the quality figures" in s
                                       for s in said(app)), 120)
        await until(pilot, lambda: any(k.startswith("Task accuracy") for k in tables(app)), 60)
        verdict = app.screen.model.verdict if isinstance(app.screen, ResultsScreen) else None
        assert verdict is not None
        await pilot.press("escape")
        assert app.screen is app.compare
        await run_prompt(pilot, app, "Hello")
        await until(pilot, lambda: sum("history as #" in s for s in said(app)) == 2, 60)
        # the typed prompt's outputs are on the compare screen, a run of their own
        live = app.run_state.live
        assert live is not None and live.results is not suite
        assert {r.prompt_id for r in live.results.records} == {"inline-1"}
        assert app.screen is app.compare
        # and the suite run's results, quality and verdict with them, are what v shows
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                    and app.screen.model is not None)
        assert isinstance(app.screen, ResultsScreen) and app.screen.model is not None
        assert app.screen.model.verdict == verdict
        assert "6 prompts × 1" in app.screen.model.heading
        assert any(k.startswith("Task accuracy") for k in tables(app))
        # ctrl+s saves the run on the screen beside its picture
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("snapshot saved" in t for t in said(app)))
        saved = json.loads(next((tmp_path / "exports").glob("*.json")).read_text())
        assert saved["quality"]["reference"] == "A"
        # its prompts too, and a prompt picked there brings its outputs back to the compare
        # screen
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, PromptsScreen))
        assert app.screen.query_one(DataTable).row_count == 6
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is app.compare)
        live = app.run_state.live
        assert live is not None and live.results is suite and live.pinned
        assert live.focus is not None
        await until(pilot, lambda: f"{live.focus[0]} " in status(app) and "/6" in status(app))


# ---------------------------------------------------------------------- quality from the TUI


async def test_quality_step_from_the_tui(pair: tuple[FakeLlamaServer, FakeLlamaServer],
                                         tmp_path: Path) -> None:
    a, b = pair
    app = app_for(suite_config(tmp_path), ("A", a.url), ("B", b.url))
    steps: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await run_suite(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        original = app.quality_step.draw_progress

        def spy(force: bool = False) -> None:
            q = app.run_state.quality
            if q is not None:
                steps.append(f"{q.stage} {q.done}/{q.total}")
            original(force)

        app.quality_step.draw_progress = spy  # type: ignore[method-assign]
        await pilot.press("k")
        await until(pilot, lambda: app.run_state.quality is None, 120)
        # the history entry updated (a thread), then the results view redrawn
        await until(pilot, lambda: any("updated with the quality figures" in s
                                       for s in said(app)), 60)
        await until(pilot, lambda: any(k.startswith("Task accuracy") for k in tables(app)), 60)
        results = app.results
        assert results is not None and "quality" in results.extra
        quality = results.extra["quality"]
        assert quality["reference"] == "A" and {x["server"] for x in quality["accuracy"]} == {
            "A", "B"}
        assert any(s.startswith("tasks ") for s in steps)  # progress was drawn
        assert any("quality step done" in s for s in said(app))
        # the figures land in the results view
        assert isinstance(app.screen, ResultsScreen)
        shown = tables(app)
        acc = next(v for k, v in shown.items() if k.startswith("Task accuracy"))
        assert "arithmetic" in acc and "A (ref)" in acc
        # and in the snapshot
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("snapshot saved" in t for t in said(app)))
        saved = json.loads(next((tmp_path / "exports").glob("*.json")).read_text())
        assert saved["quality"]["reference"] == "A"
        # and in the run's history entry, stored before the step ran
        assert any("updated with the quality figures" in s for s in said(app))
    from quanttui.core.reports.history import Store

    rows = Store().list()
    assert len(rows) == 1 and Store().get(rows[0].id)["quality"]["reference"] == "A"


async def test_quality_step_stops_with_x(pair: tuple[FakeLlamaServer, FakeLlamaServer],
                                         tmp_path: Path) -> None:
    a, b = pair
    app = app_for(suite_config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await run_suite(pilot, app)
        for fake in (a, b):  # every scored item now takes a while
            fake.fault = Fault("slow_headers", delay=0.2, paths=("/completion",))
        await pilot.press("k")
        await until(pilot, lambda: (q := app.run_state.quality) is not None
                    and q.stage == "tasks" and q.done > 0, 60)
        app.quality_step.draw_progress(force=True)
        title = str(app.screen.query_one("#results-title").render())
        # the headless run's words: what the count counts
        assert "quality: tasks " in title and " answers (" in title and "× 2 servers)" in title
        await pilot.press("x")
        await until(pilot, lambda: app.run_state.quality is None, 30)
        assert app.results is not None and app.results.extra["quality"]["interrupted"]
        assert any("stopped early" in s for s in said(app))
        # the results view is redrawn after the history entry is updated (a thread)
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                    and app.screen.model is not None
                    and any("stopped early" in n for n in app.screen.model.notes), 60)


# ---------------------------------------------------------------------- browsing prompts


TEXT = ("the river ran past the old mill where the miller kept his sacks of grain and his "
        "two grey cats who slept in the sun all day long while the wheel turned")
WORDS = TEXT.split(" ")


def long_run() -> RunResults:
    """Three prompts with long outputs: the second differs from its 6th word on, the others
    are the same on both servers."""
    servers = [ServerInfo("gemma3-270m-Q8_0", "http://127.0.0.1:8080", model_ftype="Q8_0"),
               ServerInfo("gemma3-270m-Q4_K_M", "http://127.0.0.1:8081",
                          model_ftype="Q4_K - Medium")]
    res = RunResults(servers=servers, schedule="simultaneous", endpoint="completion",
                     repetitions=1, warmup=0, concurrency_levels=(1,), started_at=1.7e9,
                     finished_at=1.7e9 + 30)
    rid = 0
    for k in range(3):
        for s, srv in enumerate(servers):
            pieces = [" " + WORDS[i % len(WORDS)] for i in range(240)]
            if k == 1 and s == 1:
                pieces[5:] = [" " + WORDS[(i * 7) % len(WORDS)] for i in range(5, 240)]
            r = CompletionResult(server=srv.name, endpoint="completion", t_sent_ns=10**12)
            r.t_first_event_ns = 10**12 + 50_000_000
            r.event_times_ns = [r.t_first_event_ns + i * 20_000_000 for i in range(len(pieces))]
            r.event_ntokens = [1] * len(pieces)
            r.event_texts = pieces
            r.token_ids = [sum(map(ord, p)) for p in pieces]
            r.t_done_ns = r.event_times_ns[-1] + 1
            rec = RequestRecord(rid, srv.name, f"long-{k + 1}", "chat", 0, False, 1, k,
                                1.7e9 + k, result=r)
            rec.metrics = request_metrics(r)
            res.records.append(rec)
            rid += 1
    return res


async def shown(pilot: Pilot[Any], app: QuantTUI) -> None:
    """`app.show_results(long_run())` draws the run at the compare screen's next tick: until
    that frame is drawn (the status says the run is done, the columns show its outputs)."""
    def outputs() -> list[str]:  # the columns of now (show_results may make them anew)
        return [c.output.text for c in app.compare.columns.values()]

    await until(pilot, lambda: ended(app) and all(t.startswith(" the river") for t in outputs()),
                30, show=lambda: (status(app), [t[:40] for t in outputs()]))


def stored_app(tmp_path: Path) -> QuantTUI:
    """An app to show a stored run in (its servers listed, nothing probed)."""
    cfg = config(tmp_path)
    specs = [ServerSpec(s.name, s.url) for s in long_run().servers]
    return build_app(cfg, ServerRegistry.from_config(cfg, specs), animations=False,
                     probe_on_start=False)


async def test_browse_prompts_jump_to_the_divergence_and_scroll_together(tmp_path: Path
                                                                         ) -> None:
    app = stored_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        app.show_results(long_run())
        await shown(pilot, app)
        await pilot.press("p")
        assert isinstance(app.screen, PromptsScreen)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 3
        cells = [str(c) for c in table.get_row("long-2")]
        assert "≠ tok 5" in cells and all("." in c for c in cells[2:4])  # t/s per server
        assert [str(c) for c in table.get_row("long-1")].count("same") == 1
        assert table.cursor_row == 2  # on the prompt the columns show: the last one
        await pilot.press("up", "enter")  # long-2: side by side on the compare screen
        cols = list(app.compare.columns.values())
        # each wait below is for what the key leads to (a layout, a scroll), however long
        # a loaded machine takes to draw it
        # the long outputs show their end; the divergence is far above
        await until(pilot, lambda: isinstance(app.screen, CompareScreen)
                    and all(c.output.scroll_y > 10 for c in cols), 30)
        live = app.run_state.live
        assert live is not None and live.pinned and live.focus == ("long-2", 0, False)
        assert "long-2 2/3" in status(app)
        assert all(c.output.first_of_style(FIRST) is not None for c in cols)
        await pilot.press("d")
        line = cols[0].output.line_of_piece(cols[0].output.first_of_style(FIRST) or 0)
        await until(pilot, lambda: [c.output.scroll_y for c in cols] == [max(line - 2, 0)] * 2,
                    30)
        # the user scrolls one output: the other follows to the same line
        cols[1].output.focus()
        await pilot.press("down", "down", "down")
        await until(pilot, lambda: cols[0].output.scroll_y == cols[1].output.scroll_y
                    == max(line - 2, 0) + 3, 30)
        app.set_focus(None)
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "long-3 3/3" in status(app), 30)
        assert live.focus == ("long-3", 0, False)
        await pilot.press("left_square_bracket", "left_square_bracket")
        await until(pilot, lambda: live.focus == ("long-1", 0, False), 30)
        await pilot.press("d")  # nothing differs here: said, nothing moves
        await until(pilot, lambda: any("do not differ" in t for t in toasts(app)), 30)


# ---------------------------------------------------------------------- servers that don't answer


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that takes connections and never answers (a hung server, a wrong service)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def closed_urls(n: int) -> list[str]:
    """Ports nothing listens on (bound, then closed again before the app starts)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in socks]
    for s in socks:
        s.close()
    return urls


async def test_status_says_how_many_servers_answer(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    """Idle, the status line says what the probes found, never "ready" when none answers."""
    a, _ = pair
    closed = closed_urls(2)
    app = app_for(config(tmp_path), ("A", a.url), ("B", closed[0]))
    async with app.run_test(size=SIZE) as pilot:
        await probed(pilot, app)
        await until(pilot, lambda: "1 of 2 servers reachable" in status(app))
        assert "ready" not in status(app)
    app = app_for(config(tmp_path), ("A", closed[0]), ("B", closed[1]))
    async with app.run_test(size=SIZE) as pilot:
        await probed(pilot, app)
        await until(pilot, lambda: "none of 2 servers reachable" in status(app))
    app = app_for(config(tmp_path), ("A", a.url))
    async with app.run_test(size=SIZE) as pilot:
        await probed(pilot, app)
        await until(pilot, lambda: status(app).startswith("● ready"))


async def test_a_url_that_answers_nothing_never_blocks_a_run(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], silent_url: str, tmp_path: Path) -> None:
    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url), ("hung", silent_url))
    # "hung" is still being asked while the run goes and when its column is read: a probe
    # that gave up first (5 s; a loaded machine takes that for the run) would deselect it.
    app.registry.probe_timeouts = Timeouts(connect=2.0, read=300.0, total=600.0)
    async with app.run_test(size=SIZE) as pilot:
        t0 = time.monotonic()
        await pilot.press("r")  # at once: "hung" is still being asked
        await until(pilot, lambda: app.session is not None, 60)
        # waited START_WAIT_S (2 s), not the hung probe's read timeout (300 s here); the bound
        # leaves a loaded machine its time
        assert time.monotonic() - t0 < 60
        await until(pilot, lambda: app.results is not None and not app.running, 60)
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await pilot.press("escape")
        assert app.results is not None and app.results.server_names == ["A", "B"]
        assert any(s.startswith("left out of the run: hung: no answer") for s in said(app))
        assert "not in this run" in app.compare.columns["hung"].output.text
        assert "waiting for" not in app.compare.columns["hung"].output.text
        # typed in: listed, never selected (its probe gives up as a user's would)
        app.registry.probe_timeouts = PROBE_TIMEOUTS
        name = silent_url.removeprefix("http://").replace("127.0.0.1", "localhost")
        await pilot.press("s")
        await pilot.press("a")
        await pilot.press(*name)
        await pilot.press("enter")
        await until(pilot, lambda: app.registry.entries[name].health not in (
            "unknown", "checking"), 60)
        await until(pilot, lambda: any("listed, not selected" in t for t in toasts(app)), 30)
        assert name in app.registry.entries and name not in app.registry.selected
        assert any("listed, not selected" in t for t in toasts(app))


async def test_a_down_server_at_start_is_not_selected(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url), ("gone", "http://127.0.0.1:9"))
    async with app.run_test(size=SIZE) as pilot:
        await probed(pilot, app)
        await until(pilot, lambda: "not selected" in str(app.compare.query_one("#log").render()),
                    30)
        assert app.registry.selected == ["A", "B"] and list(app.compare.columns) == ["A", "B"]
        assert any("gone: no answer at http://127.0.0.1:9" in s for s in said(app))
        assert "not selected" in str(app.compare.query_one("#log").render())


# ---------------------------------------------------------------------- history, export dir


async def test_tui_runs_go_into_the_history(pair: tuple[FakeLlamaServer, FakeLlamaServer],
                                            tmp_path: Path) -> None:
    from quanttui.core.reports.history import Store

    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await run_prompt(pilot, app, "Into the history")
        await until(pilot, lambda: any("history as #" in s for s in said(app)), 60)
    rows = Store().list()
    assert len(rows) == 1 and rows[0].servers == "A, B"
    stored = Store().get(rows[0].id)
    assert stored["config"]["generation"]["n_predict"] == 12 and stored["provenance"]


async def test_the_history_screen_opens_a_stored_run_and_compares_two(tmp_path: Path) -> None:
    from quanttui.core.reports.history import Store
    from quanttui.core.reports.run_file import results_dict
    from quanttui.tui.screens.history import HistoryScreen, RunsCompareScreen

    one = long_run()
    two = long_run()
    del two.records[4:]  # the newer run: two of the three prompts
    first = Store().add(results_dict(one))
    second = Store().add(results_dict(two))
    app = stored_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen))
        table = app.screen.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 2)
        # newest first, with the columns the history keeps
        assert [str(table.get_cell_at((i, 1))) for i in range(2)] == [str(second), str(first)]
        assert str(table.get_cell_at((0, 3))) == "comparison"
        # the older run, opened in the results view
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                    and app.screen.model is not None)
        assert isinstance(app.screen, ResultsScreen) and app.screen.model is not None
        assert "3 prompts × 1" in app.screen.model.heading
        assert app.results is not None and len(app.results.records) == 6
        assert any(f"run #{first} opened" in s for s in said(app))
        # both marked, compared as `quanttui compare` compares them
        await pilot.press("h")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen)
                    and app.screen.query_one(DataTable).row_count == 2)
        await pilot.press("space", "down", "space", "c")
        await until(pilot, lambda: isinstance(app.screen, RunsCompareScreen))
        assert isinstance(app.screen, RunsCompareScreen)
        assert app.screen.text.startswith(f"#{first} → #{second}")
        await pilot.press("escape")
        assert isinstance(app.screen, HistoryScreen)


async def test_snapshot_goes_to_the_user_data_dir_and_says_the_path(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from quanttui.core.dirs import data_dir

    monkeypatch.chdir(tmp_path)  # not where it goes
    a, b = pair
    cfg = load_config(None, {"generation.n_predict": 4, "run.warmup": 0})
    app = app_for(cfg, ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("snapshot saved" in t for t in said(app)))
    out = data_dir() / "exports"
    files = sorted(out.glob("quanttui-*"))
    assert [f.suffix for f in files] == [".json", ".svg"]
    said_ = next(t for t in said(app) if "snapshot saved" in t)
    assert said_.endswith(f"{files[1]} and .json") and str(out).startswith("/")
    assert not (tmp_path / "quanttui-exports").exists()


async def test_snapshot_of_the_results_view_is_whole_and_not_covered(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    """At 80×24 the results view scrolls: ctrl+s saves all of it (to its last line), and says
    so in the title line, not in a toast over the figures."""
    a, b = pair
    app = app_for(suite_config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await run_suite(pilot, app)
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen)
                    and app.screen.model is not None and app.screen.whole_height() > SIZE[1])
        screen = app.screen
        assert isinstance(screen, ResultsScreen) and screen.model is not None
        last = screen.model.answers[-1]
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("snapshot saved" in t for t in said(app)), 60)
        assert not any("snapshot saved" in t for t in toasts(app))
        title = screen.query_one("#results-title", Line).render().plain
        assert title.startswith("Results · saved ") and title.endswith(".svg and .json")
    svg = next((tmp_path / "exports").glob("*.svg")).read_text()
    # the view's last line is in it (Textual writes a space as &#160;)
    assert last.split()[-1] in svg.replace("&#160;", " ")
    height = float(re.search(r'viewBox="0 0 [\d.]+ ([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    assert height > 24 * 24.4 + 40  # taller than the terminal's 24 rows


# ---------------------------------------------------------------------- what the run shows


async def test_status_shows_the_measured_prompt_once_measuring_starts(tmp_path: Path) -> None:
    # Both servers hold the first measured request after 10 tokens until the status has been
    # read: quick-1 is measured for as long as the test needs, not for the ~0.6 s it streams
    # (the status is drawn about once a second; a loaded machine missed that window). The
    # warm-up runs quick-1 too, with 8 tokens: it never reaches the hold.
    hold = Fault("hold", after=10, delay=120)
    with FakeLlamaServer(token_delay=0.02, fault=hold) as a, \
            FakeLlamaServer(token_delay=0.02, fault=hold) as b:
        app = app_for(suite_config(tmp_path, **{"generation.n_predict": 30, "run.warmup": 1}),
                      ("A", a.url), ("B", b.url))
        try:
            async with app.run_test(size=SIZE) as pilot:
                await probed(pilot, app)
                await pilot.press("r")
                # the first measured request streams (nothing finished yet): its prompt is said
                # (the warm-up's status names quick-1 too)
                await until(pilot, lambda: "quick-1" in status(app)
                            and "warm-up" not in status(app), 60)
                line = status(app)
                assert "0/12" in line and "warm-up" not in line and "starting" not in line
                await pilot.press("x")
                await until(pilot, lambda: not app.running, 30)
        finally:
            hold.release.set()


def no_gpu_sample(names: list[str]) -> HwSample:
    host = HostSample(20.0, (20.0, 20.0), (0.1, 0.1, 0.1), 24_000_000_000, 4_000_000_000,
                      19_500_000_000, 0, 0)
    gone = NA("no NVIDIA driver or NVML unusable (NVML: NVML Shared Library Not Found)")
    procs = tuple(ProcessSample(n, 100 + i, 300_000_000, 0, 0, 99.0, 2, (0,), NA("flags"),
                                gone, 80_000_000 - i * 4_000_000,
                                ModelPages(280_000_000 - i * 40_000_000, False, 0,
                                           290_000_000 - i * 40_000_000, (), ()))
                  for i, n in enumerate(names))
    return HwSample(1, 0, 1000, host, procs, gone)


async def test_no_gpu_is_said_once_and_memory_compares(tmp_path: Path) -> None:
    app = stored_app(tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        app.show_results(long_run())
        await shown(pilot, app)
        names = list(app.compare.columns)
        app.post_message(HardwareSampled(no_gpu_sample(names)))
        await until(pilot, lambda: "no GPU" in str(app.compare.query_one("#host").render()), 30)
        host = str(app.compare.query_one("#host").render())
        assert "no GPU" in host and "NVML" not in host and "free 19.5 GB" in host
        for col in app.compare.columns.values():
            assert "VRAM" not in col.figures.text() and "NVML" not in col.figures.text()
            # each server process's CPU, first on its memory line
            assert col.figures.text().splitlines()[-1].startswith("CPU 99%  private ")
        # B's private memory and model pages against A's, in the pair line
        paired = app.compare.query_one("#paired", FitLine).plain()
        assert "memory -44 MB (-12%)" in paired


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_memory_breakdown_as_bars_on_one_scale(tmp_path: Path,
                                                     size: tuple[int, int]) -> None:
    """A run's stored memory: a bar per column under the memory line, on one scale; the
    started server's parts from its log, the attached one's measured figures and 'no log'."""
    from quanttui.core.hardware.breakdown import NO_LOG
    from test_tui_parts import _launched

    run = long_run()
    started, attached = (s.name for s in run.servers)
    run.hardware = {"servers": {
        started: _launched(51 << 20),
        attached: {"private_peak": 80_000_000, "model_pages_peak": 240_000_000,
                   "memory_breakdown": {"why": NO_LOG, "measured": 320_000_000}}}}
    app = stored_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        app.show_results(run)
        await shown(pilot, app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.compare)
        app.compare.draw_hardware(None)
        await until(pilot, lambda: app.compare.has_class("-stacks"))
        # laid out again: the figures a row taller, the bars drawn to their width
        figures = app.compare.columns[started].figures
        await until(pilot, lambda: figures.size.height == (6 if size[1] < 36 else 8)
                    and "▓" in figures.text().splitlines()[-1], 30,
                    show=lambda: (figures.size, figures.text()))
        rows = {n: c.figures.text().splitlines() for n, c in app.compare.columns.items()}
        a, b = rows[started][-1], rows[attached][-1]
        assert "▓" in a and a.split(" MB")[0].endswith(" 389") and "no log" not in a
        assert "no log" in b and "▓" not in b and " 320 MB" in b
        # one scale: the larger total fills the bar, the smaller is shorter in proportion
        bar_a, bar_b = a.split(" 389")[0], b.split(" 320")[0]
        assert 0 < len(bar_b.rstrip()) < len(bar_a.rstrip())
        # a row more for the figures: the sparkline keeps its rows, memory its line
        assert rows[started][-2].startswith(("RAM", "CPU", "private", "priv"))
        assert app.compare.columns[started].figures.size.height == (6 if size[1] < 36 else 8)


async def test_four_columns_at_80_stay_readable(tmp_path: Path) -> None:
    fakes = [FakeLlamaServer(token_delay=0.001, model=f"gemma3-270m-{q}.gguf")
             for q in ("Q8_0", "Q4_K_M", "IQ4_NL", "Q2_K")]
    for f in fakes:
        f.start()
    try:
        app = app_for(config(tmp_path), *[(f"gemma3-270m-{q}", f.url) for q, f in zip(
            ("Q8_0", "Q4_K_M", "IQ4_NL", "Q2_K"), fakes, strict=True)])
        async with app.run_test(size=SIZE) as pilot:
            await probed(pilot, app)
            app.post_message(HardwareSampled(no_gpu_sample(list(app.compare.columns))))
            await run_prompt(pilot, app, "Four at once")
            for name, col in app.compare.columns.items():
                head, *_, speed, ttft, mem = col.figures.text().splitlines()
                assert head.split()[1] == name.removeprefix("gemma3-270m-")  # the quant label
                for line in (head, speed, ttft, mem):
                    assert "…" not in line, (name, line)  # a short form fits
                # too narrow for CPU and memory both: the memory, whole
                assert mem.startswith("model ") and len(mem) <= col.figures.size.width, mem
            paired = app.compare.query_one("#paired", FitLine).plain()
            assert "Q4_K_M vs Q8_0" in paired and "gemma3" not in paired
            assert all(len(line) <= SIZE[0] - 2 and "…" not in line
                       for line in paired.splitlines())
    finally:
        for f in fakes:
            f.stop()


# ---------------------------------------------------------------------- real servers


@pytest.mark.real
async def test_real_quality_step_from_the_tui(real_pair: tuple[ManagedServer, ManagedServer],
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The quality step's teacher forcing against real llama-servers, started with one key:
    same-top-1 and KLD for the Q8_0 server against the Q4_K_M reference, in the results view."""
    from quanttui.core.suites.tasks import builtin_tasks
    from quanttui.tui.quality_run import TuiQuality

    q4, q8 = real_pair
    full = TuiQuality.options

    def options(self: TuiQuality) -> Any:  # a short step: 48 positions, 8 task items
        opts, skipped = full(self)
        return replace(opts, position_budget=48, positions_per_prompt=16,
                       task_items=tuple(builtin_tasks()[:8])), skipped

    monkeypatch.setattr(TuiQuality, "options", options, raising=True)
    cfg = suite_config(tmp_path, **{"generation.n_predict": 16})
    servers = ServerRegistry.from_config(cfg, [ServerSpec(q4.label, q4.url, pid=q4.pid),
                                               ServerSpec(q8.label, q8.url, pid=q8.pid)])
    app = build_app(cfg, servers, animations=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await probed(pilot, app)
        await run_suite(pilot, app, timeout=240)
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await pilot.press("k")
        await until(pilot, lambda: app.run_state.quality is None, 280)
        # the history entry updated (a thread), then the results view redrawn
        await until(pilot, lambda: any("updated with the quality figures" in s
                                       for s in said(app)), 60)
        await until(pilot, lambda: app.screen.model.quality_measured, 60)  # type: ignore[attr-defined]
        quality = app.results.extra["quality"]  # type: ignore[union-attr]
        dist = quality["pairs"][0]["distribution"]
        assert dist["n_positions"] > 0 and 0 < dist["same_top1"]["value"] <= 1
        shown = tables(app)
        q = next(v for k, v in shown.items() if k.startswith("Quality against"))
        row = next(line for line in q.splitlines() if line.startswith("Q8_0"))
        assert "%" in row and "0." in row  # same-top-1 and KLD measured
        assert app.screen.model.quality_measured  # type: ignore[attr-defined]


def test_frames_are_spaced_out_over_the_cpu_budget(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The app keeps its own CPU in budget: each window (BUDGET_S) over TEXT_BUDGET of a core
    spaces the frames one step further (once a second, then every two seconds); one step back
    in each window below 60% of it; in between, it stays."""
    import quanttui.tui.app as tui_app

    cpu = [0.0]
    monkeypatch.setattr(tui_app.time, "process_time", lambda: cpu[0])
    app = stored_app(tmp_path)
    budget, window, steps = tui_app.TEXT_BUDGET, tui_app.BUDGET_S, tui_app.SLOW_FRAMES_S
    assert steps == tuple(sorted(steps)) and steps[0] >= 1.0
    t = 100.0
    assert app._budget_level(t) == 0  # the first call starts a window
    levels = []
    for share in (2.0, 1.1, 1.5, 0.8, 0.5, 0.8, 0.5, 0.5):  # × the budget, window by window
        cpu[0] += share * budget * window
        t += window
        levels.append(app._budget_level(t))
    assert levels == [1, 2, 2, 2, 1, 1, 0, 0]


async def test_keys_typed_over_the_results_and_history_never_stack_a_screen_twice(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    """Seen by hand: on the results view (where / did not type a prompt) the letters of
    "Name three colours." went to the keys (h the history, r, ...) and a second results view
    was pushed over the first: DuplicateIds, a traceback. Every view reached again is brought
    back, not stacked twice; / there types the prompt on the outputs."""
    a, b = pair
    app = app_for(suite_config(tmp_path), ("gemma3-270m-Q8_0", a.url),
                  ("gemma3-270m-Q4_K_M", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await probed(pilot, app)
        await run_suite(pilot, app)
        seen: list[list[str]] = []
        for key in ["h", *"Name three colours", "v", "h", "p", "v", "h", "v", "p", "h"]:
            before = app.results
            await pilot.press(key)
            await pilot.pause()
            # r on the results view runs the suite again: the fakes end it within a key or
            # two and its results show. Wait for that, so that the next keys land where they
            # do on a quiet machine (a slow run took the letters on the compare screen, where
            # s opened the servers and the v at the end meant nothing).
            await until(pilot, lambda: not app.running, 60)
            if app.results is not before:
                await until(pilot, lambda: isinstance(app.screen, ResultsScreen), 60)
            seen.append([type(s).__name__ for s in app.screen_stack])
        # / on the results view types a prompt on the outputs (the results stay, for v)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await pilot.press("slash")
        await until(pilot, lambda: app.screen is app.compare
                    and app.compare.query_one("#prompt").has_focus)
        for stack in seen:
            for kind in ("ResultsScreen", "HistoryScreen", "PromptsScreen"):
                assert stack.count(kind) <= 1, seen
        await pilot.press("escape", "q")  # out of the prompt, then quit
        await until(pilot, lambda: not app.is_running, 30)


async def test_compare_columns_join_cleanly_at_80x24(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    """The line under the server figures runs straight across the column separator (no "┐"),
    and no scrollbar stands beside the separator once a run has filled the columns."""
    a, b = pair
    app = app_for(suite_config(tmp_path, **{"generation.n_predict": 256}), ("A", a.url),
                  ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await run_suite(pilot, app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.compare)
        outs = list(app.screen.query(".col-out"))
        assert len(outs) == 2
        # laid out with the run's text, which overflows: a scrollbar would show now
        await until(pilot, lambda: any(o.max_scroll_y > 0 for o in outs), 30,
                    show=lambda: [(o.max_scroll_y, o.size) for o in outs])
        svg = app.export_screenshot()
        assert all(o.scrollbar_size_vertical == 0 for o in outs)
    assert "┐" not in svg and "▔" in svg
