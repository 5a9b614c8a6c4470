"""Run history in SQLite (stdlib sqlite3, WAL) in the user data dir.

Each run is stored whole (its JSON) plus a few columns to list and match runs without
decoding them. The schema version lives in `PRAGMA user_version`; opening a database of an older
version applies the migrations in order, inside one transaction, so every old run still lists.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

DATA_ENV = "QUANTTUI_DATA_DIR"


def default_path() -> Path:
    env = os.environ.get(DATA_ENV)
    base = Path(env) if env else Path(platformdirs.user_data_dir("quanttui"))
    return base / "history.sqlite3"


def _summary_columns(data: dict[str, Any]) -> tuple[str, str, str]:
    """(servers "a, b", quants "Q4_K - Medium, Q8_0", host CPU) derived from a run's JSON."""
    servers = data.get("servers") or []
    names = ", ".join(str(s.get("name")) for s in servers)
    quants = ", ".join(str(s.get("model_ftype") or "?") for s in servers)
    host = (((data.get("hardware") or {}).get("host") or {}).get("cpu_model")) or ""
    return names, quants, str(host)


def _migrate_1_to_2(db: sqlite3.Connection) -> None:
    # v2: columns to list runs without decoding each one, filled from the stored JSON
    db.execute("ALTER TABLE runs ADD COLUMN servers TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN quants TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE runs ADD COLUMN label TEXT")
    rows = db.execute("SELECT id, data FROM runs").fetchall()
    for run_id, raw in rows:
        db.execute("UPDATE runs SET servers = ?, quants = ?, host = ? WHERE id = ?",
                   (*_summary_columns(json.loads(raw)), run_id))


SCHEMA_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    schedule TEXT NOT NULL,
    data TEXT NOT NULL
);
"""
MIGRATIONS = {1: _migrate_1_to_2}
CURRENT = 2


@dataclass(frozen=True)
class RunRow:
    id: int
    created_at: str
    schedule: str
    servers: str
    quants: str
    host: str
    label: str | None


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            with db:  # one transaction: committed at the end, rolled back on error
                yield db

    def _migrate(self) -> None:
        with self._db() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                exists = db.execute("SELECT name FROM sqlite_master WHERE name='runs'").fetchone()
                if not exists:
                    db.execute(SCHEMA_V1)
                version = 1
            if version > CURRENT:
                raise RuntimeError(f"{self.path}: history written by a newer quanttui "
                                   f"(schema {version}, this one knows up to {CURRENT})")
            while version < CURRENT:
                MIGRATIONS[version](db)
                version += 1
            db.execute(f"PRAGMA user_version = {CURRENT}")

    def add(self, data: dict[str, Any], label: str | None = None) -> int:
        servers, quants, host = _summary_columns(data)
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO runs (created_at, schedule, data, servers, quants, host, label) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (data.get("started_at") or "", data.get("schedule") or "", json.dumps(data),
                 servers, quants, host, label))
            return int(cur.lastrowid or 0)

    def list(self, limit: int = 50) -> list[RunRow]:
        with self._db() as db:
            rows = db.execute("SELECT id, created_at, schedule, servers, quants, host, label "
                              "FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [RunRow(*r) for r in rows]

    def get(self, run_id: int) -> dict[str, Any]:
        with self._db() as db:
            row = db.execute("SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        data: dict[str, Any] = json.loads(row[0])
        return data
