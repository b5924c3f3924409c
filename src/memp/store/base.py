"""The Store protocol: where procedures, their versions, their history and their sources live.

A store keeps every version of every procedure (a *lineage* shares one id), the trajectories
they came from, and an append-only event log. Only the newest version of a lineage (its *head*)
is ever retrieved, and only while its status is ``active``. Nothing is deleted: revising writes a
new version, deprecating flips a status, and both are logged as events.

Every backend passes ``tests/store/contract.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, get_args

import numpy as np
from pydantic import ValidationError

from memp._errors import (
    InvalidInputError,
    NamespaceError,
    ProcedureNotFoundError,
    TrajectoryConflictError,
)
from memp.store.vectors import Ref, VectorTable
from memp.types import Event, Procedure, ProcedureStats, ProcedureStatus, Trajectory, utcnow

Sort = Literal["updated", "uses", "success_rate"]
Order = Literal["desc", "asc"]

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,199}$")

EXPORT_FORMAT = "memp-export"
EXPORT_VERSION = 1


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise NamespaceError(
            f"invalid namespace {namespace!r}: use 1-200 characters from letters, digits and "
            "_ . : / @ -, starting with a letter or digit"
        )
    return namespace


def nearest(store: Store, namespace: str, query: Any, k: int) -> list[tuple[Ref, float]]:
    """Top-k active heads by key similarity: the store's own ``search`` when it has one (an index
    in the database, or an ANN graph), else an exact scan of ``vectors``."""
    search = getattr(store, "search", None)
    if search is not None:
        return search(namespace, query, k)
    return store.vectors(namespace, "key").top(query, k)


@dataclass(frozen=True)
class Facets:
    """What the heads of a namespace can be filtered by, each list sorted."""

    task_types: list[str]
    builders: list[str]


class Store(Protocol):
    """What the rest of memp needs from a backend."""

    # -- transactions
    def atomic(self) -> AbstractContextManager[None]:
        """A block whose writes are stored all together or not at all; other writers wait for it.

        Every single write is atomic by itself; a block makes several one (an import of a batch,
        a duplicate check and the add it decides).
        """
        ...

    # -- procedures
    def put(self, procedure: Procedure, *, event: str = "created", trajectory_id: str | None = None,
            detail: dict[str, Any] | None = None) -> Procedure:
        """Insert version 1 of a new lineage, or the next version of an existing one; returns it as stored.

        The next version takes over the head's statistics, and the head's provenance joined with
        its own, as they are when the write runs: uses and merges since the caller read the head
        are kept. A version that does not follow the head is an ``InvalidInputError``, and so are
        vectors of another size than the namespace's, or holding NaN or infinity.
        """
        ...

    def get(self, namespace: str, procedure_id: str, version: int | None = None) -> Procedure: ...

    def get_many(self, namespace: str, refs: list[Ref], *, vectors: bool = True) -> list[Procedure]:
        """``get`` of each (id, version), in the order asked. ``vectors=False``: without their key
        and keyword vectors (what a retrieval's hits and most readers need), for a cheaper read."""
        ...

    def history(self, namespace: str, procedure_id: str) -> list[Procedure]: ...

    def list(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
             builder: str | None = None, sort: Sort = "updated", order: Order = "desc",
             limit: int = 50, offset: int = 0) -> list[Procedure]:
        """One page of the heads that pass every filter given, newest first or as ``sort`` says.

        ``success_rate`` puts never-used heads (they have no rate) last in either order; ties go
        to the newest, then by id. An unknown sort or order is an ``InvalidInputError``.
        """
        ...

    def count(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
              builder: str | None = None) -> int:
        """How many heads ``list`` pages through with the same filters."""
        ...

    def facets(self, namespace: str, limit: int = 200) -> Facets:
        """The distinct task types and builders of the heads, at most ``limit`` of each."""
        ...

    def refs(self, namespace: str) -> list[Ref]:
        """Refs of the active heads, in the order their lineages were first stored."""
        ...

    def vectors(self, namespace: str, field: str = "key") -> VectorTable:
        """Vectors of the active heads: 'key' (task description) or 'kw:<name>' (a keyword)."""
        ...

    def generation(self) -> int:
        """A number that changes whenever anything in the store changes (for caches)."""
        ...

    # -- feedback
    def record_use(self, namespace: str, procedure_id: str, version: int, *, success: bool,
                   trajectory_id: str | None = None) -> ProcedureStats:
        """Atomically count one use of that version (and of the lineage's head, which carries the
        lineage's statistics, when a newer version has replaced it); returns the version's statistics."""
        ...

    def set_status(self, namespace: str, procedure_id: str, status: ProcedureStatus, *, reason: str,
                   detail: dict[str, Any] | None = None) -> Procedure:
        """Deprecate or restore the head of a lineage."""
        ...

    def merge_provenance(self, namespace: str, procedure_id: str, trajectory: Trajectory,
                         *, similarity: float) -> Procedure:
        """Record that a trajectory produced a duplicate of this head."""
        ...

    # -- trajectories and events
    def add_trajectory(self, namespace: str, trajectory: Trajectory) -> bool:
        """Store a run; True if it was new. The same run again changes nothing and returns False;
        other content under a stored id is a ``TrajectoryConflictError`` and the stored run is kept."""
        ...

    def get_trajectory(self, namespace: str, trajectory_id: str) -> Trajectory: ...

    def events(self, namespace: str, procedure_id: str | None = None, *, kind: str | None = None,
               newest_first: bool = False, limit: int | None = None, offset: int = 0) -> list[Event]:
        """The log in the order it was written (or newest first), optionally one kind, paged."""
        ...

    def count_events(self, namespace: str, procedure_id: str | None = None, *,
                     kind: str | None = None) -> int: ...

    def namespaces(self) -> list[str]: ...

    # -- moving memory around
    def export_records(self, namespace: str | None = None) -> Iterator[dict[str, Any]]: ...

    def import_records(self, records: Iterable[dict[str, Any]], *, namespace: str | None = None) -> dict[str, int]:
        """Validate every record first; write all or nothing."""
        ...

    def close(self) -> None: ...


# -- what the SQL stores share -------------------------------------------------------------------

# Fields of a Procedure kept in their own columns (or tables) rather than in the JSON body.
STORED_APART = {"embedding", "keyword_embeddings", "stats", "status", "version", "id", "namespace"}
EVENT_COLUMNS = "seq, namespace, procedure_id, version, kind, trajectory_id, detail, at"
SORTS: tuple[str, ...] = get_args(Sort)
EVENT_KINDS: tuple[str, ...] = get_args(Event.model_fields["kind"].annotation)


def procedure_body(p: Procedure) -> str:
    return p.model_dump_json(exclude=STORED_APART)


def procedure_from_row(namespace: str, procedure_id: str, version: int, status: str, uses: int,
                       successes: int, body: str, embedding: np.ndarray | None = None,
                       keywords: dict[str, np.ndarray] | None = None) -> Procedure:
    """A Procedure from its columns and JSON body; vectors only when given (None: not read)."""
    data = json.loads(body)
    data.update(namespace=namespace, id=procedure_id, version=version, status=status,
                stats={"uses": uses, "successes": successes})
    procedure = Procedure.model_validate(data)
    vectors: dict[str, Any] = {}
    if embedding is not None:
        vectors["embedding"] = embedding.tolist()
    if keywords is not None:
        vectors["keyword_embeddings"] = {f: v.tolist() for f, v in keywords.items()}
    # The vectors were checked (size, finite) when stored; validating their floats again was a
    # fifth of reading a procedure with vectors (45.6 -> 36.9 us).
    return procedure.model_copy(update=vectors) if vectors else procedure


def event_from_row(row: tuple) -> Event:
    """An Event from the ``EVENT_COLUMNS`` of a row."""
    seq, namespace, procedure_id, version, kind, trajectory_id, detail, at = row
    return Event(seq=seq, namespace=namespace, procedure_id=procedure_id, version=version, kind=kind,
                 trajectory_id=trajectory_id, detail=json.loads(detail), at=at)


def where_equal(columns: dict[str, Any], placeholder: str) -> tuple[str, list]:
    """``a=? AND b=?`` over the columns whose value is not None, and those values in order."""
    given = {column: value for column, value in columns.items() if value is not None}
    return " AND ".join(f"{column}={placeholder}" for column in given) or "TRUE", list(given.values())


def list_order(sort: str, order: str) -> str:
    """The ORDER BY clause of ``Store.list``, valid SQL for both SQLite and PostgreSQL."""
    if sort not in SORTS:
        raise InvalidInputError(f"unknown sort {sort!r}; use one of: {', '.join(SORTS)}")
    if order not in ("desc", "asc"):
        raise InvalidInputError(f"unknown order {order!r}; use 'desc' or 'asc'")
    direction = order.upper()
    keys = {"updated": [f"updated_at {direction}"],
            "uses": [f"uses {direction}", "updated_at DESC"],
            # Never-used procedures have no rate: they go last whichever way the rest is sorted.
            "success_rate": ["(uses = 0) ASC",
                             f"CASE WHEN uses > 0 THEN CAST(successes AS REAL) / uses END {direction}",
                             "updated_at DESC"]}[sort]
    return ", ".join([*keys, "id"])


def check_page(limit: int | None, offset: int) -> None:
    if (limit is not None and limit < 0) or offset < 0:
        raise InvalidInputError(f"limit and offset must be ≥ 0, got limit={limit}, offset={offset}")


def check_event_kind(kind: str | None) -> None:
    if kind is not None and kind not in EVENT_KINDS:
        raise InvalidInputError(f"unknown event kind {kind!r}; use one of: {', '.join(EVENT_KINDS)}")


def keyword_field(field: str) -> str | None:
    """The keyword of a vector field ('kw:<keyword>'), or None for 'key'."""
    if field == "key":
        return None
    if field.startswith("kw:"):
        return field[3:]
    raise InvalidInputError(f"unknown vector field {field!r}; use 'key' or 'kw:<keyword>'")


def check_next_version(procedure: Procedure, head_version: int | None) -> None:
    expected = 1 if head_version is None else head_version + 1
    if procedure.version != expected:
        raise InvalidInputError(
            f"procedure {procedure.id} in {procedure.namespace!r} is at version {expected - 1}; the next "
            f"version must be {expected}, got {procedure.version}"
        )


def no_procedure(namespace: str, procedure_id: str, version: int | None = None) -> ProcedureNotFoundError:
    if version is None:
        return ProcedureNotFoundError(
            f"no procedure {procedure_id!r} in namespace {namespace!r}; list them with `memp memory list`")
    return ProcedureNotFoundError(
        f"procedure {procedure_id!r} has no version {version} in namespace {namespace!r}; "
        "see its versions with `memp memory history`")


def already_stored(p: Procedure) -> InvalidInputError:
    return InvalidInputError(
        f"procedure {p.id} v{p.version} already exists in namespace {p.namespace!r}; "
        "import into an empty namespace (--namespace NAME) instead")


class StatusChange(NamedTuple):
    body: str
    updated_at: datetime
    evidence: dict[str, Any]
    event: str


def check_status(status: str) -> None:
    if status not in ("active", "deprecated"):
        raise InvalidInputError(f"unknown status {status!r}; use 'active' or 'deprecated'")


def status_change(procedure_id: str, body: str, old: str, new: str, *, reason: str, uses: int,
                  successes: int, detail: dict[str, Any] | None) -> StatusChange:
    """What ``set_status`` writes: the head's new body and the event's kind and evidence."""
    if old == new:
        raise InvalidInputError(f"procedure {procedure_id} is already {new}")
    data = json.loads(body)
    now = utcnow()
    data["status_reason"] = reason
    data["updated_at"] = now.isoformat()
    evidence = {"reason": reason, "uses": uses, "successes": successes, **(detail or {})}
    return StatusChange(json.dumps(data), now, evidence, "deprecated" if new == "deprecated" else "restored")


def _union(first: list[str], then: list[str]) -> list[str]:
    return [*first, *(x for x in then if x not in first)]


def merged_provenance(body: str, trajectory: Trajectory) -> str:
    """The body with the trajectory (and its model and agent) added to the provenance."""
    data = json.loads(body)
    prov = data["provenance"]
    for key, value in (("trajectory_ids", trajectory.id), ("models", trajectory.model),
                       ("agents", trajectory.agent)):
        if value:
            prov[key] = _union(prov[key], [value])
    return json.dumps(data)


def carried_over(procedure: Procedure, head_body: str, uses: int, successes: int) -> Procedure:
    """The next version of a lineage as it is stored: the head's statistics, and the head's
    provenance joined with its own, both as they are when the write runs.

    A revision is built from a head read earlier; uses counted and duplicates merged into that
    head since then would otherwise vanish with it.
    """
    head = json.loads(head_body)["provenance"]
    prov = procedure.provenance
    provenance = prov.model_copy(update={key: _union(head[key], getattr(prov, key))
                                         for key in ("trajectory_ids", "models", "agents")})
    return procedure.model_copy(update={"stats": ProcedureStats(uses=uses, successes=successes),
                                        "provenance": provenance})


def vector_size(p: Procedure) -> int | None:
    """The one size of a procedure's vectors (None: it has none); an ``InvalidInputError`` when
    they differ in size or hold NaN or infinity, which would break every search of the namespace."""
    vectors = ([] if p.embedding is None else [("the key embedding", p.embedding)]) + [
        (f"the keyword embedding {field!r}", v) for field, v in p.keyword_embeddings.items()]
    sizes = set()
    for name, vector in vectors:
        array = np.asarray(vector, dtype=np.float32)
        if array.ndim != 1 or not len(array) or not np.isfinite(array).all():
            raise InvalidInputError(f"{name} of procedure {p.id} holds NaN, infinity or no numbers; "
                                    "embed the procedure again")
        sizes.add(len(array))
    if len(sizes) > 1:
        raise InvalidInputError(f"the vectors of procedure {p.id} differ in size ({sorted(sizes)}); "
                                "embed the key and keywords with one embedder")
    return sizes.pop() if sizes else None


def check_vector_size(p: Procedure, size: int | None, stored: int | None) -> None:
    if size is not None and stored is not None and size != stored:
        raise InvalidInputError(
            f"procedure {p.id} has {size}-dimensional vectors but namespace {p.namespace!r} holds "
            f"{stored}-dimensional ones; embed it with the namespace's embedder, or use another namespace")


def trajectory_conflict(namespace: str, trajectory_id: str) -> TrajectoryConflictError:
    return TrajectoryConflictError(
        f"trajectory {trajectory_id!r} is already stored in namespace {namespace!r} with other "
        "content; the stored run is kept. Give the new run its own id (or none, to get a fresh one)")


def parse_export(records: Iterable[dict[str, Any]], namespace: str | None) -> dict[str, list]:
    """Validate an export stream completely before anything is written (every backend's import)."""
    out: dict[str, list] = {"trajectories": [], "procedures": [], "events": []}
    if namespace is not None:
        check_namespace(namespace)
    for n, rec in enumerate(records, 1):
        try:
            kind = rec.get("type") if isinstance(rec, dict) else None
            if kind == EXPORT_FORMAT:
                if rec.get("version") != EXPORT_VERSION:
                    raise InvalidInputError(f"export format version {rec.get('version')} is not supported")
            elif kind == "trajectory":
                ns = namespace or check_namespace(rec["namespace"])
                out["trajectories"].append((ns, Trajectory.model_validate(rec["trajectory"])))
            elif kind == "procedure":
                p = Procedure.model_validate(rec["procedure"])
                if namespace:
                    p = p.model_copy(update={"namespace": namespace})
                check_namespace(p.namespace)
                out["procedures"].append((p, bool(rec.get("head", True))))
            elif kind == "event":
                e = Event.model_validate(rec["event"])
                if namespace:
                    e = e.model_copy(update={"namespace": namespace})
                out["events"].append(e)
            else:
                raise InvalidInputError(f"unknown record type {kind!r}")
        except (ValidationError, KeyError, TypeError) as err:
            raise InvalidInputError(f"record {n} of the import is invalid: {err}") from None
        except InvalidInputError as err:
            raise InvalidInputError(f"record {n} of the import: {err}") from None
    return out


def text_lines(path: Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file, or an ``InvalidInputError`` saying what is wrong."""
    if path.is_dir() or not path.exists():
        raise InvalidInputError(f"{path} is not a file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInputError(f"{path} is not UTF-8 text (bad byte at offset {err.start}); "
                                "re-encode it as UTF-8") from None
    return [line for line in text.splitlines() if line.strip()]


def read_export(path: Path) -> list[dict[str, Any]]:
    """The records of an export file (JSON Lines), each line parsed but not yet validated."""
    records = []
    for n, line in enumerate(text_lines(path), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise InvalidInputError(f"{path} line {n} is not JSON: {err.msg}") from None
    return records


def write_export(store: Store, path: Path, namespace: str | None = None) -> int:
    """Write ``store.export_records`` to ``path``; returns the number of records.

    The file appears under its name only once complete: an interrupted export leaves no
    half-written file that an import would take for the whole memory.
    """
    tmp = path.with_name(path.name + ".partial")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for record in store.export_records(namespace):
            fh.write(json.dumps(record, sort_keys=True) + "\n")
            n += 1
    tmp.replace(path)
    return n
