"""core.launcher without a UI: names, pinned cores, flags, a start that fails, a stop while loading.
(Real servers started through it: tests/test_tui_models.py and tests/test_tui_exit.py.)"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import psutil
import pytest

from quanttui.config import load_config
from quanttui.core.models.discovery import read_gguf_info
from quanttui.core.models.launcher import LaunchDefaults, Launcher, defaults_from, server_name


def script(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "bin" / "llama-server"
    p.parent.mkdir(exist_ok=True)
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def test_names_are_the_quant_then_the_file(demo_models: dict[str, Path]) -> None:
    info = read_gguf_info(demo_models["Q4_K_M"])
    assert server_name(info, set()) == "Q4_K_M"
    assert server_name(info, {"Q4_K_M"}) == "gemma3-270m-Q4_K_M"
    assert server_name(info, {"Q4_K_M", "gemma3-270m-Q4_K_M"}) == "gemma3-270m-Q4_K_M-2"


def test_plan_states_flags_and_splits_cores(demo_models: dict[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None, {"models.pin_cores": True, "models.launch.threads": 2,
                             "models.launch.ctx_size": 1024,
                             "models.launch.extra_args": ["--no-warmup"]})
    defaults = defaults_from(cfg.models)
    assert defaults == LaunchDefaults(threads=2, ctx_size=1024, extra_args=("--no-warmup",),
                                      pin_cores=True)
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1, 2, 3})
    infos = [read_gguf_info(demo_models[q]) for q in ("Q8_0", "Q4_K_M")]
    todo = Launcher(defaults).plan(infos, taken={"Q8_0"})
    assert [n for n, _ in todo] == ["gemma3-270m-Q8_0", "Q4_K_M"]
    assert [s.cpu_affinity for _, s in todo] == [(0, 1), (2, 3)]
    args = todo[0][1].args(Path("llama-server"), 8080)
    assert args[args.index("-t") + 1] == "2" and args[args.index("-c") + 1] == "1024"
    assert "--fit" in args and args[-1] == "--no-warmup"
    assert "-t 2 -c 1024" in defaults.describe() and "split" in defaults.describe()


async def test_a_start_that_fails_says_why(demo_models: dict[str, Path], tmp_path: Path) -> None:
    fake = script(tmp_path, "echo 'error: unknown model architecture: xyz'\nexit 1\n")
    launcher = Launcher(llama_server=fake)
    (name, spec), = launcher.plan([read_gguf_info(demo_models["Q2_K"])], taken=())
    launch = launcher.start(name, spec)
    assert launch.state == "starting"
    assert not await launcher.wait_ready(launch, timeout=10)
    assert launch.state == "failed" and launch.error is not None
    assert "exited with code 1" in launch.error and "unknown model architecture" in launch.error
    assert launcher.running() == []


async def test_missing_binary_is_a_failed_launch(demo_models: dict[str, Path],
                                                 tmp_path: Path) -> None:
    launcher = Launcher(llama_server=tmp_path / "nowhere" / "llama-server")
    (name, spec), = launcher.plan([read_gguf_info(demo_models["Q2_K"])], taken=())
    launch = launcher.start(name, spec)
    assert launch.state == "failed" and "llama-server" in (launch.error or "")


async def test_stop_while_loading(demo_models: dict[str, Path], tmp_path: Path) -> None:
    fake = script(tmp_path, "exec sleep 60\n")  # never healthy
    launcher = Launcher(llama_server=fake)
    (name, spec), = launcher.plan([read_gguf_info(demo_models["Q2_K"])], taken=())
    launch = launcher.start(name, spec)
    pid = launch.server.pid
    assert pid is not None
    waiting = asyncio.create_task(launcher.wait_ready(launch, timeout=30))
    await asyncio.sleep(0.5)
    assert launch.state == "starting" and launch.elapsed > 0
    launcher.stop_all()
    assert not await asyncio.wait_for(waiting, 10)
    assert launch.state == "stopped" and launch.error is None  # the user's stop, not a failure
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_a_server_that_dies_later_is_marked(demo_models: dict[str, Path],
                                                  tmp_path: Path) -> None:
    """Started fine, then gone (crashed, killed): no longer "running", and the log says why."""
    fake = script(tmp_path, "echo 'ggml_abort: out of memory'\nexec sleep 60\n")
    launcher = Launcher(llama_server=fake)
    (name, spec), = launcher.plan([read_gguf_info(demo_models["Q2_K"])], taken=())
    launch = launcher.start(name, spec)
    launch.state = "ready"  # as if /health had answered
    assert launcher.running() == [launch]
    assert launch.server.proc is not None and launch.server.log_path is not None
    for _ in range(100):  # the "server" has written its line
        if "out of memory" in launch.server.log_path.read_text():
            break
        await asyncio.sleep(0.05)
    launch.server.proc.kill()
    launch.server.proc.wait(5)
    assert launcher.running() == [] and launcher.by_model(spec.model) is None
    assert launch.state == "exited" and "exited with code -9" in (launch.error or "")
    assert "out of memory" in (launch.error or "")
