"""Optional persistence of the mock portal's data in a SQLite file.

The mock keeps everything in memory; with ``--store FILE`` it also writes dossiers,
progress records and the catalogue through to SQLite (one transaction per request), and
reads them back at start, so a restart keeps the data. Sessions, the journal and fault
rules live in memory only: a restarted portal asks clients to log in again (``-2``),
as a real one would.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from app.mockportal.records import StoredDossier

_SCHEMA = """
CREATE TABLE IF NOT EXISTS catalogue (id INTEGER PRIMARY KEY CHECK (id = 1), data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dossiers (
    ma_ho_so TEXT PRIMARY KEY,
    unit TEXT NOT NULL,
    data TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    ma_ho_so TEXT NOT NULL REFERENCES dossiers (ma_ho_so) ON DELETE CASCADE,
    identity TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (ma_ho_so, identity)
);
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Persistence:
    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        self.connection.executescript(_SCHEMA)

    def close(self) -> None:
        self.connection.close()

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> None:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN")
        try:
            for sql, params in statements:
                cursor.execute(sql, params)
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def load_catalogue(self) -> dict[str, Any] | None:
        row = self.connection.execute("SELECT data FROM catalogue WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def save_catalogue(self, catalogue: Mapping[str, Any]) -> None:
        self._write(
            [("INSERT OR REPLACE INTO catalogue (id, data) VALUES (1, ?)", (_dumps(catalogue),))]
        )

    def load_dossiers(self) -> list[StoredDossier]:
        dossiers: dict[str, StoredDossier] = {}
        for code, unit, data, content_hash, created, updated in self.connection.execute(
            "SELECT ma_ho_so, unit, data, content_hash, created_at, updated_at FROM dossiers"
        ):
            dossiers[code] = StoredDossier(
                code,
                unit,
                json.loads(data),
                content_hash,
                datetime.fromisoformat(created),
                datetime.fromisoformat(updated),
            )
        for code, identity, data in self.connection.execute(
            "SELECT ma_ho_so, identity, data FROM progress ORDER BY ma_ho_so, seq"
        ):
            dossiers[code].progress[identity] = json.loads(data)
        return list(dossiers.values())

    def save_dossiers(self, dossiers: Sequence[StoredDossier]) -> None:
        self._write(_upsert(d) for d in dossiers)

    def save_progress(self, records: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        self._write(
            (
                "INSERT OR IGNORE INTO progress (ma_ho_so, identity, seq, data) VALUES "
                "(?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM progress WHERE ma_ho_so = ?), ?)",
                (code, identity, code, _dumps(form)),
            )
            for code, identity, form in records
        )

    def replace_dossier(self, dossier: StoredDossier) -> None:
        """Store a dossier and exactly these progress records (a write by hand)."""
        statements = [
            ("DELETE FROM progress WHERE ma_ho_so = ?", (dossier.ma_ho_so,)),
            _upsert(dossier),
        ]
        statements += [
            (
                "INSERT INTO progress (ma_ho_so, identity, seq, data) VALUES (?, ?, ?, ?)",
                (dossier.ma_ho_so, identity, seq, _dumps(form)),
            )
            for seq, (identity, form) in enumerate(dossier.progress.items(), start=1)
        ]
        self._write(statements)

    def delete_dossiers(self, codes: Sequence[str]) -> None:
        self._write(("DELETE FROM dossiers WHERE ma_ho_so = ?", (code,)) for code in codes)


def _upsert(dossier: StoredDossier) -> tuple[str, Sequence[Any]]:
    return (
        "INSERT INTO dossiers (ma_ho_so, unit, data, content_hash, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (ma_ho_so) DO UPDATE SET data = excluded.data, "
        "content_hash = excluded.content_hash, updated_at = excluded.updated_at",
        (
            dossier.ma_ho_so,
            dossier.unit,
            _dumps(dossier.data),
            dossier.content_hash,
            dossier.created_at.isoformat(),
            dossier.updated_at.isoformat(),
        ),
    )
