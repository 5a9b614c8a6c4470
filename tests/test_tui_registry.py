"""The TUI's server registry without Textual: the list, the selection (A first), adding by URL,
launched servers, removing and stopping, the lock while a run compares, probing; and the shape
that keeps it so (screens never reach into the app)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from quanttui.config import Config, load_config
from quanttui.core.models.launcher import Launch, Launcher
from quanttui.core.models.servers import LaunchSpec, ManagedServer
from quanttui.core.run.plan import ServerSpec
from quanttui.core.run.records import ServerInfo
from quanttui.testing.fake_server import FakeLlamaServer
from quanttui.tui.registry import Refused, ServerEntry, ServerRegistry

TUI = Path(__file__).resolve().parents[1] / "src" / "quanttui" / "tui"


def config() -> Config:
    return load_config(None, {
        "servers[0].name": "A", "servers[0].url": "http://127.0.0.1:8080",
        "servers[1].name": "M", "servers[1].model": "/nowhere/m.gguf",
        "servers[2].name": "B", "servers[2].url": "http://127.0.0.1:8081",
        "models.launch.threads": 3})


def registry(*names: str, selected: list[str] | None = None) -> ServerRegistry:
    return ServerRegistry([ServerEntry(ServerSpec(n, f"http://127.0.0.1:{9000 + i}"))
                           for i, n in enumerate(names)], selected=selected)


def launch(name: str, port: int) -> Launch:
    server = ManagedServer(LaunchSpec(model=Path(f"/models/{name}.gguf")), name=name, port=port)
    server.spawned_args = ["llama-server", "-t", "1"]
    return Launch(name, server.spec.model, server, state="ready")


def test_from_config_lists_the_url_servers_all_selected() -> None:
    reg = ServerRegistry.from_config(config())
    assert list(reg.entries) == ["A", "B"]  # the managed one is launched, then added
    assert reg.selected == ["A", "B"] and reg.letter("A") == "A" and reg.letter("B") == "B"
    assert reg.entries["A"].source == "config" and reg.entries["A"].health == "unknown"
    assert reg.launcher.defaults.threads == 3  # [models.launch]
    reg = ServerRegistry.from_config(config(), [ServerSpec("X", "http://x:1")],
                                     selected=["nope", "X"])
    assert list(reg.entries) == ["X"] and reg.selected == ["X"]


def test_toggle_appends_as_the_last_and_removes() -> None:
    reg = registry("A", "B", "C", selected=["B"])
    assert reg.letter("A") is None and reg.letter("B") == "A"
    reg.toggle("A")
    assert reg.selected == ["B", "A"] and reg.letter("A") == "B"
    reg.toggle("B")
    assert reg.selected == ["A"]
    reg.toggle("nope")
    assert reg.selected == ["A"]
    assert [e.name for e in reg.chosen()] == ["A"]
    assert [(t.name, t.url) for t in reg.targets()] == [("A", "http://127.0.0.1:9000")]


def test_add_url_checks_and_lists_without_selecting() -> None:
    reg = registry("A")
    entry = reg.add_url(" localhost:8080/ ")
    assert entry is not None and entry.name == "localhost:8080"
    assert entry.spec.url == "http://localhost:8080" and entry.source == "added"
    # listed; selected by the app once it answers (a URL that answers nothing never is)
    assert reg.selected == ["A"]
    assert reg.add_url("  ") is None
    with pytest.raises(Refused, match="already in the list") as dup:
        reg.add_url("http://localhost:8080")
    assert dup.value.severity == "warning"
    with pytest.raises(Refused, match="ftp://x") as bad:
        reg.add_url("ftp://x")
    assert bad.value.severity == "error"
    with pytest.raises(Refused):
        reg.add_url("http://x:port")
    assert list(reg.entries) == ["A", "localhost:8080"]


def test_remove_only_what_was_added() -> None:
    reg = registry("A")
    added = reg.add_url("127.0.0.1:7000")
    assert added is not None
    with pytest.raises(Refused, match="Only servers added here"):
        reg.remove("A")
    reg.remove(added.name)
    assert list(reg.entries) == ["A"] and reg.selected == ["A"]


def test_a_frozen_selection_while_a_run_compares_it() -> None:
    reg = registry("A", "B", selected=["A"])
    added = reg.add_url("127.0.0.1:7000")
    assert added is not None
    reg.toggle(added.name)  # it answered
    reg.frozen = True
    with pytest.raises(Refused, match="before changing the servers"):
        reg.toggle("B")
    later = reg.add_url("127.0.0.1:7001")
    assert later is not None and later.name in reg.entries  # listed, not selected
    assert reg.selected == ["A", added.name]
    with pytest.raises(Refused, match="before removing a compared server"):
        reg.remove(added.name)
    reg.remove(later.name)  # not compared: fine
    reg.frozen = False
    reg.toggle("B")
    assert reg.selected == ["A", added.name, "B"]


def test_answering_sorts_the_selection_for_a_run() -> None:
    reg = registry("A", "B", "C", "D", selected=["A", "B", "C"])
    reg.entries["A"].health = "ok"
    reg.entries["B"].health = "down"
    reg.entries["C"].health = "checking"
    reg.entries["D"].health = "ok"  # not selected
    ok, asking, down = reg.answering()
    assert [e.name for e in ok] == ["A"] and [e.name for e in asking] == ["C"]
    assert [e.name for e in down] == ["B"]


def test_launched_servers_join_and_stop() -> None:
    reg = ServerRegistry([], launcher=Launcher())
    la = launch("Q4_K_M", 8091)
    reg.launcher.launches[la.name] = la
    entry = reg.add_launched(la)
    assert entry.source == "launched" and entry.spec.url == "http://127.0.0.1:8091"
    assert entry.spec.launch_args == ("llama-server", "-t", "1")
    assert reg.selected == ["Q4_K_M"]
    reg.frozen = True
    with pytest.raises(Refused, match="before stopping a compared server"):
        reg.stop_launched("Q4_K_M")
    assert la.state == "ready"
    reg.frozen = False
    reg.stop_launched("Q4_K_M")
    assert la.state == "stopped" and not reg.entries and not reg.selected


def test_adopt_shows_a_stored_run() -> None:
    reg = registry("A", "B", selected=["A", "B"])
    reg.adopt([ServerInfo("B", "http://127.0.0.1:9001", model_ftype="Q8_0"),
               ServerInfo("Z", "http://z:1", reachable=False, error="refused")])
    assert reg.selected == ["B", "Z"]
    assert reg.entries["B"].health == "ok" and reg.entries["B"].info.model_ftype == "Q8_0"
    assert reg.entries["Z"].source == "added" and reg.entries["Z"].health == "down"
    assert reg.entries["Z"].error == "refused"


async def test_probe_notes_the_answer_in_the_entry(fake: FakeLlamaServer) -> None:
    reg = ServerRegistry([ServerEntry(ServerSpec("up", fake.url)),
                          ServerEntry(ServerSpec("off", "http://127.0.0.1:9"))])
    assert [e.name for e in reg.to_probe()] == ["up", "off"]
    for entry in reg.to_probe():
        await reg.probe(entry)
    up, off = reg.entries["up"], reg.entries["off"]
    assert up.health == "ok" and up.error is None and up.info.model_ftype
    assert off.health == "down" and off.error and off.checked_at is not None


def test_registry_and_run_state_load_no_textual() -> None:
    code = ("import sys, quanttui.tui.registry, quanttui.tui.state\n"
            "print('textual' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "False"


def test_screens_and_widgets_do_not_import_the_app() -> None:
    """State goes down, messages go up: nothing under screens/ or widgets/ knows the app."""
    offenders = []
    for path in sorted([*TUI.glob("screens/*.py"), *TUI.glob("widgets/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""]
                     if isinstance(node, ast.ImportFrom) else [])
            if any(n == "quanttui.tui.app" or n.startswith("quanttui.tui.app.") for n in names):
                offenders.append(path.name)
        if "QuantTUI" in path.read_text(encoding="utf-8"):
            offenders.append(path.name)
    assert offenders == []
