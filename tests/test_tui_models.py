"""The model pane: GGUF files found on disk, llama-server started for the chosen ones (real
servers), a file that fails to start shown with its log, the fit check, stop, and no server
left behind when the app ends."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import psutil
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from quanttui.config import Config, load_config
from quanttui.core.models import fit
from quanttui.tui.app import QuantTUI, build_app
from quanttui.tui.registry import ServerRegistry
from quanttui.tui.screens.models import ModelsScreen
from quanttui.tui.screens.servers import ServersScreen
from test_tui_flows import run_prompt, toasts, until


@pytest.fixture
def model_dir(demo_models: dict[str, Path], tmp_path: Path) -> Path:
    d = tmp_path / "gguf"
    d.mkdir()
    for q in ("Q4_K_M", "Q2_K"):
        (d / f"pane-test-{q}.gguf").symlink_to(demo_models[q])
    (d / "notes.gguf").write_text("not a model, just named like one\n")
    return d


def cfg_for(tmp_path: Path, model_dir: Path, **over: Any) -> Config:
    base: dict[str, Any] = {"generation.n_predict": 12, "run.warmup": 0,
                            "run.export_dir": str(tmp_path / "exports"),
                            "models.dirs": [str(model_dir)], "models.default_places": False}
    base.update(over)
    return load_config(None, base)


def app_for(cfg: Config, llama_server: Path | None = None) -> QuantTUI:
    """No server listed: the servers screen opens first."""
    return build_app(cfg, ServerRegistry.from_config(cfg, [], llama_server=llama_server),
                     animations=False)


def rows(screen: ModelsScreen) -> dict[str, list[str]]:
    table = screen.query_one(DataTable)
    return {str(k.value): [str(c) for c in table.get_row(k)] for k in table.rows}


async def open_pane(pilot: Pilot[Any], app: QuantTUI) -> ModelsScreen:
    # No server configured: the servers screen opens first; `l` opens the model pane.
    await until(pilot, lambda: isinstance(app.screen, ServersScreen))
    await pilot.press("l")
    await until(pilot, lambda: isinstance(app.screen, ModelsScreen)
                and app.screen.result is not None)
    assert isinstance(app.screen, ModelsScreen)
    return app.screen


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.real
async def test_start_two_files_compare_and_clean_up(model_dir: Path, tmp_path: Path) -> None:
    app = app_for(cfg_for(tmp_path, model_dir))
    reg, launches = app.registry, app.registry.launcher.launches
    pids: list[int] = []
    async with app.run_test(size=(120, 36)) as pilot:
        pane = await open_pane(pilot, app)
        listed = rows(pane)
        q4, q2 = (str(model_dir / f"pane-test-{q}.gguf") for q in ("Q4_K_M", "Q2_K"))
        # the demo's Q2_K was made from its Q4_K_M: marked (core.models.discovery)
        assert listed[q4][2] == "Q4_K_M" and listed[q2][2] == "Q2_K ‡"
        assert listed[q4][4].endswith("MB") and listed[q4][6] == "gemma3"
        problem = listed[f"problem:{model_dir / 'notes.gguf'}"]
        assert "not a GGUF file" in problem[7]

        # mark both with space, start them with Enter
        table = pane.query_one(DataTable)
        for key in (q4, q2):
            table.move_cursor(row=table.get_row_index(key))
            await pilot.press("space")
        assert pane.marked == {Path(q4), Path(q2)}
        await pilot.press("enter")
        await until(pilot, lambda: len(launches) == 2)
        assert {la.state for la in launches.values()} <= {"starting", "ready"}
        await until(pilot, lambda: all(la.state != "starting"
                                       for la in launches.values()), 180)
        assert all(la.state == "ready" for la in launches.values()), [
            (la.name, la.state, la.error) for la in launches.values()]
        # the larger file first: the reference (A) is the more precise quant
        await until(pilot, lambda: reg.selected == ["Q4_K_M", "Q2_K"])
        pids = [la.server.pid for la in launches.values() if la.server.pid]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        args = reg.entries["Q4_K_M"].spec.launch_args or ()
        # the release, where the server built from the package says "b0-unknown"
        assert not str(reg.entries["Q4_K_M"].info.build_info).startswith("b0")
        assert "--fit" in args and args[args.index("-t") + 1] == "1"  # the stated flags
        await until(pilot, lambda: rows(pane)[q4][7].startswith("● Q4_K_M :"))
        assert any("server started" in t for t in toasts(app))

        # back to the comparison: both stream a prompt
        await pilot.press("escape")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is app.compare)
        await until(pilot, lambda: all(reg.entries[n].health == "ok" for n in reg.selected))
        await run_prompt(pilot, app, "The capital of France is", timeout=120)
        assert app.results is not None
        ok = {r.server for r in app.results.measured() if r.ok}
        assert ok == {"Q4_K_M", "Q2_K"}
        # its column's header says so: in words where they fit, the mark where not
        forms = app.compare.columns["Q2_K"].figures.head
        assert "requantized from Q4_K_M" in "".join(t for t, _ in forms[0])
        assert "‡" in "".join(t for t, _ in forms[-1])

        # stop one from the pane: it leaves the list and its process ends
        await pilot.press("s")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, ModelsScreen)
                    and app.screen.result is not None)
        pane = app.screen
        table = pane.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(q2))
        q2_pid = launches["Q2_K"].server.pid
        assert q2_pid is not None
        await pilot.press("x")
        await until(pilot, lambda: "Q2_K" not in reg.entries and reg.selected == ["Q4_K_M"])
        await until(pilot, lambda: not alive(q2_pid))
        assert rows(pane)[q2][7] == ""

        # a server that dies on its own: its row says so, and x takes it off the list
        q4_launch = launches["Q4_K_M"]
        assert q4_launch.server.proc is not None
        q4_launch.server.proc.kill()
        q4_launch.server.proc.wait(10)
        pane.draw()
        await until(pilot, lambda: rows(pane)[q4][7] == "✗ exited")
        table.move_cursor(row=table.get_row_index(q4))
        await pilot.press("x")
        await until(pilot, lambda: "Q4_K_M" not in reg.entries and not reg.selected)
    # the app has ended: nothing it started is running
    assert pids and not any(alive(p) for p in pids)


async def test_a_file_that_fails_to_start_shows_the_log(model_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-server exits while loading: the row says so and the log's last lines are shown."""
    fake = tmp_path / "bin" / "llama-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'llama_model_load: error loading model: tensor "
                    "data is not within the file bounds'\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    app = app_for(cfg_for(tmp_path, model_dir), llama_server=fake)
    async with app.run_test(size=(120, 36)) as pilot:
        pane = await open_pane(pilot, app)
        q4 = str(model_dir / "pane-test-Q4_K_M.gguf")
        table = pane.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(q4))
        await pilot.press("enter")
        await until(pilot, lambda: any(la.state == "failed"
                                       for la in app.registry.launcher.launches.values()))
        await until(pilot, lambda: "failed" in rows(pane)[q4][7])
        messages = " ".join(toasts(app))
        assert "did not start" in messages and "exited with code 1" in messages
        assert "not within the file bounds" in messages  # the log tail, in the toast
        detail = str(pane.query_one("#model-detail").render())
        assert "not within the file bounds" in detail
        assert not app.registry.selected and not app.registry.entries  # nothing half-started


