"""Vector tables: the key or keyword vectors of a namespace's active heads, for exact search.

A ``VectorTable`` is handed to concurrent readers, so it never changes; a write makes a new one.
The ``VectorCache`` keeps a store's tables in step with the store's own writes instead of reading
them again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

Ref = tuple[str, int]  # (procedure id, version)

# How far the fast (BLAS) score of a row may be from its exact one, per unit of |query| * |row|:
# float32 dot products of 384 terms err by far less, so no row of the true top k is missed.
_SLACK = 1e-4


class VectorRow(NamedTuple):
    """One active head's vector of a field, as a store reads it."""

    procedure_id: str
    version: int
    position: int  # where its lineage was first stored: tables are in this order
    vector: np.ndarray


class VectorTable:
    """The vectors of one field over the active heads of a namespace, in lineage order.

    Held as a *base* matrix shared with the tables before it, less the base rows that writes
    since have replaced or retired, plus the few rows those writes added: a write costs a copy of
    its own rows, not of the whole matrix (2 ms per write at 10,000 rows, taken under the store's
    lock, was a tenth of a busy service's time). Once the changes pass an eighth of the base, the
    next write compacts them into one matrix.

    ``top`` scores every row with one matrix product, then rescores the few candidates row by row,
    so a score depends only on the row and the query, never on how the table happens to be laid
    out: a patched table and a fresh read of the same rows return the same hits, ties broken by
    lineage order.
    """

    COMPACT_MIN = 256  # changed rows kept beside the base before compacting, at the least

    def __init__(self, refs: list[Ref], matrix: np.ndarray, positions: np.ndarray | None = None) -> None:
        """One matrix, row-aligned with ``refs``; ``positions`` (ascending) default to 0, 1, 2…"""
        matrix = np.asarray(matrix, dtype=np.float32)
        self._base, self._base_refs = matrix, list(refs)
        self._base_pos = np.arange(len(refs), dtype=np.int64) if positions is None else \
            np.asarray(positions, dtype=np.int64)
        self._dead = np.zeros(0, np.int64)  # base rows replaced or retired since
        self._extra, self._extra_refs, self._extra_pos = matrix[:0], [], np.zeros(0, np.int64)
        self._scale = _largest_norm(matrix)

    # -- reading

    def __len__(self) -> int:
        return len(self._base_refs) - len(self._dead) + len(self._extra_refs)

    @functools.cached_property
    def _live(self) -> np.ndarray:
        """Slots (base rows, then added rows after them) of the live rows, in lineage order."""
        n = len(self._base_refs)
        slots = np.concatenate([np.delete(np.arange(n), self._dead), n + np.arange(len(self._extra_refs))])
        return slots[np.argsort(self._slot_positions[slots], kind="stable")]

    def _whole(self) -> bool:
        return not len(self._dead) and not self._extra_refs

    @functools.cached_property
    def refs(self) -> list[Ref]:
        return self._base_refs if self._whole() else [self._ref(int(s)) for s in self._live]

    @functools.cached_property
    def matrix(self) -> np.ndarray:
        """(len(refs), dim) float32, rows as stored; (0, 0) when empty."""
        if not len(self):
            return np.zeros((0, 0), np.float32)
        return self._base if self._whole() else self._rows(self._live)

    @property
    def positions(self) -> np.ndarray:
        """Each row's lineage position, in the order of ``refs``."""
        return self._slot_positions[self._live]

    def top(self, query: np.ndarray, k: int) -> list[tuple[Ref, float]]:
        k = min(k, len(self))
        if k <= 0:
            return []
        q = np.asarray(query, dtype=np.float32)
        rough = self._rough_scores(q)
        kth = np.partition(rough, len(rough) - k)[len(rough) - k]
        slots = np.flatnonzero(rough >= kth - _SLACK * (1.0 + float(np.linalg.norm(q)) * self._scale))
        exact = np.einsum("ij,j->i", self._rows(slots), q)  # row by row: the same bits in any layout
        positions = self._slot_positions
        best = sorted(range(len(slots)), key=lambda j: (-float(exact[j]), int(positions[slots[j]])))[:k]
        return [(self._ref(int(slots[j])), float(exact[j])) for j in best]

    def _rough_scores(self, q: np.ndarray) -> np.ndarray:
        """Every slot's score by matrix product (retired base rows: -inf)."""
        parts = []
        if len(self._base_refs):
            base = self._base @ q
            base[self._dead] = -np.inf
            parts.append(base)
        if self._extra_refs:
            parts.append(self._extra @ q)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @functools.cached_property
    def _slot_positions(self) -> np.ndarray:
        return np.concatenate([self._base_pos, self._extra_pos]) if self._extra_refs else self._base_pos

    def _ref(self, slot: int) -> Ref:
        n = len(self._base_refs)
        return self._base_refs[slot] if slot < n else self._extra_refs[slot - n]

    def _rows(self, slots: np.ndarray) -> np.ndarray:
        n = len(self._base_refs)
        dim = self._base.shape[1] if n else self._extra.shape[1]
        out = np.empty((len(slots), dim), np.float32)
        in_base = slots < n
        if in_base.any():
            out[in_base] = self._base[slots[in_base]]
        if not in_base.all():
            out[~in_base] = self._extra[slots[~in_base] - n]
        return out

    # -- writing: a new table

    def replaced(self, gone: list[int], rows: list[VectorRow]) -> VectorTable:
        """This table without the rows at positions ``gone``, with ``rows`` added. A ValueError if
        a row's vector differs in size from the table's."""
        gone_at = np.asarray(sorted(gone), dtype=np.int64)
        n = len(self._base_refs)
        index = np.searchsorted(self._base_pos, gone_at)
        found = index < n
        found[found] = self._base_pos[index[found]] == gone_at[found]
        kept = ~np.isin(self._extra_pos, gone_at)
        added = [r.vector for r in rows]
        dim = self._base.shape[1] if n else (self._extra.shape[1] if len(self._extra_refs) else None)
        if any(v.shape != (dim if dim is not None else added[0].shape[0],) for v in added):
            raise ValueError(f"vectors of different sizes in one table: {sorted({len(v) for v in added})} "
                             f"against {dim}")
        table = object.__new__(VectorTable)
        table._base, table._base_refs, table._base_pos = self._base, self._base_refs, self._base_pos
        table._dead = np.union1d(self._dead, index[found])
        pieces = ([self._extra[kept]] if kept.any() else []) + [v[np.newaxis, :] for v in added]
        table._extra = np.concatenate(pieces) if pieces else np.zeros((0, dim or 0), np.float32)
        table._extra_refs = [r for r, keep in zip(self._extra_refs, kept) if keep] + \
            [(r.procedure_id, r.version) for r in rows]
        table._extra_pos = np.concatenate([self._extra_pos[kept], np.array([r.position for r in rows], np.int64)])
        table._scale = max(self._scale, _largest_norm(table._extra))
        if len(table._dead) + len(table._extra_refs) > max(self.COMPACT_MIN, n // 8):
            return VectorTable(table.refs, table.matrix, table.positions)
        return table


def _largest_norm(matrix: np.ndarray) -> float:
    return float(np.linalg.norm(matrix, axis=1).max()) if matrix.size else 0.0


@dataclass(frozen=True)
class _Cached:
    generation: int
    table: VectorTable
    where: dict[str, int]  # lineage id -> position, for the lineages in the table


def _loaded(generation: int, rows: list[VectorRow]) -> _Cached:
    if not rows:
        return _Cached(generation, VectorTable([], np.zeros((0, 0), np.float32)), {})
    return _Cached(generation, VectorTable([(r.procedure_id, r.version) for r in rows],
                                           np.stack([r.vector for r in rows]),
                                           np.array([r.position for r in rows], np.int64)),
                   {r.procedure_id: r.position for r in rows})


def _patched(old: _Cached, generation: int, lineages: set[str], rows: list[VectorRow]) -> _Cached:
    """``old`` with the rows of ``lineages`` replaced by ``rows``, their active heads now. The
    result takes ``old.where`` over: ``old`` must not be used again."""
    where = old.where
    gone = [where.pop(pid) for pid in lineages if pid in where]
    table = old.table.replaced(gone, rows)
    for r in rows:
        where[r.procedure_id] = r.position
    if not len(table):  # one shape for "no rows", whether loaded or patched down to nothing
        return _loaded(generation, [])
    return _Cached(generation, table, where)


class VectorCache:
    """A store's VectorTables, kept in step with the store's own writes instead of reloaded.

    Each table is tagged with the generation it shows. A write names the lineages it changes
    (``touch``). Once it has committed as generation g, every table that showed g - 1 gets those
    lineages' current active heads in place of their old rows, each at its lineage's position:
    what a reload would return, for the cost of reading a few rows. A table at any other
    generation has missed a write made elsewhere (another process, or another store object on the
    same database), so it is dropped and read whole the next time it is asked for.

    Inside a write transaction (``writing=True``) a table is a *view*: the committed table patched
    with the lineages the transaction has changed so far, so a duplicate check sees the rows the
    same transaction wrote before it. Views replace the tables when the transaction commits and
    vanish when it rolls back; the committed tables are never changed meanwhile.

    The stores call it under their lock; it does no locking of its own.
    """

    MAX_PATCH = 500  # lineages changed by one write; beyond that (an import) a reload is cheaper

    def __init__(self, load: Callable[[str, str, list[str] | None], list[VectorRow]]) -> None:
        """``load(namespace, field, ids)``: the field's rows over the active heads in lineage order,
        of only the lineages in ``ids`` unless it is None."""
        self._load = load
        self._tables: dict[tuple[str, str], _Cached] = {}
        self._touched: dict[str, set[str]] = {}
        self._views: dict[tuple[str, str], _Cached] = {}
        self._unseen: dict[tuple[str, str], set[str]] = {}  # lineages changed since the view was made

    def table(self, namespace: str, field: str, generation: int, *, writing: bool = False) -> VectorTable:
        """The table at ``generation`` (the last committed one); ``writing``: as the open
        transaction sees it."""
        key = (namespace, field)
        if writing:
            return self._view(key, generation).table
        cached = self._tables.get(key)
        if cached is None or cached.generation != generation:
            cached = _loaded(generation, self._load(namespace, field, None))
            self._tables[key] = cached
        return cached.table

    def _view(self, key: tuple[str, str], generation: int) -> _Cached:
        view = self._views.get(key)
        if view is None:
            view = self._tables.get(key)
            view = view if view is not None and view.generation == generation else None
            unseen = self._touched.get(key[0], set())
        else:
            unseen = self._unseen[key]
        base = self._tables.get(key)
        # Until a view is first patched it shares the committed table's lineage map: copy it then.
        shared = view is not None and base is not None and view.where is base.where
        self._views[key] = view = self._patch(key, view, generation, unseen, keep=shared)
        self._unseen[key] = set()
        return view

    def _patch(self, key: tuple[str, str], cached: _Cached | None, generation: int,
               lineages: set[str], *, keep: bool) -> _Cached:
        """``cached`` with the rows of ``lineages`` read again, or a whole reload. ``keep``:
        ``cached`` stays valid (else it must not be used again)."""
        if cached is None or len(lineages) > self.MAX_PATCH:
            return _loaded(generation, self._load(key[0], key[1], None))
        if not lineages:
            return _Cached(generation, cached.table, cached.where)
        rows = self._load(key[0], key[1], sorted(lineages))
        if keep:
            cached = _Cached(cached.generation, cached.table, dict(cached.where))
        return _patched(cached, generation, lineages, rows)

    def touch(self, namespace: str, procedure_id: str) -> None:
        """The write in progress changes this lineage's head, status or vectors."""
        self._touched.setdefault(namespace, set()).add(procedure_id)
        for key, unseen in self._unseen.items():
            if key[0] == namespace:
                unseen.add(procedure_id)

    def pending(self) -> dict[str, set[str]]:
        """The lineages the open write transaction has changed so far, per namespace."""
        return {namespace: set(ids) for namespace, ids in self._touched.items()}

    def changing(self, namespace: str) -> bool:
        """Whether the open write transaction has changed lineages of this namespace."""
        return bool(self._touched.get(namespace))

    def part_rolled_back(self) -> None:
        """A savepoint rolled back: the views read every changed lineage again."""
        for key, unseen in self._unseen.items():
            unseen |= self._touched.get(key[0], set())

    def rolled_back(self) -> None:
        self._touched, self._views, self._unseen = {}, {}, {}

    def committed(self, generation: int | None) -> None:
        """The write in progress committed as ``generation`` (None if the store cannot tell)."""
        touched, views, unseen = self._touched, self._views, self._unseen
        self.rolled_back()
        if generation is None:
            self._tables = {}
            return
        for key in set(self._tables) | set(views):
            lineages = touched.get(key[0], set())
            base, view = self._tables.get(key), views.get(key)
            if view is not None:
                base, lineages = view, unseen[key]
            if base is None or base.generation != generation - 1 or len(lineages) > self.MAX_PATCH:
                self._tables.pop(key, None)
                continue
            try:
                self._tables[key] = self._patch(key, base, generation, lineages, keep=False)
            except Exception:  # the write has committed: a failed patch only costs a reload
                self._tables.pop(key, None)
