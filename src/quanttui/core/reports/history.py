"""Run history in SQLite (stdlib sqlite3, WAL) in the user data dir.

Each run is stored whole (its JSON) plus a few columns to list and match runs without
decoding them. The schema version lives in `PRAGMA user_version`; opening a database of an older
version applies the migrations in order, each in one transaction with the version it reaches
(DDL included: the connection runs in autocommit mode and every transaction is an explicit
BEGIN ... COMMIT), so a failure or a kill half-way leaves the database at the version before.
A stored run whose JSON is broken is skipped by a migration with a warning; a file that is not
a quanttui history is a `HistoryError` naming it and saying what to do. A history on a read-only
file system (a mounted backup, a read-only volume) is opened read-only: listed and read, never
changed.
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

from quanttui.core.dirs import data_dir


class HistoryError(Exception):
    """The history file can't be used; the message names it and says what to do."""


def default_path() -> Path:
    return data_dir() / "history.sqlite3"


def _summary_columns(data: dict[str, Any]) -> tuple[str, str, str]:
    """(servers "a, b", quants "Q4_K - Medium, Q8_0", host CPU) derived from a run's JSON."""
    servers = data.get("servers") or []
    names = ", ".join(str(s.get("name")) for s in servers)
    quants = ", ".join(str(s.get("model_ftype") or "?") for s in servers)
    host = (((data.get("hardware") or {}).get("host") or {}).get("cpu_model")) or ""
    return names, quants, str(host)


def _outcome_columns(data: dict[str, Any]) -> tuple[str, str, str, str]:
    """(kind "ladder" / "comparison" / "single", status "done" / "stopped", quality "yes" /
    "no", verdict: the quant to run, "—" for none, "" when there is nothing to decide) from a
    run's JSON: what `quanttui history` lists beside each run."""
    n = len(data.get("servers") or [])
    kind = "ladder" if data.get("ladder") else "comparison" if n > 1 else "single"
    status = "stopped" if data.get("interrupted") else "done"
    ladder_rows = (data.get("ladder") or {}).get("rows") or []
    measured = data.get("quality") or any(r.get("positions") or r.get("accuracy")
                                          for r in ladder_rows)
    quality = "yes" if measured else "no"
    verdict = ""
    if n > 1:
        try:
            from quanttui.core.ladder.section import run_answer
            from quanttui.core.reports.run_file import results_from_dict

            answer = run_answer(results_from_dict(data))
            verdict = (answer.verdict.recommended or "—") if answer is not None else ""
        except Exception:  # a run the reader can't take is still listed
            verdict = "?"
    return kind, status, quality, verdict


_V3_COLUMNS = ("kind", "status", "quality", "verdict")


def _migrate_1_to_2(db: sqlite3.Connection, warn: list[str]) -> None:
    # v2: columns to list runs without decoding each one, filled from the stored JSON. Columns
    # already there are kept (a database an older quanttui left half-migrated: its ALTERs
    # committed one by one).
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for name, decl in (("servers", "TEXT NOT NULL DEFAULT ''"),
                       ("quants", "TEXT NOT NULL DEFAULT ''"),
                       ("host", "TEXT NOT NULL DEFAULT ''"), ("label", "TEXT")):
        if name not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
    rows = db.execute("SELECT id, data FROM runs").fetchall()
    for run_id, raw in rows:
        try:
            data = json.loads(raw)
            columns = _summary_columns(data)
        except (ValueError, TypeError, AttributeError) as e:
            warn.append(f"run #{run_id} in the history is damaged and lists without its "
                        f"servers ({type(e).__name__}: {e})")
            continue
        db.execute("UPDATE runs SET servers = ?, quants = ?, host = ? WHERE id = ?",
                   (*columns, run_id))


