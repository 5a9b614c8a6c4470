"""The TUI's flows, driven with Pilot against the real core (sessions, clients, probes) and fake
or real llama-servers: select servers, run a prompt, stop, switch schedule, snapshot, failures,
the command palette, themes, hardware, and the CLI's routing into the app."""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.widgets._footer import FooterKey

from quanttui.config import Config, load_config
from quanttui.core.hardware import (
    NA,
    GpuSample,
    HostSample,
    HwSample,
    ModelPages,
    ProcessSample,
)
from quanttui.core.models.servers import ManagedServer
from quanttui.core.run.plan import ServerSpec
from quanttui.testing.fake_server import FakeLlamaServer, Fault
from quanttui.tui.app import QuantTUI, build_app
from quanttui.tui.messages import HardwareSampled
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.screens.servers import ServersScreen

SIZE = (80, 24)


@pytest.fixture
def pair() -> Iterator[tuple[FakeLlamaServer, FakeLlamaServer]]:
    with FakeLlamaServer(token_delay=0.002) as a, \
            FakeLlamaServer(token_delay=0.003, model="fake-Q8_0.gguf", ftype="Q8_0") as b:
        yield a, b


def config(tmp_path: Path, **over: Any) -> Config:
    base: dict[str, Any] = {"generation.n_predict": 12, "run.warmup": 0,
                            "run.export_dir": str(tmp_path / "exports")}
    base.update(over)
    return load_config(None, base)


def app_for(cfg: Config, *servers: tuple[str, str], selected: list[str] | None = None,
            **kw: Any) -> QuantTUI:
    registry = ServerRegistry.from_config(cfg, [ServerSpec(n, u) for n, u in servers],
                                          selected=selected)
    return build_app(cfg, registry, animations=False, **kw)


async def until(pilot: Pilot[Any], cond: Callable[[], bool], timeout: float = 30.0,
                show: Callable[[], object] | None = None) -> None:
    """Until `cond()`, looked at every 50 ms, for at most `timeout` s: a state, never a time
    window (a loaded machine can be slow to reach it, and a time window is sometimes missed).
    On timeout: the condition, where it is written, and `show()`, what it looks at."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            code = getattr(cond, "__code__", None)
            where = f" at {Path(code.co_filename).name}:{code.co_firstlineno}" if code else ""
            try:
                text = " ".join(inspect.getsource(cond).split())[:300]
            except (OSError, TypeError):
                text = repr(cond)
            seen = f"; it shows {show()!r}" if show is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {text}{where}"
                                 f"{seen}")
        await pilot.pause(0.05)


def toasts(app: QuantTUI) -> list[str]:
    return [f"{n.title}: {n.message}" for n in app._notifications]


def said(app: QuantTUI) -> list[str]:
    """The notices log (what the compare screen's log line and `n` show)."""
    return [f"{e.title}: {e.text}" for e in app.run_state.notices]


async def probed(pilot: Pilot[Any], app: QuantTUI) -> None:
    await until(pilot, lambda: all(e.health not in ("unknown", "checking")
                                   for e in app.registry.entries.values()))


async def run_prompt(pilot: Pilot[Any], app: QuantTUI, text: str, timeout: float = 60) -> None:
    before = app.results
    await pilot.press("slash")
    await pilot.press(*text)
    await pilot.press("enter")
    await until(pilot, lambda: app.results is not before and not app.running, timeout)
    await until(pilot, lambda: ended(app), timeout, show=lambda: status(app))


def status(app: QuantTUI) -> str:
    return str(app.compare.query_one("#status").render())


def paired(app: QuantTUI) -> str:
    return str(app.compare.query_one("#paired").render())


def ended(app: QuantTUI) -> bool:
    """The run's last frame is drawn: the status line says how it ended."""
    line = status(app)
    return "✓ done " in line or "■ stopped at " in line


# ---------------------------------------------------------------------- flows


async def test_select_servers(pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path
                              ) -> None:
    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url), ("C", "http://127.0.0.1:9"),
                  selected=["A"])
    async with app.run_test(size=SIZE) as pilot:
        assert list(app.compare.columns) == ["A"]
        await pilot.press("s")
        assert isinstance(app.screen, ServersScreen)
        await probed(pilot, app)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 3
        assert app.registry.entries["A"].info.model_ftype == "Q4_K - Medium"
        assert app.registry.entries["B"].info.model_path == "/models/fake-Q8_0.gguf"
        assert app.registry.entries["C"].health == "down" and app.registry.entries["C"].error
        await pilot.press("down", "space")  # B, by keyboard
        assert app.registry.selected == ["A", "B"]
        await pilot.click(DataTable, offset=(2, 3))  # C's row, by mouse: highlight,
        await pilot.click(DataTable, offset=(2, 3))  # and select
        await until(pilot, lambda: app.registry.selected == ["A", "B", "C"],
                    show=lambda: app.registry.selected)
        await pilot.press("space")  # and off again
        assert app.registry.selected == ["A", "B"]
        detail = str(app.screen.query_one("#server-detail").render())
        assert "C" in detail and "127.0.0.1:9" in detail
        # a typed URL is probed and selected
        await pilot.press("a")
        await pilot.press(*a.url.removeprefix("http://").replace("127.0.0.1", "localhost"))
        await pilot.press("enter")
        name = a.url.removeprefix("http://").replace("127.0.0.1", "localhost")
        # listed at once, selected once its probe has answered (after its health is set)
        await until(pilot, lambda: name in app.registry.entries
                    and app.registry.entries[name].health == "ok"
                    and app.registry.selected[-1:] == [name],
                    show=lambda: (app.registry.selected,
                                  {n: e.health for n, e in app.registry.entries.items()}))
        await pilot.press("d")  # remove it again
        await until(pilot, lambda: name not in app.registry.entries
                    and name not in app.registry.selected, show=lambda: app.registry.selected)
        await pilot.press("escape")
        # back, the columns those of the selection
        await until(pilot, lambda: app.screen is app.compare
                    and list(app.compare.columns) == ["A", "B"],
                    show=lambda: (app.screen, list(app.compare.columns)))
        head = app.compare.columns["B"].figures.text().splitlines()[0]
        assert "B" in head and "Q8_0" in head


