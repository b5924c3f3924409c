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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from memp._errors import InvalidInputError, NamespaceError
from memp.types import Event, Procedure, ProcedureStats, ProcedureStatus, Trajectory

Ref = tuple[str, int]  # (procedure id, version)

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


@dataclass(frozen=True)
class VectorTable:
    """The vectors of one field over the active heads of a namespace, row-aligned with refs."""

    refs: list[Ref]
    matrix: np.ndarray  # (len(refs), dim), float32, rows L2-normalised

    def top(self, query: np.ndarray, k: int) -> list[tuple[Ref, float]]:
        if not self.refs or k <= 0:
            return []
        scores = self.matrix @ np.asarray(query, dtype=np.float32)
        k = min(k, len(scores))
        idx = np.argpartition(-scores, k - 1)[:k]
        # Ties break on table order (the order lineages were stored), never on the random ids,
        # so a seeded run retrieves the same procedures every time.
        idx = sorted(idx, key=lambda i: (-float(scores[i]), int(i)))
        return [(self.refs[i], float(scores[i])) for i in idx]


def nearest(store: Store, namespace: str, query: Any, k: int) -> list[tuple[Ref, float]]:
    """Top-k active heads by key similarity: the store's own ``search`` when it has one (an index
    in the database, or an ANN graph), else an exact scan of ``vectors``."""
    search = getattr(store, "search", None)
    if search is not None:
        return search(namespace, query, k)
    return store.vectors(namespace, "key").top(query, k)


class Store(Protocol):
    """What the rest of memp needs from a backend."""

    # -- procedures
    def put(self, procedure: Procedure, *, event: str = "created", trajectory_id: str | None = None,
            detail: dict[str, Any] | None = None) -> Procedure:
        """Insert version 1 of a new lineage, or the next version of an existing one."""
        ...

    def get(self, namespace: str, procedure_id: str, version: int | None = None) -> Procedure: ...

    def get_many(self, namespace: str, refs: list[Ref]) -> list[Procedure]: ...

    def history(self, namespace: str, procedure_id: str) -> list[Procedure]: ...

    def list(self, namespace: str, *, status: ProcedureStatus | None = None, task_type: str | None = None,
             limit: int = 50, offset: int = 0) -> list[Procedure]:
        """Heads, newest first."""
        ...

    def count(self, namespace: str, *, status: ProcedureStatus | None = None) -> int: ...

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
        """Atomically count one use of that version; returns the new statistics."""
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
    def add_trajectory(self, namespace: str, trajectory: Trajectory) -> None: ...

    def get_trajectory(self, namespace: str, trajectory_id: str) -> Trajectory: ...

    def events(self, namespace: str, procedure_id: str | None = None) -> list[Event]: ...

    def namespaces(self) -> list[str]: ...

    # -- moving memory around
    def export_records(self, namespace: str | None = None) -> Iterator[dict[str, Any]]: ...

    def import_records(self, records: Iterable[dict[str, Any]], *, namespace: str | None = None) -> dict[str, int]:
        """Validate every record first; write all or nothing."""
        ...

    def close(self) -> None: ...


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
