"""A started server's log: in the user cache dir, masked, removed when quanttui stops a server
that ran well, kept when it failed or ended on its own; its API key in its environment only.
A shell script stands in for llama-server."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from quanttui.core.models.binaries import Tool
from quanttui.core.models.servers import LOG_KEEP_DAYS, LaunchSpec, ManagedServer


def stand_in(tmp_path: Path, body: str) -> Tool:
    p = tmp_path / "bin" / "llama-server"
    p.parent.mkdir(exist_ok=True)
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return Tool("llama-server", p, "test")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QUANTTUI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "logs"


def server(tmp_path: Path, body: str, **spec: object) -> ManagedServer:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    s = ManagedServer(LaunchSpec(model=model, **spec), name="S",  # type: ignore[arg-type]
                      binary=stand_in(tmp_path, body))
    s.start()
    return s


def test_clean_stop_removes_the_log(tmp_path: Path, cache: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMA_API_KEY", "inherited")  # not passed on: the client can't know it
    s = server(tmp_path, 'echo "key=[$LLAMA_API_KEY] args=[$*]"\nexec sleep 60\n',
               extra_args=("--api-key", "sk-flag"))
    assert s.log_path is not None and s.log_path.parent == cache
    deadline = time.monotonic() + 10
    while "key=" not in s.log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    command, printed = s.log_path.read_text().splitlines()[:2]
    # the flag's key moved to the environment: off the command line, the logged one too
    assert "--api-key" not in command and "sk-flag" not in command
    assert printed.startswith("key=[sk-flag] args=[") and "sk-flag" not in printed[13:]
    assert s.spec.client_key == "sk-flag"
    s.stop()
    assert not s.log_path.exists() and list(cache.iterdir()) == []


def test_key_in_the_environment_and_log_kept_on_failure(tmp_path: Path, cache: Path) -> None:
    s = server(tmp_path, 'echo "key=[$LLAMA_API_KEY] args=[$*]"\nexit 3\n', api_key="sk-cfg")
    assert s.proc is not None and s.log_path is not None
    s.proc.wait(10)
    assert s.exited
    text = s.log_path.read_text()
    assert "key=[sk-cfg]" in text  # the server got it, in its environment
    assert "sk-cfg" not in text.replace("key=[sk-cfg]", "")  # and nowhere on its command line
    s.stop()
    assert s.log_path.exists()  # ended on its own: kept, with what it printed of the key masked
    assert "key=[***]" in s.log_path.read_text() and "sk-cfg" not in s.log_path.read_text()


def test_keep_log_and_pruning(tmp_path: Path, cache: Path) -> None:
    s = server(tmp_path, "exec sleep 60\n")
    s.keep_log = True  # e.g. a request to it failed
    s.stop()
    assert s.log_path is not None and s.log_path.exists()
    old = s.log_path
    past = time.time() - (LOG_KEEP_DAYS + 1) * 86400
    os.utime(old, (past, past))
    server(tmp_path, "exec sleep 60\n").stop()  # the next start prunes old logs
    assert not old.exists()


def test_a_directory_as_model_says_so(tmp_path: Path, cache: Path) -> None:
    from quanttui.core.models.servers import ServerStartError

    with pytest.raises(ServerStartError, match="is a directory, not a GGUF file"):
        ManagedServer(LaunchSpec(model=tmp_path), name="D").start()