async def test_run_a_typed_prompt(pair: tuple[FakeLlamaServer, FakeLlamaServer],
                                  tmp_path: Path) -> None:
    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await probed(pilot, app)
        await run_prompt(pilot, app, "Hello there")
        res = app.results
        assert res is not None and not res.interrupted
        recs = {r.server: r for r in res.measured()}
        assert set(recs) == {"A", "B"} and all(r.ok for r in recs.values())
        assert [r["body"]["prompt"] for r in a.requests if r["path"] == "/completion"] == [
            "Hello there"]
        for name, col in app.compare.columns.items():
            assert col.output.text == recs[name].text  # streamed, then redrawn per token
            assert "identical" in str(col.output.border_title)
            stats = col.figures.text().splitlines()[2]  # header, sparkline, speed
            assert "decode" in stats and "n/a" not in stats
        assert "done 2/2" in status(app)
        assert "same output 1/1" in paired(app)  # drawn in the run's last frame


async def test_run_suite_with_repetitions_shows_paired_difference(
        pair: tuple[FakeLlamaServer, FakeLlamaServer], tmp_path: Path) -> None:
    a, b = pair
    app = app_for(config(tmp_path, **{"generation.n_predict": 6}), ("A", a.url), ("B", b.url))
    # Wide: every figure of the pair line fits on one line whatever its digits (at 80 columns
    # a loaded machine's bursty 6-token decodes, "-3493.6 t/s [-12166.8, +5179.7]", left no
    # room for "same output", which the line then leaves out, as it should).
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("u")  # config → quick
        assert app.run_state.options.suite == "quick" and "quick (6)" in status(app)
        # and said where the eye is, the log line
        assert said(app)[-1] == "prompt suite: r now runs quick (6); u the next"
        assert "quick (6)" in str(app.compare.query_one("#log").render())
        await pilot.press("plus")
        assert app.run_state.options.repetitions == 2 and "×2" in status(app)
        await pilot.press("r")
        await until(pilot, lambda: app.results is not None and not app.running, 60)
        # the run's last frame: the paired line drawn again with the last prompt's figures
        await until(pilot, lambda: ended(app) and "/12" in paired(app), 60,
                    show=lambda: (status(app), paired(app)))
        assert app.results is not None and len(app.results.measured()) == 2 * 6 * 2
        line = paired(app)
        assert "B vs A · decode" in line and "n 6" in line and "same output 12/12" in line
        assert app.compare.columns["A"].figures.rate  # the tok/s sparkline has data