SCHEMA_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    schedule TEXT NOT NULL,
    data TEXT NOT NULL
);
"""
V1_COLUMNS = {"id", "created_at", "schedule", "data"}
def _migrate_2_to_3(db: sqlite3.Connection, warn: list[str]) -> None:
    # v3: what kind of run, how it ended, whether quality was measured, its verdict
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for name in _V3_COLUMNS:
        if name not in have:
            db.execute(f"ALTER TABLE runs ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")
    for run_id, raw in db.execute("SELECT id, data FROM runs").fetchall():
        try:
            columns = _outcome_columns(json.loads(raw))
        except (ValueError, TypeError, AttributeError):
            continue  # damaged: migration 1 → 2 said so; it lists with empty columns
        db.execute("UPDATE runs SET kind = ?, status = ?, quality = ?, verdict = ? WHERE id = ?",
                   (*columns, run_id))


MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}
CURRENT = 3


@dataclass(frozen=True)
class RunRow:
    id: int
    created_at: str
    schedule: str
    servers: str
    quants: str
    host: str
    label: str | None
    kind: str = ""  # ladder, comparison, single
    status: str = ""  # done, stopped
    quality: str = ""  # yes, no
    verdict: str = ""  # the quant to run; "—" none meets the constraints


class Store:
    """The history at `path` (default: the user data dir), migrated when opened. Raises
    HistoryError when the file can't be used; `warnings` says what a migration skipped.
    `read_only` when it is on a read-only file system: reading works, storing raises."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self.warnings: list[str] = []
        self.read_only = _on_read_only_fs(self.path)
        if self.read_only:
            self._check_read_only()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise HistoryError(f"{self.path}: cannot create its folder: {e.strerror or e}"
                               ) from e
        self._migrate()

    def _check_read_only(self) -> None:
        if not self.path.is_file():
            raise HistoryError(f"{self.path}: no run history there, and its folder is on a "
                               "read-only file system")
        with self._db() as db:
            version = self._version(db)
        if version < CURRENT:
            raise HistoryError(
                f"{self.path}: a history of an older quanttui (schema {version}) on a read-only "
                "file system: it must be upgraded once where it can be written")

    def _unusable(self, e: sqlite3.Error) -> HistoryError:
        text = str(e)
        if "not a database" in text or "malformed" in text:
            return HistoryError(
                f"{self.path}: not a quanttui run history ({text}). Move it aside (nothing "
                "reads or changes it meanwhile); the next run starts a new history there.")
        if "locked" in text or "busy" in text:
            return HistoryError(f"{self.path}: in use by another quanttui ({text}); try again")
        return HistoryError(f"{self.path}: cannot use the run history: {text}")

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction: committed at the end, rolled back on any error. `write` takes the
        write lock at BEGIN, so a migration reads the version it then changes."""
        if write and self.read_only:
            raise HistoryError(f"{self.path}: on a read-only file system; nothing can be "
                               "stored there")
        try:
            if self.read_only:
                # immutable: no lock or WAL index to create beside it (the folder is
                # read-only), and nothing else can change it meanwhile
                db_ = sqlite3.connect(f"{self.path.resolve().as_uri()}?immutable=1", uri=True,
                                      isolation_level=None)
            else:
                db_ = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            with closing(db_) as db:
                if not self.read_only:
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield db
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._unusable(e) from e

    def _migrate(self) -> None:
        with self._db(write=True) as db:
            version = self._version(db)
            if version == 0:
                tables = {r[0] for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%'")}
                if not tables:
                    db.execute(SCHEMA_V1)
                elif "runs" not in tables or not {
                        r[1] for r in db.execute("PRAGMA table_info(runs)")} >= V1_COLUMNS:
                    raise HistoryError(
                        f"{self.path}: an SQLite database, but not a quanttui run history "
                        f"(tables: {', '.join(sorted(tables))}). Move it aside or set "
                        "QUANTTUI_DATA_DIR to another folder.")
                db.execute("PRAGMA user_version = 1")
        while True:
            with self._db(write=True) as db:
                version = self._version(db)  # another process may have migrated meanwhile
                if version >= CURRENT:
                    break
                MIGRATIONS[version](db, self.warnings)
                db.execute(f"PRAGMA user_version = {version + 1}")

    def _version(self, db: sqlite3.Connection) -> int:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > CURRENT:
            raise HistoryError(f"{self.path}: history written by a newer quanttui (schema "
                               f"{version}, this one knows up to {CURRENT}); upgrade quanttui")
        return version

    def add(self, data: dict[str, Any], label: str | None = None) -> int:
        servers, quants, host = _summary_columns(data)
        outcome = _outcome_columns(data)
        with self._db(write=True) as db:
            cur = db.execute(
                "INSERT INTO runs (created_at, schedule, data, servers, quants, host, label, "
                "kind, status, quality, verdict) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (data.get("started_at") or "", data.get("schedule") or "", json.dumps(data),
                 servers, quants, host, label, *outcome))
            return int(cur.lastrowid or 0)

    def update(self, run_id: int, data: dict[str, Any]) -> None:
        """Replace run #`run_id`'s JSON (a step measured after the run was stored, such as
        the TUI's quality step); KeyError if there is no such run."""
        servers, quants, host = _summary_columns(data)
        outcome = _outcome_columns(data)
        with self._db(write=True) as db:
            cur = db.execute("UPDATE runs SET data = ?, servers = ?, quants = ?, host = ?, "
                             "kind = ?, status = ?, quality = ?, verdict = ? WHERE id = ?",
                             (json.dumps(data), servers, quants, host, *outcome, run_id))
            if cur.rowcount == 0:
                raise KeyError(run_id)

    def list(self, limit: int = 50) -> list[RunRow]:
        with self._db() as db:
            rows = db.execute("SELECT id, created_at, schedule, servers, quants, host, label, "
                              "kind, status, quality, verdict FROM runs ORDER BY id DESC "
                              "LIMIT ?", (limit,)).fetchall()
        return [RunRow(*r) for r in rows]

    def get(self, run_id: int) -> dict[str, Any]:
        """Run #`run_id`'s JSON; KeyError if there is none, HistoryError if it is damaged."""
        with self._db() as db:
            row = db.execute("SELECT data FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        try:
            data = json.loads(row[0])
        except ValueError as e:
            raise HistoryError(f"{self.path}: run #{run_id} is damaged (not JSON: {e})") from e
        if not isinstance(data, dict):
            raise HistoryError(f"{self.path}: run #{run_id} is damaged (not a run)")
        return data


def _on_read_only_fs(path: Path) -> bool:
    """Whether the history's folder (its nearest existing one) is on a read-only file system."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False
