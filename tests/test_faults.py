"""The fault matrix: each fault under each schedule, through `quanttui run --headless` as a user
runs it. Real llama-servers where the fault needs one (kill -9 and SIGSTOP while streaming, a
prompt longer than the context, 503 while loading, an API key); the fake for the rest. Every
time: no traceback, every planned request recorded (ok, or failed or skipped with its reason),
and the exit code README.md documents (0 all went well, 1 requests failed).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from quanttui.core.llama.params import GenerationParams
from quanttui.core.models.servers import LaunchSpec, ManagedServer
from quanttui.core.run.plan import RunPlan, ServerSpec
from quanttui.core.run.session import Session
from quanttui.core.suites.prompts import Prompt
from quanttui.testing.fake_server import COMPLETION_PATHS, FakeLlamaServer, Fault

SCHEDULES = ["simultaneous", "alternating", "sequential"]
PROMPTS = ["one", "two", "three", "four"]
EXIT_OK, EXIT_FAILED = 0, 1


def headless(tmp_path: Path, servers: dict[str, str], schedule: str, *args: str,
             prompts: list[str] = PROMPTS, config: str = "") -> tuple[int, dict[str, Any], str]:
    """(exit code, run JSON, stderr) of one headless run; never a traceback."""
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text("[run]\nwarmup = 0\n[prompts]\nsuites = []\n" + config)
    out = tmp_path / f"r-{schedule}.json"
    cmd = [sys.executable, "-m", "quanttui", "--config", str(cfg), "run", "--headless",
           "--schedule", schedule, "-o", str(out), *args]
    for name, url in servers.items():
        cmd += ["--server", f"{name}={url}"]
    for p in prompts:
        cmd += ["--prompt", p]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc.returncode, json.loads(out.read_text()), proc.stderr


def kinds(data: dict[str, Any], server: str) -> list[str | None]:
    """Each of the server's records, in order: None when ok, else its error kind; every
    failed record says why."""
    recs = [r for r in data["records"] if r["server"] == server]
    for r in recs:
        assert r["ok"] or (r["error_kind"] and r["error"] and server in r["error"]), r
    return [None if r["ok"] else r["error_kind"] for r in recs]


# ----------------------------------------------------------------------------- the fake


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeLlamaServer]]:
    faults = {
        "A": None,
        "drop": Fault("drop", after=2),  # connection cut mid-stream: the server is gone
        "stall": Fault("stall", after=2, delay=30),  # stream stops: a timeout
        "http400": Fault("http_error", status=400, error_type="invalid_request_error",
                         message="bad request", paths=COMPLETION_PATHS),
        "errevent": Fault("error_event", after=1, message="Context size has been exceeded."),
        "malformed": Fault("malformed", after=1),
    }
    started = []
    try:
        for name, fault in faults.items():
            f = FakeLlamaServer(token_delay=0.001).start()
            f.fault = fault
            started.append((name, f))
        yield dict(started)
    finally:
        for _, f in started:
            f.stop()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_fake_faults(fakes: dict[str, FakeLlamaServer], tmp_path: Path, schedule: str) -> None:
    code, data, err = headless(tmp_path, {n: f.url for n, f in fakes.items()}, schedule,
                               "-n", "6", "--set", "timeouts.read=1")
    assert code == EXIT_FAILED
    assert len(data["records"]) == 6 * len(PROMPTS)
    assert "24/24 requests" in err
    assert kinds(data, "A") == [None] * 4
    # no answer three times in a row: taken as down, the rest recorded as skipped
    assert kinds(data, "drop") == ["ended-early"] * 3 + ["skipped"]
    assert kinds(data, "stall") == ["timeout"] * 3 + ["skipped"]
    # answers that refuse a request: the server is up, each request fails alone
    assert kinds(data, "http400") == ["http"] * 4
    assert kinds(data, "errevent") == ["stream-error"] * 4
    assert kinds(data, "malformed") == ["malformed"] * 4
    down = {n["server"] for n in data["notices"] if n["code"] == "server-down"}
    assert down == {"drop", "stall"}


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_fake_loading_is_waited_for(tmp_path: Path, schedule: str) -> None:
    with FakeLlamaServer() as a, FakeLlamaServer() as b:
        b.fault = Fault("loading", times=4)  # 503 on its first four requests
        code, data, err = headless(tmp_path, {"A": a.url, "B": b.url}, schedule, "-n", "4")
    assert code == EXIT_OK, err
    assert kinds(data, "B") == [None] * 4
    assert f"B ({b.url}): still loading its model" in err and "ready after" in err


# ----------------------------------------------------------------------------- real servers


def signal_when_streaming(server: ManagedServer, sig: signal.Signals) -> threading.Thread:
    """Send `sig` to the server once a slot has decoded several tokens of a request.

    The slot's count runs ahead of what the client has read (a token is counted before it is
    sent, and the client may be a few events behind on a loaded machine), so the signal waits
    for 8 and the tests ask only that the client kept what it had read: at least one event."""
    assert server.pid is not None

    def watch() -> None:
        deadline = time.monotonic() + 90
        with httpx.Client(timeout=2) as http:
            while time.monotonic() < deadline:
                try:
                    slots = http.get(server.url + "/slots").json()
                except (httpx.HTTPError, ValueError):
                    slots = []
                if any(s.get("is_processing") and (s.get("next_token") or [{}])[0].get(
                        "n_decoded", 0) >= 8 for s in slots):
                    os.kill(server.pid, sig)  # type: ignore[arg-type]
                    return
                time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


STREAMING = ("-n", "24", "--set", "generation.ignore_eos=true")


@pytest.mark.real
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_kill_9_while_streaming(real_pair: tuple[ManagedServer, ManagedServer],
                                make_server: Callable[..., ManagedServer], tmp_path: Path,
                                schedule: str) -> None:
    victim = make_server("Q2_K")
    watcher = signal_when_streaming(victim, signal.SIGKILL)
    code, data, err = headless(tmp_path, {"A": real_pair[0].url, "B": victim.url}, schedule,
                               *STREAMING)
    watcher.join(5)
    assert victim.proc is not None and victim.proc.poll() == -signal.SIGKILL
    assert code == EXIT_FAILED
    assert kinds(data, "A") == [None] * 4  # the other server finished its run
    b = kinds(data, "B")
    assert b[0] == "ended-early" and b[1:] == ["unreachable", "unreachable", "skipped"], b
    cut = next(r for r in data["records"] if r["server"] == "B")
    assert cut["n_events"] >= 1 and cut["text"]  # what streamed before the kill is kept
    assert "8/8 requests" in err


@pytest.mark.real
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_sigstop_while_streaming(real_pair: tuple[ManagedServer, ManagedServer],
                                 make_server: Callable[..., ManagedServer], tmp_path: Path,
                                 schedule: str) -> None:
    victim = make_server("Q2_K")
    watcher = signal_when_streaming(victim, signal.SIGSTOP)
    try:
        code, data, err = headless(tmp_path, {"A": real_pair[0].url, "B": victim.url},
                                   schedule, *STREAMING, "--set", "timeouts.read=1.5")
    finally:
        watcher.join(5)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGCONT)
    assert code == EXIT_FAILED
    assert kinds(data, "A") == [None] * 4
    assert kinds(data, "B") == ["timeout"] * 3 + ["skipped"]
    stalled = next(r for r in data["records"] if r["server"] == "B")
    assert "stream stalled" in stalled["error"] and stalled["n_events"] >= 1
    assert stalled["text"]
    assert "8/8 requests" in err


LONG = "word " * 2500  # more tokens than the servers' 2048 context


@pytest.mark.real
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_prompts_longer_than_the_context(real_pair: tuple[ManagedServer, ManagedServer],
                                         tmp_path: Path, schedule: str) -> None:
    a, b = real_pair
    code, data, err = headless(tmp_path, {"A": a.url, "B": b.url}, schedule, "-n", "4",
                               prompts=["Hello", LONG, LONG + "x", LONG + "y", "Goodbye"])
    assert code == EXIT_FAILED
    for name in ("A", "B"):
        # three refusals in a row, and the server still serves the next prompt
        assert kinds(data, name) == [None, "http", "http", "http", None]
    refused = [r for r in data["records"] if r["error_kind"] == "http"]
    assert all("HTTP 400" in r["error"] and "exceeds the available context size" in r["error"]
               for r in refused)
    assert not [n for n in data["notices"] if n["code"] == "server-down"]
    assert "10/10 requests  6 failed" in err


KEY = "sk-fault-matrix-key"


@pytest.fixture(scope="module")
def keyed_server(demo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[ManagedServer]:
    s = ManagedServer(LaunchSpec(model=demo_models["Q2_K"], api_key=KEY), name="keyed",
                      log_dir=tmp_path_factory.mktemp("logs"))
    s.start()
    try:
        s.wait_ready_sync(120)
        yield s
    finally:
        s.stop()


@pytest.mark.real
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_api_key(real_pair: tuple[ManagedServer, ManagedServer], keyed_server: ManagedServer,
                 tmp_path: Path, schedule: str) -> None:
    a = real_pair[0]
    with_key = f'[[servers]]\nname = "K"\nurl = "{keyed_server.url}"\napi_key = "{KEY}"\n'
    code, data, err = headless(tmp_path, {}, schedule, "-n", "4", prompts=PROMPTS[:2],
                               config=with_key + f'[[servers]]\nname = "A"\nurl = "{a.url}"\n')
    assert code == EXIT_OK, err
    assert kinds(data, "K") == [None, None] and kinds(data, "A") == [None, None]
    # without the key: told why, and the other server runs
    code, data, err = headless(tmp_path, {"K": keyed_server.url, "A": a.url}, schedule,
                               "-n", "4", prompts=PROMPTS[:2])
    assert code == EXIT_FAILED
    assert "HTTP 401" in err and "Invalid API Key" in err
    assert kinds(data, "A") == [None, None] and kinds(data, "K") == []
    assert KEY not in err and KEY not in json.dumps(data)


@pytest.mark.real
def test_real_server_still_loading_is_waited_for(demo_models: dict[str, Path],
                                                 tmp_path: Path) -> None:
    s = ManagedServer(LaunchSpec(model=demo_models["Q2_K"]), name="loading", log_dir=tmp_path)
    s.start()
    try:
        deadline = time.monotonic() + 30
        while True:  # up and answering 503 while it loads
            try:
                if httpx.get(s.url + "/health", timeout=1).status_code == 503:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and s.proc is not None and s.proc.poll() is None
            time.sleep(0.005)
        plan = RunPlan(prompts=(Prompt(id="p", text="Hello"),), warmup=0,
                       params=GenerationParams(n_predict=4))
        res = asyncio.run(Session([ServerSpec("L", s.url)], plan).run())
    finally:
        s.stop()
    assert [r.ok for r in res.records] == [True]
    said = [n["message"] for n in res.notices if n["code"] == "server-loading"]
    assert len(said) == 2 and "still loading" in said[0] and "ready after" in said[1]


def test_ctrl_c_while_hashing_the_model_files_keeps_the_run(tmp_path: Path) -> None:
    """After the requests, provenance hashes the model files (seconds to minutes for large
    ones). A Ctrl+C then skips the hashing; the run is still written and stored, exit 130.
    The model is a 40 GB sparse file: hashing it takes far longer than the test waits."""
    big = tmp_path / "big.gguf"
    with big.open("wb") as f:
        f.truncate(40 << 30)
    cfg = tmp_path / "quanttui.toml"
    cfg.write_text("[run]\nwarmup = 0\n[prompts]\nsuites = []\n")
    out = tmp_path / "r.json"
    with FakeLlamaServer(token_delay=0.001) as a, FakeLlamaServer(token_delay=0.001) as b:
        a.model_path = str(big)
        proc = subprocess.Popen(
            [sys.executable, "-m", "quanttui", "--config", str(cfg), "run", "--headless",
             "--server", f"A={a.url}", "--server", f"B={b.url}", "--prompt", "hi", "-n", "4",
             "-o", str(out)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            assert proc.stderr is not None
            # Each signal once the state it is meant for is seen, not after a guessed time: the
            # first while the model file is being hashed (its file open); once that one has
            # been acted on, more and more until the process has exited: whenever an impatient
            # one lands on the way out, it changes nothing.
            hashing = psutil.Process(proc.pid)
            deadline = time.monotonic() + 60
            while not any(f.path == str(big) for f in hashing.open_files()):
                assert proc.poll() is None and time.monotonic() < deadline, "no hashing seen"
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            seen = ""
            while "stopping: writing what was measured" not in seen:
                line = proc.stderr.readline()
                assert line, seen
                seen += line
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                proc.send_signal(signal.SIGINT)
                time.sleep(0.01)
            stdout, stderr = proc.communicate(timeout=60)
            stderr = seen + stderr
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "Traceback" not in stdout + stderr and "Aborted" not in stderr, stderr
    assert proc.returncode == 130
    assert stderr.count("stopping: writing what was measured") == 1
    data = json.loads(out.read_text())
    assert len(data["records"]) == 2 and all(r["ok"] for r in data["records"])
    assert data["provenance"]["servers"][0]["model_sha256"] is None
    assert "stored in the run history as #" in stdout