async def test_a_run_that_ends_behind_another_screen_is_drawn_on_return(tmp_path: Path
                                                                         ) -> None:
    """The run ends while the history screen is up: back on the compare screen its last frame
    is drawn (the timer that draws frames stops with the run)."""
    # Each server's first request is held until the history screen is up.
    holds = [Fault("hold", after=3, delay=120, times=1) for _ in range(2)]
    with FakeLlamaServer(token_delay=0.01, fault=holds[0]) as a, \
            FakeLlamaServer(token_delay=0.01, fault=holds[1]) as b:
        app = app_for(config(tmp_path, **{"generation.n_predict": 6}), ("A", a.url),
                      ("B", b.url))
        try:
            async with app.run_test(size=(200, 50)) as pilot:
                await probed(pilot, app)
                await pilot.press("u")  # config → quick (6 prompts)
                await pilot.press("r")
                await until(pilot, lambda: "quick-1" in status(app), 60,
                            show=lambda: status(app))
                await pilot.press("h")
                await until(pilot, lambda: app.screen is not app.compare)
                for h in holds:
                    h.release.set()
                await until(pilot, lambda: app.results is not None and not app.running, 60)
                # stored, past where the run's answer would open on the compare screen
                await until(pilot, lambda: any("stored in the history" in x for x in said(app)))
                assert "same output 6/6" not in paired(app)  # the frame drawn before it ended
                await pilot.press("escape")
                await until(pilot, lambda: app.screen is app.compare,
                            show=lambda: app.screen_stack)
                await until(pilot, lambda: ended(app) and "same output 6/6" in paired(app), 30,
                            show=lambda: (status(app), paired(app)))
        finally:
            for h in holds:
                h.release.set()


async def test_stop_a_run(tmp_path: Path) -> None:
    with FakeLlamaServer(token_delay=0.02) as a, FakeLlamaServer(token_delay=0.02) as b:
        app = app_for(config(tmp_path, **{"generation.n_predict": 2000}), ("A", a.url),
                      ("B", b.url))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            await until(pilot, lambda: app.running)
            col = app.compare.columns["B"]
            await until(pilot, lambda: len(col.output.text) > 20)  # streaming, shown live
            bindings = {b.binding.action for b in app.screen.active_bindings.values()}
            assert "app.stop" in bindings and "app.run_suite" not in bindings
            await pilot.press("x")
            await until(pilot, lambda: not app.running, 30)
            assert app.results is not None and app.results.interrupted
            assert all(r.error_kind == "cancelled" for r in app.results.records)
            # the next refresh tick draws it
            await until(pilot, lambda: "stopped at" in status(app), 30)
            assert "stopped at 2/12" in status(app), status(app)  # the two cancelled ones
            assert any("stopped" in t for t in said(app))
            # still alive and usable: the next run starts
            await pilot.press("r")
            await until(pilot, lambda: app.running)
            await pilot.press("x")
            await until(pilot, lambda: not app.running, 30)


async def test_a_column_waiting_for_its_turn_says_stopped_after_x(tmp_path: Path) -> None:
    """Alternating: B waits while A streams; stopped then, B's column says it was stopped
    before B ran the prompt, not that it is still waiting."""
    with FakeLlamaServer(token_delay=0.02) as a, FakeLlamaServer(token_delay=0.02) as b:
        app = app_for(config(tmp_path, **{"generation.n_predict": 2000}), ("A", a.url),
                      ("B", b.url))
        async with app.run_test(size=SIZE) as pilot:
            await probed(pilot, app)
            while app.run_state.options.schedule != "alternating":
                await pilot.press("t")
            await pilot.press("r")
            col = app.compare.columns["B"]
            await until(pilot, lambda: col.output.text.startswith("waiting for B to run"))
            await pilot.press("x")
            await until(pilot, lambda: not app.running, 30)
            await until(pilot, lambda: col.output.text.startswith("stopped before B ran "), 30)
            assert "waiting" not in col.output.text


async def test_switch_schedule(pair: tuple[FakeLlamaServer, FakeLlamaServer],
                               tmp_path: Path) -> None:
    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        assert "simultaneous" in status(app)
        await pilot.press("t")
        assert app.run_state.options.schedule == "alternating" and "alternating" in status(app)
        await run_prompt(pilot, app, "One at a time")
        assert app.results is not None and app.results.schedule == "alternating"
        recs = sorted(app.results.measured(), key=lambda r: r.started_at)
        first, second = recs
        assert first.result and second.result and first.result.t_done_ns
        assert second.result.t_sent_ns >= first.result.t_done_ns  # not overlapping
        await pilot.press("t", "t")
        assert app.run_state.options.schedule == "simultaneous"


