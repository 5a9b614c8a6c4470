"""Starting llama-server: pinning, and failures that must explain themselves."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from quanttui.core.models.launcher import split_cores
from quanttui.core.models.servers import LaunchSpec, ManagedServer, ServerStartError


def test_split_cores() -> None:
    assert split_cores(2, [0, 1]) == [(0,), (1,)]
    assert split_cores(2, [0, 1, 2, 3, 4]) == [(0, 1, 2), (3, 4)]
    assert split_cores(3, [0, 1]) == [(0,), (1,), (0,)]


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError, match=r"model file not found: .*nope\.gguf"):
        ManagedServer(LaunchSpec(model=tmp_path / "nope.gguf"), name="X").start()


@pytest.mark.real
def test_not_a_gguf_fails_with_log_tail(demo_models: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "text.gguf"
    bad.write_text("this is not a model\n" * 100)
    s = ManagedServer(LaunchSpec(model=bad), name="bad", log_dir=tmp_path)
    with pytest.raises(ServerStartError) as ei:
        s.__enter__()
    msg = str(ei.value)
    assert "bad: llama-server exited with code 1" in msg and "text.gguf" in msg
    assert "Last log lines" in msg and "llama-server-" in msg
    assert s.proc is not None and s.proc.poll() is not None


@pytest.mark.real
def test_port_taken(demo_models: dict[str, Path], tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        s = ManagedServer(LaunchSpec(model=demo_models["Q4_K_M"], port=port), name="P",
                          log_dir=tmp_path)
        with pytest.raises(ServerStartError) as ei:
            s.__enter__()
    assert "exited with code" in str(ei.value)
    assert "bind" in str(ei.value).lower() or "port" in str(ei.value).lower()


@pytest.mark.real
def test_pinned_server_runs_on_its_cores(demo_models: dict[str, Path]) -> None:
    with ManagedServer(LaunchSpec(model=demo_models["Q4_K_M"], cpu_affinity=(1,)),
                       name="pinned") as s:
        assert s.pid is not None
        assert psutil.Process(s.pid).cpu_affinity() == [1]
        assert s.log_path is not None and "-t 1" in s.log_path.read_text()
