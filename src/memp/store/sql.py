"""SQLStore: the one SQL core of the SQLite and PostgreSQL stores.

Every query is written once, in SQLite's spelling: ``?`` placeholders and bare table names. A
backend's ``Dialect`` rewrites them for its database (PostgreSQL: ``%s`` and a ``memp_`` prefix)
and names the few expressions that differ. A backend class adds only what is its own: connecting,
its schema and migrations, how a write transaction starts, and how vectors travel.

Writes run in one transaction each (``atomic``), and a block of writes can share one:

- it starts by taking the database's single writer lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
  a row lock on the generation counter), so every write reads the state it changes inside that
  lock: no read-modify-write can interleave with another process's;
- it ends by bumping the generation counter, which tells caches in other processes to reload;
- nested blocks become savepoints: a refused inner write leaves the outer one going.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from memp._errors import ProcedureNotFoundError, StoreError
from memp.store.base import (
    EVENT_COLUMNS,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    Facets,
    Order,
    Ref,
    Sort,
    VectorTable,
    already_stored,
    carried_over,
    check_event_kind,
    check_namespace,
    check_next_version,
    check_page,
    check_status,
    check_vector_size,
    event_from_row,
    keyword_field,
    list_order,
    merged_provenance,
    no_procedure,
    parse_export,
    procedure_body,
    procedure_from_row,
    status_change,
    trajectory_conflict,
    vector_size,
    where_equal,
)
from memp.store.vectors import VectorCache, VectorRow
from memp.types import Event, Procedure, ProcedureStats, ProcedureStatus, Trajectory

_TABLES = re.compile(r"\b(procedures|keyword_vectors|trajectories|events|meta)\b")

# The columns every procedure query reads, in the order procedure_from_row's caller unpacks.
_COLUMNS = "namespace, id, version, is_head, status, uses, successes, body, embedding"
_PROCEDURE = f"SELECT {_COLUMNS} FROM procedures"
# The same columns with the key vector left unread, for procedures read without their vectors.
_PROCEDURE_BARE = "SELECT namespace, id, version, is_head, status, uses, successes, body, NULL FROM procedures"
_REFS_PER_READ = 400  # (id, version) pairs per read: at most 1,201 parameters, far below either database's limit
# The head of one lineage. The cast keeps SQLite on the primary key (namespace, id): without
# table statistics it would pick procedures_heads and walk every head of the namespace (20 ms
# instead of 0.02 ms at 10k procedures). PostgreSQL takes the primary key either way.
_ONE_HEAD = "namespace=? AND id=? AND CAST(is_head AS INTEGER)=1"


# Schema version 1 of both stores, written once; a backend names its types and adds its extras.
_FIRST_SCHEMA = """
    {before}CREATE TABLE {p}meta (key TEXT PRIMARY KEY, value {counter} NOT NULL);
    CREATE TABLE {p}procedures (
        namespace TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        is_head {boolean} NOT NULL,
        status TEXT NOT NULL,
        task_type TEXT,
        uses INTEGER NOT NULL DEFAULT 0,
        successes INTEGER NOT NULL DEFAULT 0,
        body TEXT NOT NULL,
        embedding {vector},{procedure_columns}
        updated_at {time} NOT NULL,{row_column}
        PRIMARY KEY (namespace, id, version)
    );
    CREATE INDEX {p}procedures_heads ON {p}procedures (namespace, is_head, status, updated_at);
    CREATE TABLE {p}keyword_vectors (
        namespace TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
        field TEXT NOT NULL, vector {vector} NOT NULL,
        PRIMARY KEY (namespace, id, version, field)
    );{keyword_index}
    CREATE TABLE {p}trajectories (
        namespace TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (namespace, id)
    );
    CREATE TABLE {p}events (
        seq {serial_key},
        namespace TEXT NOT NULL, procedure_id TEXT NOT NULL, version INTEGER NOT NULL,
        kind TEXT NOT NULL, trajectory_id TEXT, detail TEXT NOT NULL, at {time} NOT NULL
    );
    CREATE INDEX {p}events_procedure ON {p}events (namespace, procedure_id, seq);
    INSERT INTO {p}meta VALUES ('generation', {zero});
    """


def first_schema(prefix: str = "", *, counter: str, boolean: str, vector: str, time: str, serial_key: str,
                 zero: str, before: str = "", procedure_columns: str = "", row_column: str = "",
                 keyword_index: str = "") -> str:
    """The statements of schema version 1 in one backend's types (extras are whole lines)."""
    return _FIRST_SCHEMA.format(p=prefix, counter=counter, boolean=boolean, vector=vector, time=time,
                                serial_key=serial_key, zero=zero, before=before,
                                procedure_columns=procedure_columns, row_column=row_column,
                                keyword_index=keyword_index)


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL of two databases, as far as the stores go."""

    prefix: str = ""  # before every table name
    placeholder: str = "?"
    row_order: str = "rowid"  # a column that grows with every row inserted
    builder: str = "json_extract(body, '$.builder')"  # the builder field of a JSON body
    no_limit: int | None = -1  # the LIMIT that means "all rows"
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def sql(self, query: str) -> str:
        """The query in this dialect's spelling."""
        done = self._cache.get(query)
        if done is None:
            done = query
            if self.prefix:
                done = _TABLES.sub(lambda m: self.prefix + m.group(1), done)
            if self.placeholder != "?":
                done = done.replace("%", "%%").replace("?", self.placeholder)
            self._cache[query] = done
        return done