async def test_snapshot_key_writes_svg_and_json(pair: tuple[FakeLlamaServer, FakeLlamaServer],
                                                tmp_path: Path) -> None:
    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await probed(pilot, app)
        await pilot.press("ctrl+s")  # before any run: the servers, no records
        await until(pilot, lambda: any("snapshot saved" in t for t in said(app)))
        await run_prompt(pilot, app, "Snap")
        await pilot.press("slash")  # works from inside the prompt too
        await pilot.press("ctrl+s")
        await until(pilot, lambda: sum("snapshot saved" in t for t in said(app)) == 2)
        out = tmp_path / "exports"
        svgs, jsons = sorted(out.glob("*.svg")), sorted(out.glob("*.json"))
        assert len(svgs) == len(jsons) == 2
        # each said with its path in full, the JSON beside it (two in one second: the second
        # is named "…-2.svg", which sorts before the first)
        saved = [t.split("snapshot saved: ", 1)[1] for t in said(app) if "snapshot saved" in t]
        assert all(t.endswith(".svg and .json") for t in saved), saved
        paths = [Path(t.removesuffix(" and .json")) for t in saved]
        assert paths[0] != paths[1] and sorted(paths) == svgs, (paths, svgs)
        assert all(p.is_absolute() and p.with_suffix(".json") in jsons for p in paths)
        assert "<svg" in paths[-1].read_text() and "quanttui" in paths[-1].read_text()
        first, last = (json.loads(p.with_suffix(".json").read_text()) for p in paths)
        assert first["schema"] == "quanttui.run" and first["records"] == []
        assert [s["name"] for s in first["servers"]] == ["A", "B"]
        assert len(last["records"]) == 2 and last["config"]["generation"]["n_predict"] == 12


async def test_failures_are_logged_and_mark_the_pane(tmp_path: Path) -> None:
    with FakeLlamaServer(token_delay=0.002) as a, FakeLlamaServer(token_delay=0.002) as b:
        b.fault = Fault("drop", after=3)
        app = app_for(config(tmp_path), ("A", a.url), ("B", b.url),
                      ("C", "http://127.0.0.1:9"))
        async with app.run_test(size=SIZE) as pilot:
            await run_prompt(pilot, app, "Fail please")
            # C's probe may answer after the run (refused at once, but on a loaded machine);
            # the failure is logged as the run's last frame is drawn
            await until(pilot, lambda: "C: no answer at http://127.0.0.1:9" in "\n".join(
                said(app)) and "request failed" in "\n".join(said(app)), 30, show=lambda: said(app))
            log = "\n".join(said(app))
            assert "request failed" in log and not toasts(app)  # nothing covers the figures
            # C answers nothing: not selected (or left out of the run), never in it
            assert "C: no answer at http://127.0.0.1:9" in log
            assert app.results is not None and "C" not in app.results.server_names
            assert str(app.compare.query_one("#log").render()).count("notices: n")
            assert app.compare.columns["B"].has_class("-failed")
            assert not app.compare.columns["A"].has_class("-failed")
            assert "✗" in app.compare.columns["B"].output.text  # the error, in the pane
            assert "fail" in app.compare.columns["B"].figures.text().splitlines()[0]
            first = app.results
            assert first is not None and first.records
            await pilot.press("r")  # the app goes on
            await until(pilot, lambda: app.results is not first and not app.running)


async def found_in_palette(pilot: Pilot[Any], app: QuantTUI, command: str) -> None:
    """The palette searches in a worker: Enter before it has found the command picks nothing."""
    def highlighted() -> str:
        if not isinstance(app.screen, CommandPalette):
            return ""
        hits = app.screen.query_one(CommandList)
        if hits.highlighted is None:
            return ""
        return str(hits.get_option_at_index(hits.highlighted).prompt)

    await until(pilot, lambda: command in highlighted(), 30)


async def test_command_palette_and_footer_mouse(pair: tuple[FakeLlamaServer, FakeLlamaServer],
                                                tmp_path: Path) -> None:
    a, b = pair
    app = app_for(config(tmp_path), ("A", a.url), ("B", b.url))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Schedule: sequential")
        await found_in_palette(pilot, app, "Schedule: sequential")
        await pilot.press("enter")
        await until(pilot, lambda: app.run_state.options.schedule == "sequential")
        await pilot.press("ctrl+p")
        await pilot.press(*"Prompt suite: long")
        await found_in_palette(pilot, app, "Prompt suite: long")
        await pilot.press("enter")
        await until(pilot, lambda: app.run_state.options.suite == "long")
        status_text = status(app)
        await pilot.click("#status", offset=(status_text.index("sequential") + 2, 0))
        # a click cycles it
        await until(pilot, lambda: app.run_state.options.schedule == "simultaneous")
        servers_key = next(k for k in app.screen.query(FooterKey) if k.action == "app.servers")
        await pilot.click(servers_key)
        await until(pilot, lambda: isinstance(app.screen, ServersScreen),
                    show=lambda: app.screen)


