"""Servers quanttui starts die with it: normal exit, Ctrl+C, SIGTERM, SIGHUP, and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.real


def servers_for(marker: Path) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            if p.info["name"] == "llama-server" and any(
                    str(marker) in a for a in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            pass
    return out


def wait_gone(marker: Path, timeout: float = 15) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in servers_for(marker) if p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.2)
    return servers_for(marker)


@pytest.fixture
def models(demo_models: dict[str, Path], tmp_path: Path) -> list[Path]:
    # links in a folder of the test's own, so its servers can be told apart by command line
    out = []
    for q in ("Q4_K_M", "Q2_K"):
        link = tmp_path / f"exit-test-{q}.gguf"
        link.symlink_to(demo_models[q])
        out.append(link)
    return out


def start(models: list[Path], tmp_path: Path, reps: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "quanttui", "run", "--headless", "--model", str(models[0]),
         "--model", str(models[1]), "-n", "16", "--prompt", "Hello", "-r", str(reps),
         "-o", str(tmp_path / "r.json")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, QUANTTUI_CACHE_DIR=str(tmp_path / "cache")),  # logs of its own
        start_new_session=True)  # signals reach quanttui alone, as from another terminal


def healthy(p: psutil.Process) -> bool:
    args = p.cmdline()
    port = args[args.index("--port") + 1]
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_running(proc: subprocess.Popen[str], marker: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        procs = servers_for(marker)
        if len(procs) == 2 and all(healthy(p) for p in procs):
            return
        time.sleep(0.2)
    raise AssertionError("servers did not start")


def test_normal_exit_stops_servers(models: list[Path], tmp_path: Path) -> None:
    proc = start(models, tmp_path, reps=3)
    seen: set[int] = set()  # both servers seen running, or "gone" proves nothing
    while proc.poll() is None and len(seen) < 2:
        seen |= {p.pid for p in servers_for(tmp_path)}
        time.sleep(0.05)
    out, err = proc.communicate(timeout=120)
    assert len(seen) == 2, err
    assert proc.returncode == 0, err
    assert wait_gone(tmp_path) == []
    assert "results:" in out


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_signal_stops_servers(models: list[Path], tmp_path: Path, sig: signal.Signals) -> None:
    proc = start(models, tmp_path, reps=200)
    wait_running(proc, tmp_path)
    time.sleep(2.0)  # past the warm-up: some requests are measured
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert wait_gone(tmp_path) == [], f"llama-server left running after {sig.name}"
    if sig != signal.SIGKILL:
        assert proc.returncode == 130
        assert (tmp_path / "r.json").exists()  # what was measured is written