class SQLStore:
    """Everything of a Store that is plain SQL. Backends set ``dialect`` and fill in the hooks."""

    dialect = Dialect()
    SCHEMA_VERSION = 0

    def __init__(self, *, read_only: bool = False) -> None:
        self.read_only = read_only
        self._lock = threading.RLock()
        self._vectors = VectorCache(self._vector_rows)
        self._depth = 0  # write transactions open on this connection: 0, 1, or more when nested
        # The lineages each recent commit of this object changed, by generation: an index that
        # saw generation g catches up by re-reading only those, unless another process wrote.
        self._commits: deque[tuple[int, dict[str, set[str]]]] = deque(maxlen=256)
        # Lineage order, as a column of p: ids are random, so ordering (and breaking score ties)
        # by insertion keeps runs with the same seed identical.
        self._lineage_order = (f"(SELECT MIN(q.{self.dialect.row_order}) FROM procedures q "
                               "WHERE q.namespace = p.namespace AND q.id = p.id)")

    # -- what a backend provides --------------------------------------------------------------

    _db: Any  # a DB-API connection in autocommit mode

    def _begin(self) -> None:
        """Open a transaction holding the database's one writer lock."""
        raise NotImplementedError

    def _executemany(self, query: str, rows: list[tuple]) -> None:
        raise NotImplementedError

    def _vector_in(self, vector: list[float] | np.ndarray) -> Any:
        raise NotImplementedError

    def _vector_out(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def _time_in(self, at: datetime) -> Any:
        return at

    def _refusal(self, err: BaseException) -> BaseException:
        """The error to raise for a failed write (a backend maps its database's errors)."""
        return err

    def _inserting(self, p: Procedure, size: int | None) -> None:
        """Called before a procedure row is written, inside the transaction."""

    def _committed(self) -> None:
        """Called after a write transaction committed."""

    # -- plumbing -----------------------------------------------------------------------------

    def _execute(self, query: str, params: tuple | list = ()) -> Any:
        return self._db.execute(self.dialect.sql(query), params)

    def _read(self, query: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock:
            return self._execute(query, params).fetchall()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One write transaction around the block: all its writes are stored, or none.

        Writes inside it join it (a nested block is a savepoint), reads inside it see them, and
        other writers wait until it ends: keep model calls and other slow work outside.
        """
        if self.read_only:
            raise StoreError(f"{self._name()} was opened read-only; open it without read_only to change it")
        with self._lock:
            outer = self._depth == 0
            savepoint = f"memp_{self._depth}"
            if outer:
                self._begin()
            else:
                self._execute(f"SAVEPOINT {savepoint}")
            self._depth += 1
            try:
                yield
                generation = self._bump() if outer else None
            except BaseException as err:
                self._depth -= 1
                if outer:
                    self._execute("ROLLBACK")
                    self._vectors.rolled_back()
                else:
                    self._execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    self._execute(f"RELEASE SAVEPOINT {savepoint}")
                    self._vectors.part_rolled_back()
                refusal = self._refusal(err)
                if refusal is err:
                    raise
                raise refusal from None
            self._depth -= 1
            if not outer:
                self._execute(f"RELEASE SAVEPOINT {savepoint}")
                return
            try:
                self._execute("COMMIT")
            except BaseException:
                self._vectors.rolled_back()
                raise
            self._commits.append((generation, self._vectors.pending()))
            self._vectors.committed(generation)
            self._committed()

    def _bump(self) -> int:
        self._execute("UPDATE meta SET value = value + 1 WHERE key='generation'")
        # Read back, not RETURNING: that needs SQLite 3.35, newer than some systems have.
        return int(self._execute("SELECT value FROM meta WHERE key='generation'").fetchone()[0])

    def generation(self) -> int:
        return int(self._read("SELECT value FROM meta WHERE key='generation'")[0][0])

    def changed_since(self, generation: int, now: int) -> dict[str, set[str]] | None:
        """The lineages, per namespace, that this object's commits changed after ``generation`` up
        to ``now``; None if some commit in between was not its own (or is too old to remember)."""
        changed: dict[str, set[str]] = {}
        expected = generation + 1
        for committed, lineages in self._commits:
            if committed <= generation:
                continue
            if committed != expected or committed > now:
                return None
            for namespace, ids in lineages.items():
                changed.setdefault(namespace, set()).update(ids)
            expected += 1
        return changed if expected == now + 1 else None

    def schema_version(self) -> int:
        return int(self._read("SELECT value FROM meta WHERE key='schema_version'")[0][0])

    def _name(self) -> str:
        return "the store"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- rows <-> models ----------------------------------------------------------------------

    def _procedure(self, row: tuple, with_vectors: bool = True, keyword_rows: list | None = None) -> Procedure:
        """The procedure of a row; its keyword vectors are read unless ``keyword_rows`` holds them."""
        namespace, pid, version, _head, status, uses, successes, body, embedding = row
        if not with_vectors:
            return procedure_from_row(namespace, pid, version, status, uses, successes, body)
        if keyword_rows is None:
            keyword_rows = self._read("SELECT field, vector FROM keyword_vectors WHERE namespace=? AND id=? "
                                      "AND version=?", (namespace, pid, version))
        return procedure_from_row(namespace, pid, version, status, uses, successes, body,
                                  None if embedding is None else self._vector_out(embedding),
                                  {f: self._vector_out(v) for f, v in keyword_rows})

    def _insert_procedure(self, p: Procedure, is_head: bool) -> None:
        size = vector_size(p)
        check_vector_size(p, size, self._namespace_vector_size(p.namespace))
        self._inserting(p, size)
        self._vectors.touch(p.namespace, p.id)
        self._execute(
            "INSERT INTO procedures (namespace, id, version, is_head, status, task_type, uses, successes, "
            "body, embedding, dim, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (p.namespace, p.id, p.version, is_head, p.status, p.task_type, p.stats.uses, p.stats.successes,
             procedure_body(p), None if p.embedding is None else self._vector_in(p.embedding),
             None if p.embedding is None else size, self._time_in(p.updated_at)))
        if p.keyword_embeddings:
            self._executemany("INSERT INTO keyword_vectors VALUES (?,?,?,?,?)",
                              [(p.namespace, p.id, p.version, f, self._vector_in(v))
                               for f, v in p.keyword_embeddings.items()])

    def _namespace_vector_size(self, namespace: str) -> int | None:
        """The size of the vectors already in a namespace (all share one), None if it has none."""
        row = self._execute("SELECT dim FROM procedures WHERE namespace=? AND dim IS NOT NULL LIMIT 1",
                            (namespace,)).fetchone()
        if row is not None:
            return row[0]
        row = self._execute("SELECT vector FROM keyword_vectors WHERE namespace=? LIMIT 1", (namespace,)).fetchone()
        return None if row is None else len(self._vector_out(row[0]))

    def _event(self, e: Event) -> None:
        self._execute(
            "INSERT INTO events (namespace, procedure_id, version, kind, trajectory_id, detail, at)"
            " VALUES (?,?,?,?,?,?,?)",
            (e.namespace, e.procedure_id, e.version, e.kind, e.trajectory_id,
             json.dumps(e.detail, sort_keys=True), self._time_in(e.at)))

    def _head_row(self, namespace: str, procedure_id: str) -> tuple:
        rows = self._read(f"{_PROCEDURE} WHERE {_ONE_HEAD}", (namespace, procedure_id))
        if not rows:
            raise no_procedure(namespace, procedure_id)
        return rows[0]

    # -- procedures ---------------------------------------------------------------------------

    def put(self, procedure: Procedure, *, event: str = "created", trajectory_id: str | None = None,
            detail: dict[str, Any] | None = None) -> Procedure:
        check_namespace(procedure.namespace)
        ns, pid = procedure.namespace, procedure.id
        with self.atomic():
            head = self._execute(f"SELECT version, body, uses, successes FROM procedures WHERE {_ONE_HEAD}",
                                 (ns, pid)).fetchone()
            check_next_version(procedure, None if head is None else head[0])
            if head is not None:
                procedure = carried_over(procedure, head[1], head[2], head[3])
                self._execute("UPDATE procedures SET is_head=FALSE WHERE namespace=? AND id=?", (ns, pid))
            self._insert_procedure(procedure, is_head=True)
            self._event(Event(namespace=ns, procedure_id=pid, version=procedure.version,
                              kind=event, trajectory_id=trajectory_id, detail=detail or {}))
        return procedure

    def get(self, namespace: str, procedure_id: str, version: int | None = None) -> Procedure:
        if version is None:
            return self._procedure(self._head_row(namespace, procedure_id))
        rows = self._read(f"{_PROCEDURE} WHERE namespace=? AND id=? AND version=?",
                          (namespace, procedure_id, version))
        if not rows:
            raise no_procedure(namespace, procedure_id, version)
        return self._procedure(rows[0])

    def get_many(self, namespace: str, refs: list[Ref], *, vectors: bool = True) -> list[Procedure]:
        found: dict[Ref, Procedure] = {}
        unique = list(dict.fromkeys(refs))
        for start in range(0, len(unique), _REFS_PER_READ):
            found.update(self._read_refs(namespace, unique[start:start + _REFS_PER_READ], vectors))
        for pid, version in refs:
            if (pid, version) not in found:
                raise no_procedure(namespace, pid, version)
        return [found[ref] for ref in refs]

    def _read_refs(self, namespace: str, refs: list[Ref], vectors: bool) -> dict[Ref, Procedure]:
        """Procedures by (id, version) in two reads, rows and keyword vectors, where reading them
        one by one took two each (20 round trips to PostgreSQL for a retrieval's 10 hits)."""
        ids = list(dict.fromkeys(pid for pid, _ in refs))
        # "id IN" keeps SQLite on the primary key (namespace, id); the pairs alone made it scan.
        where = (f"namespace=? AND id IN ({','.join('?' * len(ids))}) "
                 f"AND (id, version) IN (VALUES {','.join('(?,?)' for _ in refs)})")
        params = [namespace, *ids, *(x for ref in refs for x in ref)]
        if not vectors:
            rows = self._read(f"{_PROCEDURE_BARE} WHERE {where}", params)
            return {(r[1], r[2]): self._procedure(r, with_vectors=False) for r in rows}
        with self._lock:  # one snapshot for both reads
            rows = self._execute(f"{_PROCEDURE} WHERE {where}", params).fetchall()
            keywords = self._execute(f"SELECT id, version, field, vector FROM keyword_vectors WHERE {where}",
                                     params).fetchall()
        by_ref: dict[Ref, list] = {}
        for pid, version, field, vector in keywords:
            by_ref.setdefault((pid, version), []).append((field, vector))
        return {(r[1], r[2]): self._procedure(r, keyword_rows=by_ref.get((r[1], r[2]), [])) for r in rows}

    def history(self, namespace: str, procedure_id: str) -> list[Procedure]:
        rows = self._read(f"{_PROCEDURE_BARE} WHERE namespace=? AND id=? ORDER BY version", (namespace, procedure_id))
        if not rows:
            self._head_row(namespace, procedure_id)  # raises the helpful error
        return [self._procedure(r, with_vectors=False) for r in rows]

    def _heads(self, namespace: str, status: str | None, task_type: str | None, builder: str | None):
        where, params = where_equal({"namespace": namespace, "status": status, "task_type": task_type,
                                     self.dialect.builder: builder}, "?")
        return f"{where} AND is_head=TRUE", params

    def list(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
             builder: str | None = None, sort: Sort = "updated", order: Order = "desc",
             limit: int = 50, offset: int = 0) -> list[Procedure]:
        check_page(limit, offset)
        where, params = self._heads(namespace, status, task_type, builder)
        rows = self._read(f"{_PROCEDURE_BARE} WHERE {where} ORDER BY {list_order(sort, order)} LIMIT ? OFFSET ?",
                          [*params, limit, offset])
        return [self._procedure(r, with_vectors=False) for r in rows]

    def count(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
              builder: str | None = None) -> int:
        where, params = self._heads(namespace, status, task_type, builder)
        return self._read(f"SELECT COUNT(*) FROM procedures WHERE {where}", params)[0][0]

    def facets(self, namespace: str, limit: int = 200) -> Facets:
        heads, builder = "FROM procedures WHERE namespace=? AND is_head=TRUE", self.dialect.builder
        task_types = self._read(f"SELECT DISTINCT task_type {heads} AND task_type IS NOT NULL "
                                "ORDER BY 1 LIMIT ?", (namespace, limit))
        builders = self._read(f"SELECT DISTINCT {builder} {heads} AND {builder} IS NOT NULL "
                              "ORDER BY 1 LIMIT ?", (namespace, limit))
        return Facets([r[0] for r in task_types], [r[0] for r in builders])

    def refs(self, namespace: str) -> list[Ref]:
        rows = self._read("SELECT id, version FROM procedures p WHERE namespace=? AND is_head=TRUE "
                          f"AND status='active' ORDER BY {self._lineage_order}", (namespace,))
        return [(r[0], r[1]) for r in rows]

    def vectors(self, namespace: str, field: str = "key") -> VectorTable:
        keyword_field(field)  # a bad field fails here, before any cache is touched
        with self._lock:
            return self._vectors.table(namespace, field, self.generation(), writing=self._depth > 0)

    def _vector_rows(self, namespace: str, field: str, ids: list[str] | None) -> list[VectorRow]:
        keyword = keyword_field(field)
        # For a few lineages, the casts keep SQLite on the primary key, as in _ONE_HEAD.
        active = ("p.is_head=TRUE AND p.status='active'" if ids is None
                  else "CAST(p.is_head AS INTEGER)=1 AND p.status || ''='active'")
        if keyword is None:
            query = (f"SELECT p.id, p.version, {self._lineage_order}, p.embedding FROM procedures p "
                     f"WHERE p.namespace=? AND {active} AND p.embedding IS NOT NULL")
            params: list = [namespace]
        else:
            query = (f"SELECT k.id, k.version, {self._lineage_order}, k.vector FROM keyword_vectors k "
                     "JOIN procedures p ON p.namespace=k.namespace AND p.id=k.id AND p.version=k.version "
                     f"WHERE k.namespace=? AND k.field=? AND {active}")
            params = [namespace, keyword]
        if ids is not None:
            query += f" AND p.id IN ({','.join('?' * len(ids))})"
            params += ids
        rows = self._read(query + " ORDER BY 3", params)
        return [VectorRow(r[0], r[1], r[2], self._vector_out(r[3])) for r in rows]

    def key_rows(self, namespace: str, ids: list[str] | None, chunk: int
                 ) -> Iterator[tuple[list[str], list[int], list[int], np.ndarray]]:
        """The active heads' key vectors, ``chunk`` rows at a time, as (lineage ids, versions,
        lineage positions, float32 matrix): all of the namespace's (in no particular order) when
        ``ids`` is None, else those of these lineages. Streamed, so an index can be built from a
        million rows without the whole matrix in memory."""
        columns = f"SELECT p.id, p.version, {self._lineage_order}, p.embedding FROM procedures p "
        if ids is None:
            # In file order: through the heads index SQLite would fetch the rows in updated_at
            # order, a random read each (1.4 MB/s from a cold cache at a million rows, not one
            # sequential pass); the "|| ''" keeps it off that index.
            with self._lock:
                cursor = self._execute(columns + "WHERE p.namespace || ''=? AND p.is_head=TRUE AND "
                                       "p.status='active' AND p.embedding IS NOT NULL", (namespace,))
                while rows := cursor.fetchmany(chunk):
                    yield self._key_chunk(rows)
            return
        for lo in range(0, len(ids), 500):
            some = ids[lo:lo + 500]
            # The casts keep SQLite on the primary key, as in _ONE_HEAD.
            rows = self._read(columns + "WHERE p.namespace=? AND CAST(p.is_head AS INTEGER)=1 AND "
                              "p.status || ''='active' AND p.embedding IS NOT NULL "
                              f"AND p.id IN ({','.join('?' * len(some))})", [namespace, *some])
            if rows:
                yield self._key_chunk(rows)

    def _key_chunk(self, rows: list[tuple]) -> tuple[list[str], list[int], list[int], np.ndarray]:
        return ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                np.stack([self._vector_out(r[3]) for r in rows]))

    def ids_with_prefix(self, namespace: str, prefix: str, limit: int = 2) -> list[str]:
        rows = self._read("SELECT DISTINCT id FROM procedures WHERE namespace=? "
                          "AND substr(id, 1, CAST(? AS INTEGER)) = ? ORDER BY id LIMIT ?",
                          (namespace, len(prefix), prefix, limit))
        return [r[0] for r in rows]

    # -- feedback -----------------------------------------------------------------------------

    def record_use(self, namespace: str, procedure_id: str, version: int, *, success: bool,
                   trajectory_id: str | None = None) -> ProcedureStats:
        with self.atomic():
            if self._execute("SELECT 1 FROM procedures WHERE namespace=? AND id=? AND version=?",
                             (namespace, procedure_id, version)).fetchone() is None:
                raise ProcedureNotFoundError(
                    f"procedure {procedure_id!r} v{version} not found in namespace {namespace!r}")
            # The head carries the lineage's statistics (a revision took them over when it was
            # written), so a use of an older version, retrieved before the revision, counts there too.
            self._execute("UPDATE procedures SET uses = uses + 1, successes = successes + ? "
                          "WHERE namespace=? AND id=? AND (version=? OR is_head=TRUE)",
                          (int(success), namespace, procedure_id, version))
            uses, successes = self._execute(
                "SELECT uses, successes FROM procedures WHERE namespace=? AND id=? AND version=?",
                (namespace, procedure_id, version)).fetchone()
            self._event(Event(namespace=namespace, procedure_id=procedure_id, version=version, kind="used",
                              trajectory_id=trajectory_id, detail={"success": bool(success)}))
        return ProcedureStats(uses=uses, successes=successes)

    def set_status(self, namespace: str, procedure_id: str, status: ProcedureStatus, *, reason: str,
                   detail: dict[str, Any] | None = None) -> Procedure:
        check_status(status)
        with self.atomic():
            # Read inside the transaction: the evidence must be the counts this change replaces.
            row = self._head_row(namespace, procedure_id)
            version, old_status, uses, successes, body = row[2], row[4], row[5], row[6], row[7]
            change = status_change(procedure_id, body, old_status, status, reason=reason, uses=uses,
                                   successes=successes, detail=detail)
            self._vectors.touch(namespace, procedure_id)
            # Restoring starts a fresh evidence window; the old counts stay in the event log.
            reset = ", uses=0, successes=0" if status == "active" else ""
            self._execute(f"UPDATE procedures SET status=?, body=?, updated_at=?{reset} "
                          "WHERE namespace=? AND id=? AND version=?",
                          (status, change.body, self._time_in(change.updated_at), namespace, procedure_id,
                           version))
            self._event(Event(namespace=namespace, procedure_id=procedure_id, version=version,
                              kind=change.event, detail=change.evidence))
            return self.get(namespace, procedure_id)

    def merge_provenance(self, namespace: str, procedure_id: str, trajectory: Trajectory,
                         *, similarity: float) -> Procedure:
        with self.atomic():
            row = self._head_row(namespace, procedure_id)  # inside: no merge overwrites another
            self._execute("UPDATE procedures SET body=? WHERE namespace=? AND id=? AND version=?",
                          (merged_provenance(row[7], trajectory), namespace, procedure_id, row[2]))
            self._event(Event(namespace=namespace, procedure_id=procedure_id, version=row[2], kind="merged",
                              trajectory_id=trajectory.id, detail={"similarity": round(similarity, 6)}))
            return self.get(namespace, procedure_id)

    # -- trajectories and events ----------------------------------------------------------------

    def add_trajectory(self, namespace: str, trajectory: Trajectory) -> bool:
        """Store a run (True if new); the same run again changes nothing, another run under its id is refused."""
        check_namespace(namespace)
        with self.atomic():
            return self._insert_trajectory(namespace, trajectory)

    def _insert_trajectory(self, namespace: str, trajectory: Trajectory) -> bool:
        row = self._execute("SELECT body FROM trajectories WHERE namespace=? AND id=?",
                            (namespace, trajectory.id)).fetchone()
        if row is None:
            self._execute("INSERT INTO trajectories VALUES (?,?,?)",
                          (namespace, trajectory.id, trajectory.model_dump_json()))
            return True
        if Trajectory.model_validate_json(row[0]) != trajectory:
            raise trajectory_conflict(namespace, trajectory.id)
        return False

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
                          [*params, self.dialect.no_limit if limit is None else limit, offset])
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

    # -- export / import ----------------------------------------------------------------------

    def export_records(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        spaces = [namespace] if namespace else self.namespaces()
        yield {"type": EXPORT_FORMAT, "version": EXPORT_VERSION, "schema": self.SCHEMA_VERSION}
        for ns in spaces:
            for (body,) in self._read("SELECT body FROM trajectories WHERE namespace=? ORDER BY id", (ns,)):
                yield {"type": "trajectory", "namespace": ns, "trajectory": json.loads(body)}
            for row in self._read(f"{_PROCEDURE} WHERE namespace=? ORDER BY id, version", (ns,)):
                p = self._procedure(row)
                yield {"type": "procedure", "head": bool(row[3]), "procedure": p.model_dump(mode="json")}
            for e in self.events(ns):
                yield {"type": "event", "event": e.model_dump(mode="json", exclude={"seq"})}

    def import_records(self, records: Iterable[dict[str, Any]], *, namespace: str | None = None) -> dict[str, int]:
        parsed = parse_export(records, namespace)
        with self.atomic():
            for ns, t in parsed["trajectories"]:
                self._insert_trajectory(ns, t)
            for p, head in parsed["procedures"]:
                if self._execute("SELECT 1 FROM procedures WHERE namespace=? AND id=? AND version=?",
                                 (p.namespace, p.id, p.version)).fetchone():
                    raise already_stored(p)
                if head:
                    self._execute("UPDATE procedures SET is_head=FALSE WHERE namespace=? AND id=?",
                                  (p.namespace, p.id))
                self._insert_procedure(p, is_head=head)
            for e in parsed["events"]:
                self._event(e)
        return {k: len(v) for k, v in parsed.items()}
