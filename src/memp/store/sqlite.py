"""SQLiteStore: the embedded default. One file, WAL, transactions, versioned schema.

The queries are the SQL core's (``memp.store.sql``); this module connects, keeps the schema and
says how vectors are kept. Vectors live beside the procedures as float32 blobs and are searched
exactly with numpy, or through an HNSW index (``ann=True``, memp.store.ann) that holds them as
float16 and never loads the float32 matrix, saved beside the file (``<path>.ann/``,
memp.store.ann_saved) for the next process to load. The matrices are cached per (namespace, field)
(``VectorCache``): this object's writes patch them, and a generation that moved any other way
(another process wrote) makes them reload.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from memp._errors import StoreCorruptError, StoreError, StoreVersionError
from memp.store.ann import ANNConfig, ANNSearch
from memp.store.ann_saved import SavedIndexes
from memp.store.base import Ref
from memp.store.sql import SQLStore, first_schema

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    first_schema(counter="TEXT", boolean="INTEGER", vector="BLOB", time="TEXT",
                 serial_key="INTEGER PRIMARY KEY AUTOINCREMENT", zero="'0'"),
    # The size of the key embedding, as PostgreSQL keeps it: one query finds a namespace's size.
    """
    ALTER TABLE procedures ADD COLUMN dim INTEGER;
    UPDATE procedures SET dim = length(embedding) / 4 WHERE embedding IS NOT NULL;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
_TABLES = {"meta", "procedures", "keyword_vectors", "trajectories", "events"}


def _blob(vector: list[float] | np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


class SQLiteStore(SQLStore):
    """A Store in one SQLite file (or ':memory:')."""

    SCHEMA_VERSION = SCHEMA_VERSION

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 ann: bool | dict[str, Any] | ANNConfig = False, read_only: bool = False) -> None:
        """``ann=True`` (or an ``ANNConfig``, or a dict of its fields) makes ``search`` use an
        HNSW index, built from the file on the first search.

        ``read_only=True`` opens an existing memp database and never writes to the file: a missing
        file, or one that is not a memp database, is an error rather than a new database.
        """
        super().__init__(read_only=read_only)
        self.path = str(path)
        # A bad option fails here, before the file opens. An index is saved beside a file (and only
        # by a store that may write), so that the next process loads it instead of building it.
        saved = (None if self.path == ":memory:" else
                 SavedIndexes(str(Path(self.path).resolve()) + ".ann", writable=not read_only))
        self._ann = ANNSearch(ann, saved) if ann else None
        if self.path != ":memory:":
            p = Path(self.path)
            if p.is_dir():
                raise StoreError(f"{self.path} is a directory; give a file path such as {p / 'memp.db'}")
            if not p.parent.exists():
                raise StoreError(f"folder {p.parent} does not exist; create it first")
            if read_only and not p.exists():
                raise StoreError(f"no memp database at {self.path}; give the path of an existing one")
        target = Path(self.path).resolve().as_uri() + "?mode=ro" if read_only else self.path
        self._db = sqlite3.connect(target, timeout=busy_timeout, isolation_level=None,
                                   check_same_thread=False, uri=read_only)
        try:
            self._open_schema()
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise StoreCorruptError(
                f"{self.path} is not a readable memp database ({err}); "
                "restore it from a backup or an export, or choose another path"
            ) from None
        except StoreError:
            self._db.close()
            raise

    def _open_schema(self) -> None:
        """Check the file's schema and bring it to this version, retried while another process
        holds a lock: switching a new file to WAL fails at once, without waiting, when another
        process is creating it (4 processes opening one new file at once lost one open in 30)."""
        self._while_locked(self._open_schema_once)

    def _open_schema_once(self) -> None:
        # Look before writing anything: a file that is not a memp database is left as it was.
        current = self._schema_found()
        if self.read_only:
            self._check_version(current)
            return
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def _while_locked(self, step: Callable[[], object]) -> None:
        """Run ``step``, again while another process holds the file's lock (60 tries, about half
        a minute of waiting between them)."""
        delay = 0.01
        for _attempt in range(60):
            try:
                step()
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) and "busy" not in str(err):
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
        raise StoreError(f"{self.path} stayed locked by another writer; try again later")

    # -- the SQL core's hooks --------------------------------------------------------------

    def _begin(self) -> None:
        """BEGIN IMMEDIATE: the file's one writer lock, retried while another process holds it."""
        self._while_locked(lambda: self._db.execute("BEGIN IMMEDIATE"))

    def _executemany(self, query: str, rows: list[tuple]) -> None:
        self._db.executemany(self.dialect.sql(query), rows)

    def _vector_in(self, vector: list[float] | np.ndarray) -> bytes:
        return _blob(vector)

    def _vector_out(self, value: bytes) -> np.ndarray:
        return np.frombuffer(value, dtype=np.float32)

    def _time_in(self, at: datetime) -> str:
        return at.isoformat()

    def _name(self) -> str:
        return self.path

    # -- schema ------------------------------------------------------------------------------

    def _schema_found(self) -> int:
        """The schema version of the file: 0 for a new (empty) database, else its memp version."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            if self.read_only:
                raise StoreCorruptError(f"{self.path} is an empty SQLite file, not a memp database")
            return 0
        row = None
        if _TABLES <= tables:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            raise StoreCorruptError(f"{self.path} is an SQLite file but not a memp database")
        return int(row[0])

    def _check_version(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.path} has schema version {current}, newer than this memp ({SCHEMA_VERSION}); "
                "upgrade memp"
            )

    def _migrate(self) -> None:
        self._begin()
        try:
            current = self._schema_found()  # again, under the lock: another process may have migrated
            self._check_version(current)
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(version + 1),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def identity(self, create: bool = False) -> int | None:
        """A random number naming this database, so that an index saved beside the file is never
        applied to another database that later sits at the same path. None if it has none yet and
        ``create`` is false or it cannot be written now (read-only, or inside a write transaction)."""
        with self._lock:
            row = self._execute("SELECT value FROM meta WHERE key='identity'").fetchone()
            if row is not None or not create or self.read_only or self._depth:
                return None if row is None else int(row[0])
            # Its own transaction, without a generation bump: no procedure changed, so no cache
            # in any process needs to reload. OR IGNORE: another process may have just written one.
            self._begin()
            try:
                self._execute("INSERT OR IGNORE INTO meta VALUES ('identity', ?)", (secrets.randbits(62) + 1,))
                self._execute("COMMIT")
            except BaseException:
                self._execute("ROLLBACK")
                raise
            return int(self._execute("SELECT value FROM meta WHERE key='identity'").fetchone()[0])

    def check(self) -> list[str]:
        """SQLite's integrity check: an empty list means the file is sound."""
        rows = self._read("PRAGMA integrity_check")
        return [] if rows == [("ok",)] else [r[0] for r in rows]

    # -- search ------------------------------------------------------------------------------

    def search(self, namespace: str, query_vector: Any, k: int) -> list[tuple[Ref, float]]:
        """Top-k active heads by key similarity: an exact scan, or the HNSW index if enabled."""
        with self._lock:
            # Once a write in progress has changed the namespace, the index would learn rows that
            # may yet roll back: scan exactly until it commits.
            if self._ann is not None and not self._vectors.changing(namespace):
                return self._ann.search(self, namespace, query_vector, k)
            table = self.vectors(namespace, "key")
        return table.top(query_vector, k)  # a table never changes: other threads need not wait
