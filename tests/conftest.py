"""Fixtures: the fake server, and real llama-server processes serving the demo quants.

Real servers are started once per session with pinned, comparable flags (one thread each on
this 2-core machine, explicit -c, -np 1, --fit off) and always stopped, also when tests fail.
Without llama-server or the demo models the real tests are skipped, unless
QUANTTUI_REQUIRE_REAL=1 (CI sets it), where that is an error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from quanttui.core.models.servers import LaunchSpec, ManagedServer
from quanttui.testing.fake_server import FakeLlamaServer

REQUIRE_REAL = os.environ.get("QUANTTUI_REQUIRE_REAL") == "1"


@pytest.fixture(autouse=True)
def _private_history(tmp_path_factory: pytest.TempPathFactory,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs made by tests go to a history of their own, never the user's."""
    monkeypatch.setenv("QUANTTUI_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture
def fake() -> Iterator[FakeLlamaServer]:
    with FakeLlamaServer() as server:
        yield server


@pytest.fixture(scope="session")
def demo_models() -> dict[str, Path]:
    """Q4_K_M, Q8_0 and Q2_K of the demo model (made by `quanttui demo --prepare`)."""
    from quanttui import demo
    from quanttui.core.models.binaries import ToolNotFound

    try:
        models = demo.prepare(say=lambda m: print(m))
    except (ToolNotFound, demo.DemoError) as e:
        if REQUIRE_REAL:
            pytest.fail(f"real llama-server test bed unavailable: {e}")
        pytest.skip(f"real llama-server test bed unavailable: {e}")
    return dict(models.paths)


def _launch(model: Path, name: str, **kw: object) -> ManagedServer:
    server = ManagedServer(LaunchSpec(model=model, **kw), name=name)  # type: ignore[arg-type]
    server.start()
    return server


@pytest.fixture(scope="session")
def real_pair(demo_models: dict[str, Path]) -> Iterator[tuple[ManagedServer, ManagedServer]]:
    """Q4_K_M and Q8_0 servers, one thread each."""
    servers = [_launch(demo_models["Q4_K_M"], "Q4_K_M"), _launch(demo_models["Q8_0"], "Q8_0")]
    try:
        for s in servers:
            s.wait_ready_sync(120)
        yield servers[0], servers[1]
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def make_server(demo_models: dict[str, Path]) -> Iterator[object]:
    """Start extra real servers inside one test; all are stopped at its end."""
    started: list[ManagedServer] = []

    def make(quant: str, **kw: object) -> ManagedServer:
        s = _launch(demo_models[quant], quant, **kw)
        started.append(s)
        s.wait_ready_sync(120)
        return s

    try:
        yield make
    finally:
        for s in started:
            s.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No orphans: fail loudly if a llama-server started by this test run is still alive."""
    me = psutil.Process()
    left = []
    for p in psutil.process_iter(["name", "cmdline", "ppid"]):
        try:
            if p.info["name"] == "llama-server" and p.info["ppid"] == me.pid:
                left.append(p.pid)
        except psutil.Error:
            pass
    if left:
        print(f"\nORPHAN llama-server processes after the test run: {left}")
        session.exitstatus = 1
