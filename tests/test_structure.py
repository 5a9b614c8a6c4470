"""The shape of the code that users feel: what loads at start, and what the source refers to."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from quanttui.testing.fake_server import FakeLlamaServer

PY = sys.executable
SRC = Path(__file__).resolve().parents[1] / "src" / "quanttui"
HEAVY = ("gguf", "numpy")
# Views opened later and the ladder runner: the TUI's first frame waits for what it imports
LATER = ("quanttui.tui.screens.results", "quanttui.tui.screens.prompts",
         "quanttui.tui.screens.history", "quanttui.tui.screens.models",
         "quanttui.tui.ladder_run", "quanttui.core.ladder.runner")


def _loaded(code: str, cwd: Path, modules: tuple[str, ...] = HEAVY) -> dict[str, bool]:
    """Run `code` in a fresh interpreter, then say which of `modules` it had imported."""
    probe = code + (f"\nimport sys\nprint({{m: m in sys.modules for m in {modules!r}}}, "
                    "flush=True)\n")
    p = subprocess.run([PY, "-c", probe], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert p.returncode == 0, p.stdout + p.stderr
    loaded: dict[str, bool] = eval(p.stdout.strip().splitlines()[-1])  # our own dict literal
    return loaded


def test_cli_import_loads_no_gguf_or_numpy(tmp_path: Path) -> None:
    assert _loaded("import quanttui.cli", tmp_path) == dict.fromkeys(HEAVY, False)


def test_headless_run_on_urls_loads_no_gguf_or_numpy(tmp_path: Path) -> None:
    with FakeLlamaServer() as a, FakeLlamaServer() as b:
        code = (
            "from quanttui.cli import main\n"
            "try:\n"
            f"    main(['run', '--headless', '--server', 'A={a.url}', '--server', 'B={b.url}',"
            f" '-n', '4', '--prompt', 'x', '--format', 'json,md,csv',"
            f" '-o', r'{tmp_path / 'r.json'}'])\n"
            "except SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
        )
        assert _loaded(code, tmp_path) == dict.fromkeys(HEAVY, False)


def test_tui_first_frame_loads_no_gguf_or_numpy(tmp_path: Path) -> None:
    code = (
        "import asyncio\n"
        "from quanttui.config import Config\n"
        "from quanttui.tui.app import build_app\n"
        "async def main():\n"
        "    app = build_app(Config(), probe_on_start=False, animations=False)\n"
        "    async with app.run_test(size=(80, 24)) as pilot:\n"
        "        await pilot.pause()\n"
        "asyncio.run(main())\n"
    )
    assert _loaded(code, tmp_path, HEAVY + LATER) == dict.fromkeys(HEAVY + LATER, False)


def test_reading_a_gguf_file_loads_the_reader(tmp_path: Path) -> None:
    """The other side of the lazy import: reading a header does load gguf (and numpy)."""
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 4)
    code = (
        "from quanttui.core.models.discovery import read_gguf_info, GGUFError\n"
        f"try:\n    read_gguf_info(__import__('pathlib').Path(r'{bad}'))\n"
        "except GGUFError:\n    pass\n"
    )
    assert _loaded(code, tmp_path) == dict.fromkeys(HEAVY, True)


def test_no_source_file_refers_to_documents_outside_the_repository() -> None:
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if "shared/" in p.read_text(encoding="utf-8")]
    assert offenders == []
