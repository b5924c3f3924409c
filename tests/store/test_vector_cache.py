"""VectorCache: patched tables equal full reloads, and reloads happen only when they must.

The store-level equivalents (both backends, real writes) are in contract.py; here a fake
database of lineages stands in, so random write sequences are cheap to check exhaustively.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from memp.store.vectors import VectorCache, VectorRow, VectorTable
from memp.store.sqlite import SQLiteStore
from tests.store.contract import make_procedure, same_table


class FakeDatabase:
    """Lineages of one namespace: id -> (position, head version, active, vector or None)."""

    def __init__(self, dim: int = 4, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.dim = dim
        self.lineages: dict[str, list] = {}
        self.generation = 0
        self.full_loads = 0

    def vector(self) -> np.ndarray:
        # Few distinct values, so equal vectors (ties) are common.
        return np.array([self.rng.choice([0.0, 0.5, 1.0]) for _ in range(self.dim)], np.float32)

    def load(self, namespace: str, field: str, ids: list[str] | None) -> list[VectorRow]:
        self.full_loads += ids is None
        rows = [VectorRow(pid, version, position, vec)
                for pid, (position, version, active, vec) in self.lineages.items()
                if active and vec is not None and (ids is None or pid in ids)]
        return sorted(rows, key=lambda r: r.position)

    def random_write(self, cache: VectorCache | None) -> None:
        """Create, revise, deprecate or restore lineages (or change nothing), like one transaction."""
        for _ in range(self.rng.choice([0, 1, 1, 1, 2, 3])):
            pid = self.rng.choice([*self.lineages, f"new{len(self.lineages)}"])
            if pid not in self.lineages:
                self.lineages[pid] = [len(self.lineages) * 10, 1, self.rng.random() < 0.9,
                                      self.vector() if self.rng.random() < 0.9 else None]
            elif self.rng.random() < 0.5:
                self.lineages[pid][2] = not self.lineages[pid][2]
            else:
                self.lineages[pid][1] += 1
                self.lineages[pid][2] = True
                self.lineages[pid][3] = self.vector()
            if cache is not None:
                cache.touch("ns", pid)
        self.generation += 1


def fresh(db: FakeDatabase):
    return VectorCache(db.load).table("ns", "key", db.generation)


@pytest.mark.parametrize("compact_min", [VectorTable.COMPACT_MIN, 3])
@pytest.mark.parametrize("seed", range(20))
def test_random_writes_patch_to_exactly_what_a_reload_reads(seed, compact_min, monkeypatch):
    """With the default compaction (the changes stay beside the base) and a tiny one (compacted
    every few writes): the same rows, and the same top hits, ties broken by lineage order."""
    monkeypatch.setattr(VectorTable, "COMPACT_MIN", compact_min)
    db = FakeDatabase(seed=seed)
    cache = VectorCache(db.load)
    turns = random.Random(-seed)
    foreign_since_read = True  # the first read loads
    for step in range(80):
        if turns.random() < 0.15:
            db.random_write(None)  # someone else's write: this cache never hears of it
            foreign_since_read = True
        else:
            db.random_write(cache)
            cache.committed(db.generation)
        if turns.random() < 0.5:  # not every write is followed by a read
            continue
        loads = db.full_loads
        got = cache.table("ns", "key", db.generation)
        reloaded = db.full_loads - loads
        assert same_table(got, fresh(db)), (seed, step)
        query = db.vector()
        assert got.top(query, 4) == fresh(db).top(query, 4), (seed, step)
        assert reloaded == foreign_since_read, (seed, step)  # only another writer costs a reload
        foreign_since_read = False


def test_a_rolled_back_write_keeps_the_table_and_forgets_its_lineages():
    db = FakeDatabase()
    cache = VectorCache(db.load)
    db.random_write(None)
    table = cache.table("ns", "key", db.generation)
    cache.touch("ns", "new0")
    cache.rolled_back()
    cache.committed(db.generation + 1)  # a later write that touched nothing
    db.generation += 1
    assert cache.table("ns", "key", db.generation) is table and db.full_loads == 1


def test_a_write_touching_many_lineages_reloads_instead(monkeypatch):
    monkeypatch.setattr(VectorCache, "MAX_PATCH", 2)
    db = FakeDatabase()
    cache = VectorCache(db.load)
    cache.table("ns", "key", db.generation)
    for i in range(3):
        db.lineages[f"l{i}"] = [i, 1, True, db.vector()]
        cache.touch("ns", f"l{i}")
    db.generation += 1
    cache.committed(db.generation)
    assert same_table(cache.table("ns", "key", db.generation), fresh(db)) and db.full_loads == 3


def test_a_vector_of_another_size_drops_the_table_instead_of_failing_the_write():
    db = FakeDatabase()
    db.lineages["a"] = [0, 1, True, db.vector()]
    cache = VectorCache(db.load)
    cache.table("ns", "key", db.generation)
    db.lineages["b"] = [1, 1, True, np.ones(7, np.float32)]
    cache.touch("ns", "b")
    db.generation += 1
    cache.committed(db.generation)  # does not raise: the write itself succeeded
    with pytest.raises(ValueError):  # the reload says what is wrong, as before
        cache.table("ns", "key", db.generation)


def test_the_sqlite_store_patches_its_own_writes_without_reloading(tmp_path):
    with SQLiteStore(tmp_path / "memp.db") as store, SQLiteStore(tmp_path / "memp.db") as other:
        procs = [make_procedure(f"task {i} apple") for i in range(5)]
        for p in procs[:3]:
            store.put(p)
        store.vectors("default")
        store.vectors("default", "kw:object")
        full = []
        load = store._vectors._load
        store._vectors._load = lambda ns, field, ids: (full.append(field) if ids is None else None) or load(ns, field, ids)
        store.put(procs[3])
        store.set_status("default", procs[0].id, "deprecated", reason="test")
        store.put(procs[1].model_copy(update={"version": 2, "parent_version": 1}), event="revised")
        store.record_use("default", procs[2].id, 1, success=True)
        for field in ("key", "kw:object"):
            assert same_table(store.vectors("default", field), other.vectors("default", field))
        assert full == []
        other.put(procs[4])  # another writer: the next read reloads, once per field
        for field in ("key", "kw:object"):
            assert same_table(store.vectors("default", field), other.vectors("default", field))
        assert full == ["key", "kw:object"]


@pytest.mark.parametrize("seed", range(20))
def test_views_inside_transactions_show_their_writes_and_vanish_on_rollback(seed):
    """Transactions of several writes, each read mid-way (a duplicate check), then committed or
    rolled back: every view equals a reload of the uncommitted state, every table afterwards a
    reload of the committed one, and the committed tables are never reloaded for it."""
    db = FakeDatabase(seed=seed)
    whole = []  # the cache's own full loads
    cache = VectorCache(lambda ns, field, ids: (whole.append(1) if ids is None else None) or db.load(ns, field, ids))
    turns = random.Random(-seed)
    db.random_write(None)
    cache.table("ns", "key", db.generation)
    for step in range(40):
        before = {pid: list(row) for pid, row in db.lineages.items()}
        generation = db.generation
        for _ in range(turns.choice([1, 2, 3])):
            db.random_write(cache)
            db.generation = generation  # nothing commits until the transaction ends
            if turns.random() < 0.7:
                assert same_table(cache.table("ns", "key", generation, writing=True), fresh(db)), (seed, step)
        if turns.random() < 0.3:
            db.lineages = before
            cache.rolled_back()
        else:
            db.generation = generation + 1
            cache.committed(db.generation)
        assert same_table(cache.table("ns", "key", db.generation), fresh(db)), (seed, step)
    assert len(whole) == 1  # only the first read loaded the whole table


def test_a_write_shares_the_matrix_until_the_changes_pass_an_eighth_of_it():
    """A new table per write, without a copy of the whole matrix (it took 2 ms at 10,000 rows,
    under the store's lock); compacted into one matrix once the changes grow."""
    db = FakeDatabase(dim=8)
    for i in range(4000):
        db.lineages[f"l{i}"] = [i, 1, True, db.vector()]
    cache = VectorCache(db.load)
    first = cache.table("ns", "key", db.generation)
    base = first.matrix
    shared = 0
    for step in range(600):
        db.random_write(cache)
        cache.committed(db.generation)
        table = cache.table("ns", "key", db.generation)
        shared += table._base is first._base
        if step % 97 == 0:
            assert same_table(table, fresh(db)), step
    assert 200 < shared < 600  # shared for hundreds of writes, then compacted
    assert same_table(table, fresh(db)) and table._base is not base
    assert first.refs == [(f"l{i}", 1) for i in range(4000)]  # a table handed out never changes
    assert np.array_equal(first.matrix, base)


def test_top_rescores_candidates_so_ties_hold_across_layouts():
    """Equal vectors score bit-for-bit alike whether a row sits in the base or was added since,
    so a tie goes to the older lineage in either layout."""
    vector = np.random.default_rng(1).standard_normal(384).astype(np.float32)
    others = np.random.default_rng(2).standard_normal((999, 384)).astype(np.float32)
    rows = [VectorRow(f"o{i}", 1, i, v) for i, v in enumerate(others)] + [VectorRow("old", 1, 1000, vector)]
    table = VectorTable([(r.procedure_id, 1) for r in rows], np.stack([r.vector for r in rows]),
                        np.array([r.position for r in rows]))
    patched = table.replaced([], [VectorRow("new", 1, 1001, vector.copy())])
    assert [ref for ref, _ in patched.top(vector, 2)] == [("old", 1), ("new", 1)]
    assert patched.top(vector, 2)[0][1] == patched.top(vector, 2)[1][1]
    whole = VectorTable(patched.refs, patched.matrix, patched.positions)
    assert whole.top(vector, 5) == patched.top(vector, 5)
