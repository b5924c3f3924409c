"""The HNSW index of the embedded store: agrees with the exact scan and follows every write."""

from __future__ import annotations

import pytest

pytest.importorskip("usearch", reason="the ANN index needs the 'ann' extra")

from memp import Memory  # noqa: E402
from memp.embed import HashingEmbedder  # noqa: E402
from memp.store.sqlite import SQLiteStore  # noqa: E402
from tests.store.contract import EMB, make_procedure  # noqa: E402


def test_ann_search_matches_exact_and_follows_writes(tmp_path):
    store = SQLiteStore(tmp_path / "m.db", ann=True)
    procs = [make_procedure(f"{verb} the {obj} in room {i}") for i, (verb, obj) in enumerate(
        (v, o) for v in ("heat", "cool", "clean", "put") for o in ("egg", "mug", "apple", "plate", "cup"))]
    for p in procs:
        store.put(p)
    query = EMB.embed(["cool the mug"])[0]
    exact = store.vectors("default").top(query, 5)
    got = store.search("default", query, 5)
    assert [r for r, _ in got] == [r for r, _ in exact]
    # The graph holds float16 vectors: scores within float16 rounding of the exact ones.
    assert [s for _, s in got] == pytest.approx([s for _, s in exact], abs=2e-3)
    # A deprecation and a new version reach the index without a rebuild.
    top = exact[0][0][0]
    store.set_status("default", top, "deprecated", reason="test")
    assert top not in [r[0] for r, _ in store.search("default", query, 5)]
    extra = make_procedure("cool the mug quickly")
    store.put(extra)
    assert store.search("default", query, 1)[0][0] == (extra.id, 1)
    assert store.search("empty-namespace", query, 3) == []
    store.close()


def test_memory_retrieves_through_the_index(tmp_path, apple_run):
    with Memory(SQLiteStore(tmp_path / "m.db", ann=True), embedder=HashingEmbedder()) as mem:
        added = mem.add(apple_run).added
        assert [h.procedure.ref for h in mem.retrieve("put a clean apple in fridge", k=3)] == added


def test_a_write_in_progress_is_searched_exactly_and_never_reaches_the_index_if_rolled_back(tmp_path):
    store = SQLiteStore(tmp_path / "m.db", ann=True)
    kept = make_procedure("heat the egg")
    store.put(kept)
    query = EMB.embed(["cool the mug"])[0]
    assert store.search("default", query, 1)[0][0] == (kept.id, 1)  # the index is built
    gone = make_procedure("cool the mug")
    with pytest.raises(RuntimeError):
        with store.atomic():
            store.put(gone)
            assert store.search("default", query, 1)[0][0] == (gone.id, 1)  # the block sees its write
            raise RuntimeError("the block fails")
    assert [r for r, _ in store.search("default", query, 2)] == [(kept.id, 1)]
    store.close()