async def test_themes_from_config_and_palette(tmp_path: Path) -> None:
    app = app_for(config(tmp_path, **{"run.theme": "quanttui-light"}), probe_on_start=False)
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "quanttui-light"
        assert {"quanttui-dark", "quanttui-light", "quanttui-256"} <= set(app.available_themes)
        app.theme = "quanttui-256"
        await until(pilot, lambda: app.current_theme.name == "quanttui-256",
                    show=lambda: app.current_theme.name)
    app = app_for(config(tmp_path, **{"run.theme": "no-such-theme"}), probe_on_start=False)
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "quanttui-dark"
        assert any("no-such-theme" in t for t in toasts(app))


def sample(names: list[str]) -> HwSample:
    host = HostSample(37.5, (30.0, 45.0), (0.5, 0.4, 0.3), 24_000_000_000, 4_200_000_000,
                      19_000_000_000, 0, 0)
    procs = tuple(ProcessSample(n, 1000 + i, 310_000_000 + i * 80_000_000, 60_000_000,
                                200_000_000, 99.0, 4, (0, 1), NA("flags"),
                                NA("GPU sampling is off"), 64_000_000 + i * 10_000_000,
                                ModelPages(230_000_000, False, 0, 237_077_184, (), ()))
                  for i, n in enumerate(names))
    gpus = (GpuSample(0, "NVIDIA H100", 45.0, 12_100_000_000, 80_000_000_000, 60.0, 300.0),)
    return HwSample(1, 0, 1000, host, procs, gpus)


async def test_hardware_samples_fill_the_gauges(tmp_path: Path) -> None:
    app = app_for(config(tmp_path), ("A", "http://127.0.0.1:9"), ("B", "http://127.0.0.1:9/b"),
                  probe_on_start=False)
    async with app.run_test(size=SIZE) as pilot:
        assert "hardware sampling off" in str(app.compare.query_one("#host").render())
        app.post_message(HardwareSampled(sample(["A", "B"])))
        await until(pilot, lambda: "RAM" in str(app.compare.query_one("#host").render()),
                    show=lambda: str(app.compare.query_one("#host").render()))
        host = str(app.compare.query_one("#host").render())
        assert "RAM" in host and "4.2/24.0 GB" in host and "GPU0 NVIDIA H100" in host
        # 80 columns: each server's column is too narrow for every figure: its CPU, then
        # the two memory figures that differ between quants
        mem = app.compare.columns["B"].figures.text().splitlines()[-1]
        assert mem == "CPU 99% priv 74 MB · model 230/237 MB"
        await pilot.resize_terminal(160, 48)
        figures = app.compare.columns["B"].figures
        # drawn again for the width: the figures the 80 columns had no room for
        await until(pilot, lambda: "RSS" in figures.text()
                    and "free" in str(app.compare.query_one("#host").render()),
                    show=lambda: (figures.text(), str(app.compare.query_one("#host").render())))
        mem = figures.text().splitlines()[-1]
        # VRAM n/a: too long
        assert mem == "CPU 99%  private 74 MB  model 230/237 MB ███▉  RSS 390 MB"
        assert "VRAM: GPU sampling is off" in str(figures.tooltip)
        # memory against the reference, and free memory on the host line
        host = str(app.compare.query_one("#host").render())
        assert "free 19.0 GB" in host


async def test_real_poller_reads_our_own_process(tmp_path: Path) -> None:
    import os

    from quanttui.core.hardware import HardwarePoller

    poller = HardwarePoller(interval_s=0.2, gpu=False)
    cfg = config(tmp_path)
    servers = ServerRegistry.from_config(cfg, [ServerSpec("self", "http://127.0.0.1:9",
                                                          pid=os.getpid())])
    app = build_app(cfg, servers, poller=poller, animations=False, probe_on_start=False)
    async with app.run_test(size=SIZE) as pilot:
        state = app.run_state
        await until(pilot, lambda: state.hw is not None and state.hw.process("self") is not None)
        await until(pilot, lambda: app.compare.columns["self"].figures.text().splitlines()[-1]
                    .startswith("private "), 30)
        mem = app.compare.columns["self"].figures.text().splitlines()[-1]
        assert mem.startswith("private ") and " MB" in mem and "model " in mem
    assert not poller.running  # closed with the app


