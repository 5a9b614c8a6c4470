"""Fixtures: the fake server, and real llama-server processes serving the demo quants.

Real servers are started once per session with pinned, comparable flags (one thread each on
this 2-core machine, explicit -c, -np 1, --fit off) and always stopped, also when tests fail.
Without llama-server or the demo models the real tests are skipped, unless
QUANTTUI_REQUIRE_REAL=1 (CI sets it), where that is an error.

Every process this session starts carries QUANTTUI_TEST_SESSION in its environment, so the
orphan check at the end finds a llama-server started at any depth (by a quanttui the test
started) and one whose parent died, and never another session's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from quanttui.core.models.servers import LaunchSpec, ManagedServer
from quanttui.testing.fake_server import FakeLlamaServer

REQUIRE_REAL = os.environ.get("QUANTTUI_REQUIRE_REAL") == "1"
SESSION_ENV = "QUANTTUI_TEST_SESSION"


def pytest_sessionstart(session: pytest.Session) -> None:
    os.environ[SESSION_ENV] = f"{os.getpid()}-{time.time_ns()}"


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


def _launch(model: Path, name: str, log_dir: Path, **kw: object) -> ManagedServer:
    """Logs in the test's own folder: a killed server's log is kept, not left in the cache."""
    server = ManagedServer(LaunchSpec(model=model, **kw), name=name,  # type: ignore[arg-type]
                           log_dir=log_dir)
    server.start()
    return server


@pytest.fixture(scope="session")
def real_pair(demo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[ManagedServer, ManagedServer]]:
    """Q4_K_M and Q8_0 servers, one thread each."""
    logs = tmp_path_factory.mktemp("logs")
    servers = [_launch(demo_models["Q4_K_M"], "Q4_K_M", logs),
               _launch(demo_models["Q8_0"], "Q8_0", logs)]
    try:
        for s in servers:
            s.wait_ready_sync(120)
        yield servers[0], servers[1]
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def make_server(demo_models: dict[str, Path], tmp_path: Path) -> Iterator[object]:
    """Start extra real servers inside one test; all are stopped at its end."""
    started: list[ManagedServer] = []

    def make(quant: str, **kw: object) -> ManagedServer:
        s = _launch(demo_models[quant], quant, tmp_path / "logs", **kw)
        started.append(s)
        s.wait_ready_sync(120)
        return s

    try:
        yield make
    finally:
        for s in started:
            s.stop()


def _live_server(p: psutil.Process, mark: str | None) -> bool:
    """A live llama-server (with this session's mark, unless `mark` is None)."""
    try:
        return (p.name() == "llama-server" and p.status() != psutil.STATUS_ZOMBIE
                and (mark is None or p.environ().get(SESSION_ENV) == mark))
    except psutil.Error:
        return False


def session_servers() -> list[int]:
    """Live llama-servers started by this session: children, grandchildren, and orphans
    adopted by init, told apart from other sessions' by the environment mark."""
    mark = os.environ.get(SESSION_ENV, "")
    found = {p.pid for p in psutil.Process().children(recursive=True)
             if _live_server(p, None)}
    found |= {p.pid for p in psutil.process_iter() if _live_server(p, mark)}
    return sorted(found)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No orphans: fail loudly if a llama-server started by this test run is still alive (a
    few seconds' grace for those being stopped)."""
    deadline = time.monotonic() + 5
    while (left := session_servers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    if left:
        print(f"\nORPHAN llama-server processes after the test run: {left}")
        session.exitstatus = 1
