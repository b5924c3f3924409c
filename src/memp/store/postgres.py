"""PostgresStore: one procedural memory shared by many agent processes on many machines.

PostgreSQL with pgvector, through psycopg 3. The queries are the SQL core's (``memp.store.sql``),
the same as the SQLite store's; the tables mirror SQLite's with a ``memp_`` prefix, which keeps
them apart from whatever else lives in the database. This module connects, keeps the schema, and
searches through pgvector's index:

- Every write transaction first locks the generation row in ``memp_meta``. That row lock
  serialises writers (as SQLite's single writer does), so every write reads what it changes
  under the lock, across machines, without retry loops, and no two writes can deadlock on it.
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

from typing import Any

import numpy as np

from memp._errors import InvalidInputError, StoreCorruptError, StoreError, StoreVersionError
from memp.store.base import Ref
from memp.store.sql import Dialect, SQLStore, first_schema

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
    first_schema(
        "memp_", counter="BIGINT", boolean="BOOLEAN", vector="vector", time="TIMESTAMPTZ",
        serial_key="BIGSERIAL PRIMARY KEY", zero="0", before="CREATE EXTENSION IF NOT EXISTS vector;\n    ",
        procedure_columns="\n        dim INTEGER,", row_column="\n        seq BIGSERIAL,",
        keyword_index="\n    CREATE INDEX memp_keyword_vectors_field ON memp_keyword_vectors (namespace, field);"),
]
SCHEMA_VERSION = len(MIGRATIONS)

# An arbitrary constant: the advisory lock that keeps two processes from migrating at once.
_MIGRATION_LOCK = 0x6D656D70

POSTGRES = Dialect(prefix="memp_", placeholder="%s", row_order="seq", builder="(body::json)->>'builder'",
                   no_limit=None)


class PostgresStore(SQLStore):
    """A Store in a PostgreSQL database with the pgvector extension."""

    dialect = POSTGRES
    SCHEMA_VERSION = SCHEMA_VERSION

    def __init__(self, url: str, *, ef_search: int = 100, connect_timeout: int = 10,
                 read_only: bool = False) -> None:
        """``read_only=True``: never create or change anything; the memp tables must exist."""
        super().__init__(read_only=read_only)
        self.url = url
        self.ef_search = ef_search
        self._indexed_dims: set[int] = set()
        self._new_dims: set[int] = set()
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.OperationalError as err:
            raise StoreError(
                f"cannot connect to PostgreSQL at {_redact(url)} ({str(err).strip()}); "
                "check that the server runs and the URL, user and password are right"
            ) from None
        try:
            self._db.execute("SET TIME ZONE 'UTC'")
            if read_only:
                self._db.execute("SET default_transaction_read_only = on")
            self._migrate()
            register_vector(self._db)
        except BaseException:
            self._db.close()
            raise

    # -- the SQL core's hooks --------------------------------------------------------------

    def _begin(self) -> None:
        self._new_dims = set()
        self._execute("BEGIN")
        try:
            self._execute("SELECT value FROM meta WHERE key='generation' FOR UPDATE")
        except BaseException:
            self._execute("ROLLBACK")
            raise

    def _executemany(self, query: str, rows: list[tuple]) -> None:
        with self._db.cursor() as cur:
            cur.executemany(self.dialect.sql(query), rows)

    def _vector_in(self, vector: list[float] | np.ndarray) -> np.ndarray:
        return np.asarray(vector, dtype=np.float32)

    def _vector_out(self, value: Any) -> np.ndarray:
        return _array(value)

    def _refusal(self, err: BaseException) -> BaseException:
        if isinstance(err, psycopg.errors.DataError):
            # e.g. a NUL character in an id: PostgreSQL text cannot hold it; nothing was written.
            return InvalidInputError(
                f"PostgreSQL refused a value ({str(err).strip()}); remove NUL characters from "
                "ids, task types and other short fields")
        return err

    def _inserting(self, p, size: int | None) -> None:
        if p.embedding is not None and size is not None:
            self._ensure_index(size)

    def _committed(self) -> None:
        # Only a committed CREATE INDEX counts; a rolled-back one is retried on the next write.
        self._indexed_dims |= self._new_dims

    def _name(self) -> str:
        return _redact(self.url)

    # -- schema ------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._lock, self._db.transaction():
            tables = {r[0] for r in self._db.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
            if self.read_only and "memp_meta" not in tables:
                raise StoreError(f"{_redact(self.url)} holds no memp memory; write to it once to create one")
            if not self.read_only:
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
            if self.read_only:
                return
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

    def _ensure_index(self, dim: int) -> None:
        if dim in self._indexed_dims or dim in self._new_dims:
            return
        if dim > 2000:  # pgvector 0.6 cannot index more dimensions; search falls back to a scan
            return
        # Another process may be creating the same index: the advisory lock makes them take turns.
        self._db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_MIGRATION_LOCK, dim))
        self._db.execute(sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON memp_procedures USING hnsw "
            "((embedding::vector({dim})) vector_cosine_ops) "
            "WHERE dim = {dim} AND is_head AND status = 'active'"
        ).format(name=sql.Identifier(f"memp_procedures_hnsw_{dim}"), dim=sql.Literal(dim)))
        self._new_dims.add(dim)

    # -- search ------------------------------------------------------------------------------

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
            + self.dialect.sql(self._lineage_order) + " FROM memp_procedures p WHERE "
            + where + " ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT %s"
        ).format(dim=sql.Literal(dim))
        with self._lock, self._db.transaction():  # a savepoint inside a write: it sees the write's rows
            self._db.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(
                sql.Literal(max(self.ef_search, k))))
            rows = self._db.execute(indexed, (query, namespace, dim, query, k)).fetchall()
            if len(rows) < k:
                total = self._db.execute(
                    "SELECT COUNT(*) FROM memp_procedures WHERE " + where, (namespace, dim)).fetchone()[0]
                if total > len(rows):
                    self._db.execute("SET LOCAL enable_indexscan = off")
                    rows = self._db.execute(indexed, (query, namespace, dim, query, k)).fetchall()
                    self._db.execute("SET LOCAL enable_indexscan = on")  # the rest of a write needs it
        # Ties break on lineage order, as in VectorTable.top, so both backends order alike.
        rows.sort(key=lambda r: (-float(r[2]), r[3]))
        return [((r[0], r[1]), float(r[2])) for r in rows]


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
