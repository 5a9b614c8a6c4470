"""The run history's migrations are atomic, a damaged row is skipped, a file that is not a
history is a clear error (and the commands that read it print no traceback)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from quanttui.core.reports import history
from quanttui.core.reports.history import CURRENT, SCHEMA_V1, HistoryError, Store
from quanttui.testing.fake_server import FakeLlamaServer

RECORDED = Path(__file__).parent / "data" / "recorded-run.json"


def v1_database(path: Path, rows: list[str]) -> None:
    """A history of schema version 1 (before the summary columns), holding `rows` as data."""
    with sqlite3.connect(path) as db:
        db.execute(SCHEMA_V1)
        for raw in rows:
            db.execute("INSERT INTO runs (created_at, schedule, data) VALUES (?, ?, ?)",
                       ("2025-01-01T00:00:00+00:00", "simultaneous", raw))
        db.execute("PRAGMA user_version = 1")
    sqlite3.connect(path).close()


def state(path: Path) -> tuple[int, list[str]]:
    with sqlite3.connect(path) as db:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        columns = [r[1] for r in db.execute("PRAGMA table_info(runs)")]
    return version, columns


def test_failure_mid_migration_leaves_the_old_version(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    good = RECORDED.read_text()
    path = tmp_path / "h.sqlite3"
    v1_database(path, [good, good])
    calls = 0
    real = history._summary_columns

    def fail_on_second(data: dict[str, Any]) -> tuple[str, str, str]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("injected")
        return real(data)

    monkeypatch.setattr(history, "_summary_columns", fail_on_second)
    with pytest.raises(RuntimeError, match="injected"):
        Store(path)
    # the ALTERs of the failed migration are rolled back with it: still version 1, as it was
    assert state(path) == (1, ["id", "created_at", "schedule", "data"])
    monkeypatch.setattr(history, "_summary_columns", real)
    rows = Store(path).list()
    assert state(path)[0] == CURRENT
    assert [r.servers for r in rows] == ["gemma3-270m-Q8_0, gemma3-270m-Q2_K"] * 2


def test_kill_9_mid_migration_then_the_next_open_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    v1_database(path, [RECORDED.read_text()] * 3)
    # a migration that stops after its first row, until killed
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from quanttui.core.reports import history\n"
        "def hang(data):\n"
        "    print('migrating', flush=True)\n"
        "    time.sleep(60)\n"
        "history._summary_columns = hang\n"
        "history.Store(Path(sys.argv[1]))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "migrating\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert Store(path).list()[0].servers == "gemma3-270m-Q8_0, gemma3-270m-Q2_K"
    assert state(path)[0] == CURRENT


def test_a_damaged_row_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    v1_database(path, [RECORDED.read_text(), '{"servers": [broken', "[1, 2]"])
    store = Store(path)
    assert len(store.warnings) == 2 and "run #2" in store.warnings[0]
    assert "run #3" in store.warnings[1]
    rows = store.list()
    assert [r.id for r in rows] == [3, 2, 1] and rows[2].servers.startswith("gemma3-270m")
    assert store.get(1)["schema"] == "quanttui.run"
    with pytest.raises(HistoryError, match=r"run #2 is damaged"):
        store.get(2)
    assert Store(path).warnings == []  # migrated once: said once


def test_a_database_left_half_migrated_is_repaired(tmp_path: Path) -> None:
    # what quanttui's old migration left after a failure: columns added, version still 1
    path = tmp_path / "h.sqlite3"
    v1_database(path, [RECORDED.read_text()])
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE runs ADD COLUMN servers TEXT NOT NULL DEFAULT ''")
        db.execute("ALTER TABLE runs ADD COLUMN quants TEXT NOT NULL DEFAULT ''")
    sqlite3.connect(path).close()
    assert Store(path).list()[0].quants == "Q8_0, Q2_K - Medium"


@pytest.mark.parametrize("content, says", [
    (b"this is not a database, just some text\n" * 200, "not a quanttui run history"),
    (b"", None),  # an empty file is an empty database: a new history
])
def test_garbage_file(tmp_path: Path, content: bytes, says: str | None) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(content)
    if says is None:
        assert Store(path).list() == []
        return
    with pytest.raises(HistoryError) as ei:
        Store(path)
    assert str(path) in str(ei.value) and says in str(ei.value)
    assert "Move it aside" in str(ei.value)
    assert path.read_bytes() == content  # left as it was


def test_foreign_and_newer_databases(tmp_path: Path) -> None:
    foreign = tmp_path / "other.sqlite3"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    sqlite3.connect(foreign).close()
    with pytest.raises(HistoryError, match=r"other\.sqlite3: an SQLite database, but not a "
                                           r"quanttui run history \(tables: notes\)"):
        Store(foreign)
    assert state(foreign)[0] == 0  # untouched
    newer = tmp_path / "newer.sqlite3"
    Store(newer)
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {CURRENT + 1}")
    sqlite3.connect(newer).close()
    with pytest.raises(HistoryError, match="newer quanttui"):
        Store(newer)


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quanttui", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_commands_on_a_garbage_history_say_so(tmp_path: Path) -> None:
    path = history.default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00garbage" * 1000)
    for args in (["history"], ["compare", "1", "2"], ["snapshot", "--run-id", "1",
                                                     "-o", str(tmp_path)]):
        p = run_cli(args, tmp_path)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr and str(path) in p.stderr, p.stderr
        assert "not a quanttui run history" in p.stderr


def test_damaged_run_in_the_history_says_so(tmp_path: Path) -> None:
    path = history.default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    v1_database(path, [json.dumps(json.loads(RECORDED.read_text())), "{oops"])
    h = run_cli(["history"], tmp_path)
    assert h.returncode == 0 and "warning: run #2 in the history is damaged" in h.stderr
    p = run_cli(["snapshot", "--run-id", "2", "-o", str(tmp_path)], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "run #2 is damaged" in p.stderr
    p = run_cli(["snapshot", "--run-id", "1", "--format", "json", "-o", str(tmp_path)],
                tmp_path)
    assert p.returncode == 0 and (tmp_path / "run-1.json").exists(), p.stderr
    # -o naming a file: that file, the other formats beside it (not a folder of that name)
    p = run_cli(["snapshot", "--run-id", "1", "--format", "json,md", "-o",
                 str(tmp_path / "mine.json")], tmp_path)
    assert p.returncode == 0 and (tmp_path / "mine.json").is_file(), p.stderr
    assert (tmp_path / "mine.md").is_file()


def test_a_run_measured_further_is_updated_in_place(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.sqlite3")
    data = json.loads(RECORDED.read_text())
    run_id = store.add(data, label="before")
    other = store.add(data)
    data["quality"] = {"reference": "x"}
    data["servers"] = data["servers"][:1]
    store.update(run_id, data)
    assert store.get(run_id)["quality"] == {"reference": "x"}
    assert "quality" not in store.get(other)
    row = next(r for r in store.list() if r.id == run_id)
    assert row.label == "before" and "," not in row.servers  # the listing follows the JSON
    with pytest.raises(KeyError):
        store.update(other + 1, data)


def read_only_mounted(folder: Path, args: list[str], cwd: Path
                      ) -> subprocess.CompletedProcess[str]:
    """quanttui `args` with `folder` remounted read-only (a private mount namespace of an
    unprivileged user namespace: the mount is seen by this command only)."""
    if subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no unprivileged mount namespaces here (unshare -rm)")
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && '
              'exec "$@"')
    return subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(folder),
                           sys.executable, "-m", "quanttui", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_a_history_on_a_read_only_file_system_is_read(tmp_path: Path) -> None:
    """A history on a read-only mount (a backup, a read-only volume): listed and rendered;
    opened as usual it was 'unable to open database file' (its WAL index can't be made)."""
    path = history.default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    run_id = Store(path).add(json.loads(RECORDED.read_text()), label="kept")
    out = tmp_path / "out"
    out.mkdir()
    h = read_only_mounted(path.parent, ["history"], tmp_path)
    assert h.returncode == 0 and "Traceback" not in h.stderr, h.stderr
    assert f"\n{run_id:>4}  " in "\n" + h.stdout
    p = read_only_mounted(path.parent, ["snapshot", "--run-id", str(run_id), "--format",
                                        "json", "-o", str(out)], tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads((out / f"run-{run_id}.json").read_text())["records"]
    # storing a run there is refused and said; the run is still written
    with FakeLlamaServer() as fake:
        w = read_only_mounted(path.parent, ["run", "--headless", "--server", f"A={fake.url}",
                                            "--prompt", "hi", "-n", "2", "-o",
                                            str(out / "r.json")], tmp_path)
    assert w.returncode == 0 and "Traceback" not in w.stderr, w.stderr
    assert "run not stored in the history" in w.stderr and "read-only file system" in w.stderr
    assert json.loads((out / "r.json").read_text())["records"]
    assert [r.id for r in Store(path).list()] == [run_id]  # nothing was added