@pytest.mark.real
async def test_real_servers_stream_side_by_side(real_pair: tuple[ManagedServer, ManagedServer],
                                                tmp_path: Path) -> None:
    q4, q8 = real_pair
    cfg = config(tmp_path, **{"generation.n_predict": 24})
    servers = ServerRegistry.from_config(cfg, [ServerSpec(q4.label, q4.url, pid=q4.pid),
                                               ServerSpec(q8.label, q8.url, pid=q8.pid)])
    app = build_app(cfg, servers, animations=False)
    async with app.run_test(size=(160, 48)) as pilot:
        await probed(pilot, app)
        assert app.registry.entries[q4.label].info.model_ftype == "Q4_K - Medium"
        await run_prompt(pilot, app, "The capital of France is", timeout=120)
        res = app.results
        assert res is not None and all(r.ok for r in res.measured())
        for name, col in app.compare.columns.items():
            rec = next(r for r in res.measured() if r.server == name)
            assert col.output.text == rec.text and rec.text
            assert rec.metrics is not None and rec.metrics.decode_tps_client
            assert f"mean {rec.metrics.decode_tps_client:.1f}" in col.figures.text()
        live = app.run_state.live
        assert live is not None
        d = live.exact_diff(("inline-1", 0, False), q8.label)
        assert d is not None and d.n_a and d.n_b  # token-level diff of the real outputs
        title = str(app.compare.columns[q8.label].output.border_title)
        assert ("identical" in title) == (d.first_divergence is None)


# ---------------------------------------------------------------------- CLI, export


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Config, dict[str, Any]]]:
    calls: list[tuple[Config, dict[str, Any]]] = []

    def fake_run_tui(cfg: Config, **kw: Any) -> int:
        calls.append((cfg, kw))
        return 0

    monkeypatch.setattr("quanttui.tui.app.run_tui", fake_run_tui)
    return calls


def test_cli_opens_the_tui(opened: list[tuple[Config, dict[str, Any]]], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    from quanttui.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(main, []).exit_code == 0
    r = runner.invoke(main, ["run", "--server", "A=http://127.0.0.1:1", "--server",
                             "B=http://127.0.0.1:2", "--schedule", "alternating", "-n", "7"])
    assert r.exit_code == 0, r.output
    cfg = opened[-1][0]
    assert [s.name for s in cfg.servers] == ["A", "B"]
    assert cfg.run.schedule == "alternating" and cfg.generation.n_predict == 7
    r = runner.invoke(main, ["run", "--server", "A=http://x:1", "--concurrency", "1,2"])
    assert r.exit_code == 2 and "--headless" in r.output
    assert len(opened) == 2


def test_demo_opens_the_tui_with_both_quants(opened: list[tuple[Config, dict[str, Any]]],
                                             tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from quanttui import demo
    from quanttui.cli import main
    from quanttui.core.models.binaries import Tool

    paths = {}
    for q in ("Q4_K_M", "IQ4_NL"):
        paths[q] = tmp_path / f"m-{q}.gguf"
        paths[q].write_bytes(b"GGUF")
    tool = Tool("llama-server", tmp_path / "llama-server", "test")
    monkeypatch.setattr(demo, "prepare", lambda **kw: demo.DemoModels(tool, paths))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["demo"])
    assert r.exit_code == 0, r.output
    cfg, kw = opened[-1]
    # the source first: the reference the requantized file is compared with
    assert [s.name for s in cfg.servers] == ["m-Q4_K_M", "m-IQ4_NL"]
    assert all(s.model for s in cfg.servers) and kw["llama_server"] == str(tool.path)


async def test_render_svg_of_a_stored_run_inside_a_running_loop() -> None:
    from quanttui.core.reports.run_file import load_run
    from quanttui.tui.export import render_svg

    results = load_run(Path(__file__).parent / "data" / "recorded-run.json")
    svg = await asyncio.to_thread(render_svg, results, (80, 24))  # headless run: in a thread
    assert svg.startswith("<svg") and "Q2_K" in svg  # the servers by their quant
    assert render_svg(results, (100, 30)).startswith("<svg")  # and called from a loop
