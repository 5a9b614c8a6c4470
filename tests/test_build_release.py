"""The llama.cpp release a server is, in every face (issue 23: "b0-unknown" in the servers
screen and the JSON, "b11434" in the Markdown)."""

from __future__ import annotations

from pathlib import Path

from quanttui.core.models.binaries import PACKAGE, Tool, llama_cpp_release
from quanttui.core.run.plan import ServerSpec


def test_the_release_is_what_the_server_says_unless_it_cannot() -> None:
    assert llama_cpp_release("b5000-abc123", "11434.0.0") == "b5000-abc123"
    assert llama_cpp_release("b0-unknown", "11434.0.0") == "b11434"
    assert llama_cpp_release(None, "11434.0.0") == "b11434"
    assert llama_cpp_release("b0-unknown", None) == "b0-unknown"  # nothing better known


def test_a_started_servers_release_stands_where_it_says_b0_unknown() -> None:
    info = ServerSpec("A", "http://a", pid=1, release="b11434").info()
    info.update_from({"build_info": "b0-unknown"}, {})
    assert info.build_info == "b11434"
    info = ServerSpec("A", "http://a", pid=1, release="b11434").info()
    info.update_from({"build_info": "b5000-abc123"}, {})  # a server that knows says
    assert info.build_info == "b5000-abc123"
    attached = ServerSpec("B", "http://b").info()  # not started by quanttui: as it says
    attached.update_from({"build_info": "b0-unknown"}, {})
    assert attached.build_info == "b0-unknown"


def test_only_the_packages_binary_has_a_known_release() -> None:
    assert Tool("llama-server", Path("/x/llama-server"), "PATH").release is None
    release = Tool("llama-server", Path("/x/llama-server"), PACKAGE).release
    assert release is None or (release.startswith("b") and release[1:].isdigit())
