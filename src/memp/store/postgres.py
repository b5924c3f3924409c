"""PostgresStore: one procedural memory shared by many agent processes on many machines.

PostgreSQL with pgvector, through psycopg 3. The tables mirror the SQLite store (a ``memp_``
prefix keeps them apart from whatever else lives in the database) and the semantics are the
same, checked by the same contract tests:

- Every write transaction first bumps the generation row in ``memp_meta``. That row lock
  serialises writers (as SQLite's single writer does), so "the next version must follow the head"
  holds across machines without retry loops, and no two transactions can deadlock on it.
- Statistics change with ``UPDATE … SET uses = uses + 1`` inside the database: no increment is
  lost however many processes count at once.
- JSON bodies are TEXT, not JSONB: JSONB refuses the escaped NUL character (``\\u0000``) that
  agents' observations sometimes carry, and memp never queries inside a body.
- Key embeddings sit in a ``vector`` column. pgvector's HNSW indexes need a fixed dimension, while
  memp allows any embedder, so each dimension seen gets its own partial expression index over the
  active heads (``embedding::vector(384)`` … ``WHERE dim = 384 AND is_head AND status='active'``),
  created the first time a vector of that size is written. ``search`` uses it; ``vectors`` loads
  the matrix for exact scans and keyword fields, cached and patched like SQLite's
  (``VectorCache``).
- The builder filter reads the body as ``json`` (kept as text), not ``jsonb``, for the same
  reason: a body with an escaped NUL can still be filtered.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from memp._errors import (
    InvalidInputError,
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

try:
    import psycopg
    from pgvector.psycopg import register_vector
    from psycopg import sql
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"PostgresStore needs the 'postgres' extra ({_err.name} is missing): "
        "pip install 'memp[postgres]'"
    ) from None

# Each entry upgrades the schema by one version; never edit a released entry, append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE memp_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
    CREATE TABLE memp_procedures (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        is_head BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        task_type TEXT,
        uses INTEGER NOT NULL DEFAULT 0,
        successes INTEGER NOT NULL DEFAULT 0,
        body TEXT NOT NULL,
        embedding vector,
        dim INTEGER,
        updated_at TIMESTAMPTZ NOT NULL,
        seq BIGSERIAL,
        PRIMARY KEY (namespace, id, version)
    );
    CREATE INDEX memp_procedures_heads ON memp_procedures (namespace, is_head, status, updated_at);
    CREATE TABLE memp_keyword_vectors (
        namespace TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        field TEXT NOT NULL, vector vector NOT NULL,
        PRIMARY KEY (namespace, id, version, field)
    );
    CREATE INDEX memp_keyword_vectors_field ON memp_keyword_vectors (namespace, field);
    CREATE TABLE memp_trajectories (
        namespace TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (namespace, id)
    );
    CREATE TABLE memp_events (
        seq BIGSERIAL PRIMARY KEY,
        namespace TEXT NOT NULL, procedure_id TEXT NOT NULL, version INTEGER NOT NULL,
        kind TEXT NOT NULL, trajectory_id TEXT, detail TEXT NOT NULL, at TIMESTAMPTZ NOT NULL
    );
    CREATE INDEX memp_events_procedure ON memp_events (namespace, procedure_id, seq);
    INSERT INTO memp_meta VALUES ('generation', 0);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# An arbitrary constant: the advisory lock that keeps two processes from migrating at once.
_MIGRATION_LOCK = 0x6D656D70

# Lineages in the order they were first stored: ids are random, so ordering (and breaking score
# ties) by insertion keeps seeded runs identical, as in the SQLite store.
_LINEAGE_ORDER = ("(SELECT MIN(q.seq) FROM memp_procedures q WHERE q.namespace = p.namespace "
                  "AND q.id = p.id)")

_BUILDER = "(body::json)->>'builder'"
_SELECT = ("SELECT namespace, id, version, is_head, status, uses, successes, body, embedding "
           "FROM memp_procedures")


class PostgresStore:
    """A Store in a PostgreSQL database with the pgvector extension."""

    def __init__(self, url: str, *, ef_search: int = 100, connect_timeout: int = 10) -> None:
        self.url = url
        self.ef_search = ef_search
        self._lock = threading.RLock()
        self._vectors = VectorCache(self._vector_rows)
        self._indexed_dims: set[int] = set()
        self._new_dims: set[int] = set()
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.OperationalError as err:
            raise StoreError(
                f"cannot connect to PostgreSQL at {_redact(url)} ({str(err).strip()}); "
                "check that the server runs and the URL, user and password are right"
            ) from None
        self._db.execute("SET TIME ZONE 'UTC'")
        self._migrate()
        register_vector(self._db)

    # -- plumbing ----------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            tables = {r[0] for r in self._db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
            current = 0
            if "memp_meta" in tables:
                row = self._db.execute(
                    "SELECT value FROM memp_meta WHERE key='schema_version'").fetchone()
                current = int(row[0]) if row else 0
            elif "memp_procedures" in tables:
                raise StoreCorruptError(
                    f"{_redact(self.url)} has memp tables but no memp_meta; restore it from an export"
                )
            if current > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"{_redact(self.url)} has memp schema version {current}, newer than this memp "
                    f"({SCHEMA_VERSION}); upgrade memp"
                )
            for version in range(current, SCHEMA_VERSION):
                try:
                    self._db.execute(MIGRATIONS[version])
                except psycopg.errors.InsufficientPrivilege as err:
                    raise StoreError(
                        f"cannot set up the memp schema ({str(err).strip()}); ask the database owner "
                        "to run CREATE EXTENSION vector, or connect as a user who owns the database"
                    ) from None
                self._db.execute(
                    "INSERT INTO memp_meta VALUES ('schema_version', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", (version + 1,))
            self._indexed_dims = {r[0] for r in self._db.execute(
                "SELECT DISTINCT dim FROM memp_procedures WHERE dim IS NOT NULL")}

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        """One transaction that starts by bumping the generation, which serialises writers.

        Writes name the lineages they change to ``self._vectors``, which patches its tables once
        the transaction has committed.
        """
        with self._lock:
            self._new_dims = set()
            try:
                with self._db.transaction():
                    generation = self._db.execute(
                        "UPDATE memp_meta SET value = value + 1 WHERE key='generation' RETURNING value"
                    ).fetchone()[0]
                    yield self._db
            except BaseException as err:
                self._vectors.rolled_back()
                if isinstance(err, psycopg.errors.DataError):
                    # e.g. a NUL character in an id: PostgreSQL text cannot hold it; nothing was written.
                    raise InvalidInputError(
                        f"PostgreSQL refused a value ({str(err).strip()}); remove NUL characters from "
                        "ids, task types and other short fields"
                    ) from None
                raise
            self._vectors.committed(int(generation))
            # Only a committed CREATE INDEX counts; a rolled-back one is retried on the next write.
            self._indexed_dims |= self._new_dims

    def _read(self, query: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(query, params).fetchall()

    def generation(self) -> int:
        return int(self._read("SELECT value FROM memp_meta WHERE key='generation'")[0][0])

    def schema_version(self) -> int:
        return int(self._read("SELECT value FROM memp_meta WHERE key='schema_version'")[0][0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ensure_index(self, db: psycopg.Connection, dim: int) -> None:
        if dim in self._indexed_dims or dim in self._new_dims:
            return
        if dim > 2000:  # pgvector 0.6 cannot index more dimensions; search falls back to a scan
            return
        # Another process may be creating the same index: the advisory lock makes them take turns.
        db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_MIGRATION_LOCK, dim))
        db.execute(sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON memp_procedures USING hnsw "
            "((embedding::vector({dim})) vector_cosine_ops) "
            "WHERE dim = {dim} AND is_head AND status = 'active'"
        ).format(name=sql.Identifier(f"memp_procedures_hnsw_{dim}"), dim=sql.Literal(dim)))
        self._new_dims.add(dim)

    # -- rows <-> models ---------------------------------------------------------------------

    def _to_procedure(self, row: tuple, with_vectors: bool = True) -> Procedure:
        namespace, pid, version, _head, status, uses, successes, body, embedding = row
        if not with_vectors:
            return procedure_from_row(namespace, pid, version, status, uses, successes, body)
        kws = self._read("SELECT field, vector FROM memp_keyword_vectors WHERE namespace=%s AND id=%s "
                         "AND version=%s", (namespace, pid, version))
        return procedure_from_row(namespace, pid, version, status, uses, successes, body,
                                  None if embedding is None else _array(embedding),
                                  {f: _array(v) for f, v in kws})

    def _insert_procedure(self, db: psycopg.Connection, p: Procedure, is_head: bool) -> None:
        self._vectors.touch(p.namespace, p.id)
        body = procedure_body(p)
        vector = None if p.embedding is None else np.asarray(p.embedding, dtype=np.float32)
        if vector is not None:
            self._ensure_index(db, len(vector))
        db.execute(
            "INSERT INTO memp_procedures VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (p.namespace, p.id, p.version, is_head, p.status, p.task_type, p.stats.uses,
             p.stats.successes, body, vector, None if vector is None else len(vector), p.updated_at),
        )
        if p.keyword_embeddings:
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO memp_keyword_vectors VALUES (%s,%s,%s,%s,%s)",
                    [(p.namespace, p.id, p.version, f, np.asarray(v, dtype=np.float32))
                     for f, v in p.keyword_embeddings.items()])

    @staticmethod
    def _event(db: psycopg.Connection, e: Event) -> None:
        db.execute(
            "INSERT INTO memp_events (namespace, procedure_id, version, kind, trajectory_id, detail, at)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s)",
            (e.namespace, e.procedure_id, e.version, e.kind, e.trajectory_id,
             json.dumps(e.detail, sort_keys=True), e.at),
        )

    def _head_row(self, namespace: str, procedure_id: str, db: psycopg.Connection | None = None,
                  lock: bool = False) -> tuple:
        query = _SELECT + " WHERE namespace=%s AND id=%s AND is_head" + (" FOR UPDATE" if lock else "")
        rows = (db.execute(query, (namespace, procedure_id)).fetchall() if db is not None
                else self._read(query, (namespace, procedure_id)))
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
                "SELECT version FROM memp_procedures WHERE namespace=%s AND id=%s AND is_head",
                (ns, pid)).fetchone()
            check_next_version(procedure, None if head is None else head[0])
            if head is not None:
                db.execute("UPDATE memp_procedures SET is_head=false WHERE namespace=%s AND id=%s",
                           (ns, pid))
            self._insert_procedure(db, procedure, is_head=True)
            self._event(db, Event(namespace=ns, procedure_id=pid, version=procedure.version,
                                  kind=event, trajectory_id=trajectory_id, detail=detail or {}))
        return procedure

    def get(self, namespace: str, procedure_id: str, version: int | None = None) -> Procedure:
        if version is None:
            return self._to_procedure(self._head_row(namespace, procedure_id))
        rows = self._read(_SELECT + " WHERE namespace=%s AND id=%s AND version=%s",
                          (namespace, procedure_id, version))
        if not rows:
            raise no_procedure(namespace, procedure_id, version)
        return self._to_procedure(rows[0])

    def get_many(self, namespace: str, refs: list[Ref]) -> list[Procedure]:
        return [self.get(namespace, pid, version) for pid, version in refs]

    def history(self, namespace: str, procedure_id: str) -> list[Procedure]:
        rows = self._read(_SELECT + " WHERE namespace=%s AND id=%s ORDER BY version",
                          (namespace, procedure_id))
        if not rows:
            self._head_row(namespace, procedure_id)  # raises the helpful error
        return [self._to_procedure(r, with_vectors=False) for r in rows]

    @staticmethod
    def _heads(namespace: str, status: str | None, task_type: str | None, builder: str | None):
        where, params = where_equal({"namespace": namespace, "status": status, "task_type": task_type,
                                     _BUILDER: builder}, "%s")
        return f"{where} AND is_head", params

    def list(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
             builder: str | None = None, sort: Sort = "updated", order: Order = "desc",
             limit: int = 50, offset: int = 0) -> list[Procedure]:
        check_page(limit, offset)
        where, params = self._heads(namespace, status, task_type, builder)
        rows = self._read(f"{_SELECT} WHERE {where} ORDER BY {list_order(sort, order)} LIMIT %s OFFSET %s",
                          [*params, limit, offset])
        return [self._to_procedure(r, with_vectors=False) for r in rows]

    def count(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
              builder: str | None = None) -> int:
        where, params = self._heads(namespace, status, task_type, builder)
        return self._read(f"SELECT COUNT(*) FROM memp_procedures WHERE {where}", params)[0][0]

    def facets(self, namespace: str, limit: int = 200) -> Facets:
        heads = "FROM memp_procedures WHERE namespace=%s AND is_head"
        task_types = self._read(f"SELECT DISTINCT task_type {heads} AND task_type IS NOT NULL "
                                "ORDER BY 1 LIMIT %s", (namespace, limit))
        builders = self._read(f"SELECT DISTINCT {_BUILDER} {heads} AND {_BUILDER} IS NOT NULL "
                              "ORDER BY 1 LIMIT %s", (namespace, limit))
        return Facets([r[0] for r in task_types], [r[0] for r in builders])

    def refs(self, namespace: str) -> list[Ref]:
        rows = self._read(
            "SELECT id, version FROM memp_procedures p WHERE namespace=%s AND is_head "
            f"AND status='active' ORDER BY {_LINEAGE_ORDER}", (namespace,))
        return [(r[0], r[1]) for r in rows]

    def vectors(self, namespace: str, field: str = "key") -> VectorTable:
        keyword_field(field)  # a bad field fails here, before any cache is touched
        with self._lock:
            return self._vectors.table(namespace, field, self.generation())

    def _vector_rows(self, namespace: str, field: str, ids: list[str] | None) -> list[VectorRow]:
        keyword = keyword_field(field)
        if keyword is None:
            query = (f"SELECT p.id, p.version, {_LINEAGE_ORDER}, p.embedding FROM memp_procedures p "
                     "WHERE p.namespace=%s AND p.is_head AND p.status='active' AND p.embedding IS NOT NULL")
            params: list = [namespace]
        else:
            query = (f"SELECT k.id, k.version, {_LINEAGE_ORDER}, k.vector FROM memp_keyword_vectors k "
                     "JOIN memp_procedures p ON p.namespace=k.namespace AND p.id=k.id AND p.version=k.version "
                     "WHERE k.namespace=%s AND k.field=%s AND p.is_head AND p.status='active'")
            params = [namespace, keyword]
        if ids is not None:
            query += " AND p.id = ANY(%s)"
            params.append(ids)
        rows = self._read(query + " ORDER BY 3", params)
        return [VectorRow(r[0], r[1], r[2], _array(r[3])) for r in rows]

    def search(self, namespace: str, query_vector: Any, k: int) -> list[tuple[Ref, float]]:
        """Top-k active heads by cosine similarity, through the HNSW index (approximate).

        When the index yields fewer than k rows although the namespace holds more (its graph walk
        ends among other namespaces' vectors), the search is repeated exactly, so a namespace
        never looks emptier than it is.
        """
        if k <= 0:
            return []
        query = np.asarray(query_vector, dtype=np.float32)
        dim = len(query)
        where = "namespace=%s AND dim=%s AND is_head AND status='active'"
        indexed = sql.SQL(
            "SELECT id, version, 1 - (embedding::vector({dim}) <=> %s::vector({dim})), "
            + _LINEAGE_ORDER + " FROM memp_procedures p WHERE " + where + " ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT %s"
        ).format(dim=sql.Literal(dim))
        with self._lock, self._db.transaction():
            self._db.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(
                sql.Literal(max(self.ef_search, k))))
            rows = self._db.execute(indexed, (query, namespace, dim, query, k)).fetchall()
            if len(rows) < k:
                total = self._db.execute(
                    "SELECT COUNT(*) FROM memp_procedures WHERE " + where, (namespace, dim)).fetchone()[0]
                if total > len(rows):
                    self._db.execute("SET LOCAL enable_indexscan = off")
                    rows = self._db.execute(indexed, (query, namespace, dim, query, k)).fetchall()
        # Ties break on lineage order, as in VectorTable.top, so both backends order alike.
        rows.sort(key=lambda r: (-float(r[2]), r[3]))
        return [((r[0], r[1]), float(r[2])) for r in rows]

    def ids_with_prefix(self, namespace: str, prefix: str, limit: int = 2) -> list[str]:
        rows = self._read(
            "SELECT DISTINCT id FROM memp_procedures WHERE namespace=%s AND starts_with(id, %s) "
            "ORDER BY id LIMIT %s", (namespace, prefix, limit))
        return [r[0] for r in rows]

    # -- feedback ----------------------------------------------------------------------------

    def record_use(self, namespace: str, procedure_id: str, version: int, *, success: bool,
                   trajectory_id: str | None = None) -> ProcedureStats:
        with self._write() as db:
            row = db.execute(
                "UPDATE memp_procedures SET uses = uses + 1, successes = successes + %s "
                "WHERE namespace=%s AND id=%s AND version=%s RETURNING uses, successes",
                (int(success), namespace, procedure_id, version)).fetchone()
            if row is None:
                raise ProcedureNotFoundError(
                    f"procedure {procedure_id!r} v{version} not found in namespace {namespace!r}"
                )
            self._event(db, Event(namespace=namespace, procedure_id=procedure_id, version=version,
                                  kind="used", trajectory_id=trajectory_id,
                                  detail={"success": bool(success)}))
        return ProcedureStats(uses=row[0], successes=row[1])

    def set_status(self, namespace: str, procedure_id: str, status: ProcedureStatus, *, reason: str,
                   detail: dict[str, Any] | None = None) -> Procedure:
        check_status(status)
        with self._write() as db:
            # Read inside the transaction: the evidence must be the counts this change replaces.
            row = self._head_row(namespace, procedure_id, db, lock=True)
            version, old_status, uses, successes = row[2], row[4], row[5], row[6]
            change = status_change(procedure_id, row[7], old_status, status, reason=reason, uses=uses,
                                   successes=successes, detail=detail)
            self._vectors.touch(namespace, procedure_id)
            # Restoring starts a fresh evidence window; the old counts stay in the event log.
            reset = ", uses=0, successes=0" if status == "active" else ""
            db.execute(
                f"UPDATE memp_procedures SET status=%s, body=%s, updated_at=%s{reset} "
                "WHERE namespace=%s AND id=%s AND version=%s",
                (status, change.body, change.updated_at, namespace, procedure_id, version))
            self._event(db, Event(namespace=namespace, procedure_id=procedure_id, version=version,
                                  kind=change.event, detail=change.evidence))
        return self.get(namespace, procedure_id)

    def merge_provenance(self, namespace: str, procedure_id: str, trajectory: Trajectory,
                         *, similarity: float) -> Procedure:
        with self._write() as db:
            row = self._head_row(namespace, procedure_id, db, lock=True)
            db.execute("UPDATE memp_procedures SET body=%s WHERE namespace=%s AND id=%s AND version=%s",
                       (merged_provenance(row[7], trajectory), namespace, procedure_id, row[2]))
            self._event(db, Event(namespace=namespace, procedure_id=procedure_id, version=row[2],
                                  kind="merged", trajectory_id=trajectory.id,
                                  detail={"similarity": round(similarity, 6)}))
        return self.get(namespace, procedure_id)

    # -- trajectories and events -----------------------------------------------------------

    def add_trajectory(self, namespace: str, trajectory: Trajectory) -> None:
        check_namespace(namespace)
        with self._write() as db:
            self._upsert_trajectory(db, namespace, trajectory)

    @staticmethod
    def _upsert_trajectory(db: psycopg.Connection, namespace: str, trajectory: Trajectory) -> None:
        db.execute("INSERT INTO memp_trajectories VALUES (%s,%s,%s) "
                   "ON CONFLICT (namespace, id) DO UPDATE SET body = EXCLUDED.body",
                   (namespace, trajectory.id, trajectory.model_dump_json()))

    def get_trajectory(self, namespace: str, trajectory_id: str) -> Trajectory:
        rows = self._read("SELECT body FROM memp_trajectories WHERE namespace=%s AND id=%s",
                          (namespace, trajectory_id))
        if not rows:
            raise ProcedureNotFoundError(f"no trajectory {trajectory_id!r} in namespace {namespace!r}")
        return Trajectory.model_validate_json(rows[0][0])

    def events(self, namespace: str, procedure_id: str | None = None, *, kind: str | None = None,
               newest_first: bool = False, limit: int | None = None, offset: int = 0) -> list[Event]:
        check_event_kind(kind)
        check_page(limit, offset)
        where, params = where_equal({"namespace": namespace, "procedure_id": procedure_id, "kind": kind}, "%s")
        rows = self._read(f"SELECT {EVENT_COLUMNS} FROM memp_events WHERE {where} "
                          f"ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT %s OFFSET %s",
                          [*params, limit, offset])  # LIMIT NULL: no limit
        return [event_from_row(r) for r in rows]

    def count_events(self, namespace: str, procedure_id: str | None = None, *,
                     kind: str | None = None) -> int:
        check_event_kind(kind)
        where, params = where_equal({"namespace": namespace, "procedure_id": procedure_id, "kind": kind}, "%s")
        return self._read(f"SELECT COUNT(*) FROM memp_events WHERE {where}", params)[0][0]

    def namespaces(self) -> list[str]:
        rows = self._read("SELECT DISTINCT namespace FROM memp_procedures UNION "
                          "SELECT DISTINCT namespace FROM memp_trajectories ORDER BY 1")
        return [r[0] for r in rows]

    # -- export / import -------------------------------------------------------------------

    def export_records(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        spaces = [namespace] if namespace else self.namespaces()
        yield {"type": EXPORT_FORMAT, "version": EXPORT_VERSION, "schema": SCHEMA_VERSION}
        for ns in spaces:
            for (body,) in self._read(
                    "SELECT body FROM memp_trajectories WHERE namespace=%s ORDER BY id", (ns,)):
                yield {"type": "trajectory", "namespace": ns, "trajectory": json.loads(body)}
            for row in self._read(_SELECT + " WHERE namespace=%s ORDER BY id, version", (ns,)):
                p = self._to_procedure(row)
                yield {"type": "procedure", "head": bool(row[3]), "procedure": p.model_dump(mode="json")}
            for e in self.events(ns):
                yield {"type": "event", "event": e.model_dump(mode="json", exclude={"seq"})}

    def import_records(self, records: Iterable[dict[str, Any]], *, namespace: str | None = None) -> dict[str, int]:
        parsed = parse_export(records, namespace)
        with self._write() as db:
            for ns, t in parsed["trajectories"]:
                self._upsert_trajectory(db, ns, t)
            for p, head in parsed["procedures"]:
                exists = db.execute(
                    "SELECT 1 FROM memp_procedures WHERE namespace=%s AND id=%s AND version=%s",
                    (p.namespace, p.id, p.version)).fetchone()
                if exists:
                    raise already_stored(p)
                if head:
                    db.execute("UPDATE memp_procedures SET is_head=false WHERE namespace=%s AND id=%s",
                               (p.namespace, p.id))
                self._insert_procedure(db, p, is_head=head)
            for e in parsed["events"]:
                self._event(db, e)
        return {k: len(v) for k, v in parsed.items()}


def _array(value: Any) -> np.ndarray:
    """A float32 array from what pgvector hands back (a Vector object, or an array)."""
    to_numpy = getattr(value, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy else value, dtype=np.float32)


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the given URL"
    info.pop("password", None)
    return " ".join(f"{k}={v}" for k, v in sorted(info.items()))
