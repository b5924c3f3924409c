"""SQLiteStore: the embedded default. One file, WAL, transactions, versioned schema.

Vectors live beside the procedures as float32 blobs and are searched exactly with numpy. The
matrices are cached per (namespace, field) (``VectorCache``). Every write bumps the store's
generation counter inside its own transaction: this object's writes patch the cached matrices,
and a generation that moved any other way (another process wrote) makes them reload.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from memp._errors import (
    ProcedureNotFoundError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
)
from memp.store.base import (
    EVENT_COLUMNS,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    Facets,
    Order,
    Ref,
    Sort,
    VectorCache,
    VectorRow,
    VectorTable,
    already_stored,
    check_event_kind,
    check_namespace,
    check_next_version,
    check_page,
    check_status,
    event_from_row,
    keyword_field,
    list_order,
    merged_provenance,
    no_procedure,
    parse_export,
    procedure_body,
    procedure_from_row,
    status_change,
    where_equal,
)
from memp.types import Event, Procedure, ProcedureStats, ProcedureStatus, Trajectory

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE procedures (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        is_head INTEGER NOT NULL,
        status TEXT NOT NULL,
        task_type TEXT,
        uses INTEGER NOT NULL DEFAULT 0,
        successes INTEGER NOT NULL DEFAULT 0,
        body TEXT NOT NULL,
        embedding BLOB,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (namespace, id, version)
    );
    CREATE INDEX procedures_heads ON procedures (namespace, is_head, status, updated_at);
    CREATE TABLE keyword_vectors (
        namespace TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        field TEXT NOT NULL, vector BLOB NOT NULL,
        PRIMARY KEY (namespace, id, version, field)
    );
    CREATE TABLE trajectories (
        namespace TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (namespace, id)
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        namespace TEXT NOT NULL, procedure_id TEXT NOT NULL, version INTEGER NOT NULL,
        kind TEXT NOT NULL, trajectory_id TEXT, detail TEXT NOT NULL, at TEXT NOT NULL
    );
    CREATE INDEX events_procedure ON events (namespace, procedure_id, seq);
    INSERT INTO meta VALUES ('generation', '0');
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# Lineages in the order they were first stored. Ids are random, so ordering (and breaking score
# ties) by insertion keeps runs with the same seed identical.
_LINEAGE_ORDER = "(SELECT MIN(rowid) FROM procedures q WHERE q.namespace = p.namespace AND q.id = p.id)"

_BUILDER = "json_extract(body, '$.builder')"

# The head of one lineage. The unary + keeps SQLite on the primary key (namespace, id): without
# table statistics it would pick procedures_heads and walk every head of the namespace (20 ms
# instead of 0.02 ms at 10k procedures).
_ONE_HEAD = "namespace=? AND id=? AND +is_head=1"


def _blob(vector: list[float] | np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def _unblob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


class SQLiteStore:
    """A Store in one SQLite file (or ':memory:')."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 ann: bool | dict[str, Any] = False) -> None:
        """``ann=True`` (or a dict of HNSWIndex options) makes ``search`` use an HNSW index."""
        self.path = str(path)
        self._ann = None
        if ann:
            from memp.store.ann import ANNSearch

            self._ann = ANNSearch(**(ann if isinstance(ann, dict) else {}))
        if self.path != ":memory:":
            p = Path(self.path)
            if p.is_dir():
                raise StoreError(f"{self.path} is a directory; give a file path such as {p / 'memp.db'}")
            if not p.parent.exists():
                raise StoreError(f"folder {p.parent} does not exist; create it first")
        self._lock = threading.RLock()
        self._vectors = VectorCache(self._vector_rows)
        try:
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA foreign_keys=ON")
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise StoreCorruptError(
                f"{self.path} is not a readable memp database ({err}); "
                "restore it from a backup or an export, or choose another path"
            ) from None

    # -- plumbing ----------------------------------------------------------------------------

    def _migrate(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "meta" not in tables:
            raise StoreCorruptError(f"{self.path} is an SQLite file but not a memp database")
        current = 0
        if "meta" in tables:
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.path} has schema version {current}, newer than this memp ({SCHEMA_VERSION}); "
                "upgrade memp"
            )
        for version in range(current, SCHEMA_VERSION):
            with self._write():
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(version + 1),)
                )

    @contextmanager
    def _write(self):
        """One IMMEDIATE transaction that bumps the generation; retried while the file is busy.

        Writes name the lineages they change to ``self._vectors``, which patches its tables once
        the transaction has committed.
        """
        with self._lock:
            delay = 0.01
            for attempt in range(60):
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) and "busy" not in str(err):
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
            else:
                raise StoreError(f"{self.path} stayed locked by another writer; try again later")
            try:
                yield self._db
                generation = None
                if self._has_meta():
                    self._db.execute(
                        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'"
                    )
                    # Read back, not RETURNING: that needs SQLite 3.35, newer than some systems have.
                    generation = int(self._db.execute(
                        "SELECT value FROM meta WHERE key='generation'").fetchone()[0])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._vectors.rolled_back()
                raise
            self._vectors.committed(generation)

    def _has_meta(self) -> bool:
        return self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone() is not None

    def _read(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def generation(self) -> int:
        return int(self._read("SELECT value FROM meta WHERE key='generation'")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check(self) -> list[str]:
        """SQLite's integrity check: an empty list means the file is sound."""
        rows = self._read("PRAGMA integrity_check")
        return [] if rows == [("ok",)] else [r[0] for r in rows]

    # -- rows <-> models ---------------------------------------------------------------------

    def _row_to_procedure(self, row: tuple, with_vectors: bool = True) -> Procedure:
        namespace, pid, version, _head, status, _tt, uses, successes, body, embedding, _upd = row
        if not with_vectors:
            return procedure_from_row(namespace, pid, version, status, uses, successes, body)
        kws = self._read("SELECT field, vector FROM keyword_vectors WHERE namespace=? AND id=? AND version=?",
                         (namespace, pid, version))
        return procedure_from_row(namespace, pid, version, status, uses, successes, body,
                                  None if embedding is None else _unblob(embedding),
                                  {f: _unblob(v) for f, v in kws})

    def _insert_procedure(self, db: sqlite3.Connection, p: Procedure, is_head: bool) -> None:
        self._vectors.touch(p.namespace, p.id)
        body = procedure_body(p)
        db.execute(
            "INSERT INTO procedures VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (p.namespace, p.id, p.version, int(is_head), p.status, p.task_type, p.stats.uses,
             p.stats.successes, body, None if p.embedding is None else _blob(p.embedding),
             p.updated_at.isoformat()),
        )
        db.executemany(
            "INSERT INTO keyword_vectors VALUES (?,?,?,?,?)",
            [(p.namespace, p.id, p.version, f, _blob(v)) for f, v in p.keyword_embeddings.items()],
        )

    @staticmethod
    def _event(db: sqlite3.Connection, e: Event) -> None:
        db.execute(
            "INSERT INTO events (namespace, procedure_id, version, kind, trajectory_id, detail, at)"
            " VALUES (?,?,?,?,?,?,?)",
            (e.namespace, e.procedure_id, e.version, e.kind, e.trajectory_id,
             json.dumps(e.detail, sort_keys=True), e.at.isoformat()),
        )

    def _head_row(self, namespace: str, procedure_id: str) -> tuple:
        rows = self._read(f"SELECT * FROM procedures WHERE {_ONE_HEAD}", (namespace, procedure_id))
        if not rows:
            raise no_procedure(namespace, procedure_id)
        return rows[0]

    # -- procedures --------------------------------------------------------------------------

    def put(self, procedure: Procedure, *, event: str = "created", trajectory_id: str | None = None,
            detail: dict[str, Any] | None = None) -> Procedure:
        check_namespace(procedure.namespace)
        ns, pid = procedure.namespace, procedure.id
        with self._write() as db:
            head = db.execute(
                f"SELECT version FROM procedures WHERE {_ONE_HEAD}", (ns, pid)
            ).fetchone()
            check_next_version(procedure, None if head is None else head[0])
            if head is not None:
                db.execute("UPDATE procedures SET is_head=0 WHERE namespace=? AND id=?", (ns, pid))
            self._insert_procedure(db, procedure, is_head=True)
            self._event(db, Event(namespace=ns, procedure_id=pid, version=procedure.version,
                                  kind=event, trajectory_id=trajectory_id, detail=detail or {}))
        return procedure

    def get(self, namespace: str, procedure_id: str, version: int | None = None) -> Procedure:
        if version is None:
            return self._row_to_procedure(self._head_row(namespace, procedure_id))
        rows = self._read("SELECT * FROM procedures WHERE namespace=? AND id=? AND version=?",
                          (namespace, procedure_id, version))
        if not rows:
            raise no_procedure(namespace, procedure_id, version)
        return self._row_to_procedure(rows[0])

    def get_many(self, namespace: str, refs: list[Ref]) -> list[Procedure]:
        return [self.get(namespace, pid, version) for pid, version in refs]

    def history(self, namespace: str, procedure_id: str) -> list[Procedure]:
        rows = self._read("SELECT * FROM procedures WHERE namespace=? AND id=? ORDER BY version",
                          (namespace, procedure_id))
        if not rows:
            self._head_row(namespace, procedure_id)  # raises the helpful error
        return [self._row_to_procedure(r, with_vectors=False) for r in rows]

    @staticmethod
    def _heads(namespace: str, status: str | None, task_type: str | None, builder: str | None):
        where, params = where_equal({"namespace": namespace, "status": status, "task_type": task_type,
                                     _BUILDER: builder}, "?")
        return f"{where} AND is_head=1", params

    def list(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
             builder: str | None = None, sort: Sort = "updated", order: Order = "desc",
             limit: int = 50, offset: int = 0) -> list[Procedure]:
        check_page(limit, offset)
        where, params = self._heads(namespace, status, task_type, builder)
        rows = self._read(f"SELECT * FROM procedures WHERE {where} ORDER BY {list_order(sort, order)} "
                          "LIMIT ? OFFSET ?", [*params, limit, offset])
        return [self._row_to_procedure(r, with_vectors=False) for r in rows]

    def count(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
              builder: str | None = None) -> int:
        where, params = self._heads(namespace, status, task_type, builder)
        return self._read(f"SELECT COUNT(*) FROM procedures WHERE {where}", params)[0][0]

    def facets(self, namespace: str, limit: int = 200) -> Facets:
        heads = "FROM procedures WHERE namespace=? AND is_head=1"
        task_types = self._read(f"SELECT DISTINCT task_type {heads} AND task_type IS NOT NULL "
                                "ORDER BY 1 LIMIT ?", (namespace, limit))
        builders = self._read(f"SELECT DISTINCT {_BUILDER} {heads} AND {_BUILDER} IS NOT NULL "
                              "ORDER BY 1 LIMIT ?", (namespace, limit))
        return Facets([r[0] for r in task_types], [r[0] for r in builders])

    def refs(self, namespace: str) -> list[Ref]:
        rows = self._read(
            "SELECT id, version FROM procedures p WHERE namespace=? AND is_head=1 AND status='active' "
            f"ORDER BY {_LINEAGE_ORDER}", (namespace,),
        )
        return [(r[0], r[1]) for r in rows]

    def vectors(self, namespace: str, field: str = "key") -> VectorTable:
        keyword_field(field)  # a bad field fails here, before any cache is touched
        with self._lock:
            return self._vectors.table(namespace, field, self.generation())

    def _vector_rows(self, namespace: str, field: str, ids: list[str] | None) -> list[VectorRow]:
        keyword = keyword_field(field)
        # For a few lineages, the unary + keeps SQLite on the primary key, as in _ONE_HEAD.
        active = "p.is_head=1 AND p.status='active'" if ids is None else "+p.is_head=1 AND +p.status='active'"
        if keyword is None:
            sql = (f"SELECT p.id, p.version, {_LINEAGE_ORDER}, p.embedding FROM procedures p "
                   f"WHERE p.namespace=? AND {active} AND p.embedding IS NOT NULL")
            params = [namespace]
        else:
            sql = (f"SELECT k.id, k.version, {_LINEAGE_ORDER}, k.vector FROM keyword_vectors k "
                   "JOIN procedures p ON p.namespace=k.namespace AND p.id=k.id AND p.version=k.version "
                   f"WHERE k.namespace=? AND k.field=? AND {active}")
            params = [namespace, keyword]
        if ids is not None:
            sql += f" AND p.id IN ({','.join('?' * len(ids))})"
            params += ids
        rows = self._read(sql + " ORDER BY 3", params)
        return [VectorRow(r[0], r[1], r[2], _unblob(r[3])) for r in rows]

    def search(self, namespace: str, query_vector: Any, k: int) -> list[tuple[Ref, float]]:
        """Top-k active heads by key similarity: an exact scan, or the HNSW index if enabled."""
        if self._ann is not None:
            return self._ann.search(self, namespace, query_vector, k)
        return self.vectors(namespace, "key").top(query_vector, k)

    def ids_with_prefix(self, namespace: str, prefix: str, limit: int = 2) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._read("SELECT DISTINCT id FROM procedures WHERE namespace=? AND id LIKE ? ESCAPE '\\' "
                          "ORDER BY id LIMIT ?", (namespace, escaped + "%", limit))
        return [r[0] for r in rows]

    # -- feedback ----------------------------------------------------------------------------

    def record_use(self, namespace: str, procedure_id: str, version: int, *, success: bool,
                   trajectory_id: str | None = None) -> ProcedureStats:
        with self._write() as db:
            cur = db.execute(
                "UPDATE procedures SET uses = uses + 1, successes = successes + ? "
                "WHERE namespace=? AND id=? AND version=?",
                (int(success), namespace, procedure_id, version),
            )
            if cur.rowcount == 0:
                raise ProcedureNotFoundError(
                    f"procedure {procedure_id!r} v{version} not found in namespace {namespace!r}"
                )
            uses, successes = db.execute(
                "SELECT uses, successes FROM procedures WHERE namespace=? AND id=? AND version=?",
                (namespace, procedure_id, version)).fetchone()
            self._event(db, Event(namespace=namespace, procedure_id=procedure_id, version=version,
                                  kind="used", trajectory_id=trajectory_id,
                                  detail={"success": bool(success)}))
        return ProcedureStats(uses=uses, successes=successes)

    def set_status(self, namespace: str, procedure_id: str, status: ProcedureStatus, *, reason: str,
                   detail: dict[str, Any] | None = None) -> Procedure:
        check_status(status)
        row = self._head_row(namespace, procedure_id)
        version, old_status, uses, successes = row[2], row[4], row[6], row[7]
        change = status_change(procedure_id, row[8], old_status, status, reason=reason, uses=uses,
                               successes=successes, detail=detail)
        with self._write() as db:
            self._vectors.touch(namespace, procedure_id)
            # Restoring starts a fresh evidence window; the old counts stay in the event log.
            reset = ", uses=0, successes=0" if status == "active" else ""
            db.execute(
                f"UPDATE procedures SET status=?, body=?, updated_at=?{reset} "
                "WHERE namespace=? AND id=? AND version=?",
                (status, change.body, change.updated_at.isoformat(), namespace, procedure_id, version),
            )
            self._event(db, Event(namespace=namespace, procedure_id=procedure_id, version=version,
                                  kind=change.event, detail=change.evidence))
        return self.get(namespace, procedure_id)

    def merge_provenance(self, namespace: str, procedure_id: str, trajectory: Trajectory,
                         *, similarity: float) -> Procedure:
        row = self._head_row(namespace, procedure_id)
        with self._write() as db:
            db.execute("UPDATE procedures SET body=? WHERE namespace=? AND id=? AND version=?",
                       (merged_provenance(row[8], trajectory), namespace, procedure_id, row[2]))
            self._event(db, Event(namespace=namespace, procedure_id=procedure_id, version=row[2],
                                  kind="merged", trajectory_id=trajectory.id,
                                  detail={"similarity": round(similarity, 6)}))
        return self.get(namespace, procedure_id)

    # -- trajectories and events -----------------------------------------------------------

    def add_trajectory(self, namespace: str, trajectory: Trajectory) -> None:
        check_namespace(namespace)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO trajectories VALUES (?,?,?)",
                       (namespace, trajectory.id, trajectory.model_dump_json()))

    def get_trajectory(self, namespace: str, trajectory_id: str) -> Trajectory:
        rows = self._read("SELECT body FROM trajectories WHERE namespace=? AND id=?", (namespace, trajectory_id))
        if not rows:
            raise ProcedureNotFoundError(f"no trajectory {trajectory_id!r} in namespace {namespace!r}")
        return Trajectory.model_validate_json(rows[0][0])

    def events(self, namespace: str, procedure_id: str | None = None, *, kind: str | None = None,
               newest_first: bool = False, limit: int | None = None, offset: int = 0) -> list[Event]:
        check_event_kind(kind)
        check_page(limit, offset)
        where, params = where_equal({"namespace": namespace, "procedure_id": procedure_id, "kind": kind}, "?")
        rows = self._read(f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} "
                          f"ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ? OFFSET ?",
                          [*params, -1 if limit is None else limit, offset])  # -1: no limit
        return [event_from_row(r) for r in rows]

    def count_events(self, namespace: str, procedure_id: str | None = None, *,
                     kind: str | None = None) -> int:
        check_event_kind(kind)
        where, params = where_equal({"namespace": namespace, "procedure_id": procedure_id, "kind": kind}, "?")
        return self._read(f"SELECT COUNT(*) FROM events WHERE {where}", params)[0][0]

    def namespaces(self) -> list[str]:
        rows = self._read("SELECT DISTINCT namespace FROM procedures UNION "
                          "SELECT DISTINCT namespace FROM trajectories ORDER BY 1")
        return [r[0] for r in rows]

    # -- export / import -------------------------------------------------------------------

    def export_records(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        spaces = [namespace] if namespace else self.namespaces()
        yield {"type": EXPORT_FORMAT, "version": EXPORT_VERSION, "schema": SCHEMA_VERSION}
        for ns in spaces:
            for (body,) in self._read("SELECT body FROM trajectories WHERE namespace=? ORDER BY id", (ns,)):
                yield {"type": "trajectory", "namespace": ns, "trajectory": json.loads(body)}
            rows = self._read("SELECT * FROM procedures WHERE namespace=? ORDER BY id, version", (ns,))
            for row in rows:
                p = self._row_to_procedure(row)
                yield {"type": "procedure", "head": bool(row[3]), "procedure": p.model_dump(mode="json")}
            for e in self.events(ns):
                yield {"type": "event", "event": e.model_dump(mode="json", exclude={"seq"})}

    def import_records(self, records: Iterable[dict[str, Any]], *, namespace: str | None = None) -> dict[str, int]:
        parsed = parse_export(records, namespace)
        with self._write() as db:
            for ns, t in parsed["trajectories"]:
                db.execute("INSERT OR REPLACE INTO trajectories VALUES (?,?,?)", (ns, t.id, t.model_dump_json()))
            for p, head in parsed["procedures"]:
                exists = db.execute("SELECT 1 FROM procedures WHERE namespace=? AND id=? AND version=?",
                                    (p.namespace, p.id, p.version)).fetchone()
                if exists:
                    raise already_stored(p)
                if head:
                    db.execute("UPDATE procedures SET is_head=0 WHERE namespace=? AND id=?", (p.namespace, p.id))
                self._insert_procedure(db, p, is_head=head)
            for e in parsed["events"]:
                self._event(db, e)
        return {k: len(v) for k, v in parsed.items()}