async def test_fit_check_refuses_then_f_starts_anyway(model_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Too little free memory: a refusal with the numbers, nothing started; `f` overrides."""
    real_check = fit.check
    monkeypatch.setattr(fit, "check", lambda models, vram_free=None, ram_available=None:
                        real_check(models, vram_free, ram_available=50_000_000))
    started: list[str] = []
    app = app_for(cfg_for(tmp_path, model_dir))
    async with app.run_test(size=(120, 36)) as pilot:
        pane = await open_pane(pilot, app)
        q4 = str(model_dir / "pane-test-Q4_K_M.gguf")
        table = pane.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(q4))

        def fake_start(todo: list[Any]) -> None:
            started.extend(name for name, _ in todo)

        monkeypatch.setattr(pane, "_start", fake_start)
        await pilot.press("enter")
        await until(pilot, lambda: any("not enough memory" in t for t in toasts(app)))
        refusal = next(t for t in toasts(app) if "not enough memory" in t)
        assert "GB of RAM" in refusal and "0.05 GB is available" in refusal
        assert "Press f to start anyway" in refusal
        assert started == []
        await pilot.press("f")
        assert started == ["Q4_K_M"]


async def test_launch_settings_keys(model_dir: Path, tmp_path: Path) -> None:
    """t, c and p change the flags of the next start, and the pane says them."""
    app = app_for(cfg_for(tmp_path, model_dir))
    async with app.run_test(size=(160, 36)) as pilot:
        pane = await open_pane(pilot, app)
        flags = pane.query_one("#models-flags")
        assert "-t 1 -c 2048" in str(flags.render())
        await pilot.press("t", "c", "c", "p")
        d = app.registry.launcher.defaults
        assert (d.threads, d.ctx_size, d.pin_cores) != (1, 2048, False)
        assert d.ctx_size == 8192 and d.pin_cores
        shown = str(flags.render())
        assert f"-t {d.threads} -c 8192" in shown and "split between the servers" in shown
        assert pane.result is not None
        ((_, spec),) = app.registry.launcher.plan([pane.result.models[0]], taken=())
        assert spec.ctx_size == 8192 and spec.threads == d.threads
