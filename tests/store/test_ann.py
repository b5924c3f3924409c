"""The HNSW index of the embedded store: agrees with the exact scan and follows every write."""

from __future__ import annotations

import random

import pytest

pytest.importorskip("usearch", reason="the ANN index needs the 'ann' extra")

from memp import Memory  # noqa: E402
from memp._errors import InvalidInputError  # noqa: E402
from memp.embed import HashingEmbedder  # noqa: E402
from memp.store.ann import ANNConfig  # noqa: E402
from memp.store.sqlite import SQLiteStore  # noqa: E402
from memp.types import Procedure, Provenance  # noqa: E402
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


def _fill(store, texts, namespace="default"):
    """Procedures for these task texts in one import (hashing vectors), ids in text order."""
    vectors = EMB.embed(texts)
    store.import_records(
        {"type": "procedure", "head": True,
         "procedure": Procedure(id=f"p{i:05d}", namespace=namespace, key=text, script=[f"do {text}"],
                                provenance=Provenance(trajectory_ids=[f"t{i}"]),
                                embedding=vec.tolist()).model_dump(mode="json")}
        for i, (text, vec) in enumerate(zip(texts, vectors)))
    return vectors


def _texts(n, seed=0):
    rng = random.Random(seed)
    verbs, objects = ["heat", "cool", "clean", "put", "slice", "find"], ["egg", "mug", "apple", "plate", "cup", "pan"]
    return [f"{rng.choice(verbs)} the {rng.choice(objects)} in room {i} on floor {rng.randint(0, 30)}"
            for i in range(n)]


def test_an_index_built_in_small_chunks_finds_what_one_chunk_finds(tmp_path):
    texts = _texts(300)
    queries = EMB.embed(_texts(20, seed=1))
    found = []
    for chunk in (7, 50_000):
        # ef_search above the table's size makes the walk exhaustive: the same top-k, whatever the chunks.
        store = SQLiteStore(tmp_path / f"c{chunk}.db", ann={"chunk": chunk, "ef_search": 400, "threads": 1})
        _fill(store, texts)
        found.append([[r for r, _ in store.search("default", q, 10)] for q in queries])
        table = store.vectors("default")
        store.close()
    assert found[0] == found[1]
    for q, refs in zip(queries, found[0]):
        # The exact top 10, up to float16 rounding at the boundary (hashing vectors tie often).
        exact = dict(table.top(q, len(table.refs)))
        tenth = sorted(exact.values(), reverse=True)[9]
        assert len(refs) == 10 and all(exact[r] >= tenth - 2e-3 for r in refs)


def test_recall_at_10_on_a_small_set_with_the_default_configuration(tmp_path):
    store = SQLiteStore(tmp_path / "m.db", ann={"threads": 1})
    _fill(store, _texts(3000))
    table = store.vectors("default")
    queries = EMB.embed(_texts(50, seed=2))
    hits = [len({r for r, _ in store.search("default", q, 10)} & {r for r, _ in table.top(q, 10)}) for q in queries]
    assert sum(hits) / (10 * len(queries)) >= 0.95
    store.close()


def test_searching_through_the_index_never_loads_the_float32_matrix(tmp_path):
    store = SQLiteStore(tmp_path / "m.db", ann=True)
    vectors = _fill(store, _texts(200))
    assert store.search("default", vectors[5], 1)[0][0] == ("p00005", 1)
    store.put(make_procedure("cool the mug quickly"))
    store.search("default", vectors[5], 3)
    # The index is filled from the rows in chunks; the store's cached matrix is never read.
    assert store._vectors._tables == {}
    store.close()


def test_the_index_follows_another_process_writes_and_its_own(tmp_path):
    path = tmp_path / "m.db"
    serving, writer = SQLiteStore(path, ann=True), SQLiteStore(path)
    vectors = _fill(writer, _texts(100))
    assert serving.search("default", vectors[3], 1)[0][0] == ("p00003", 1)
    # Another process (another store object) deprecates p00003 and revises p00004.
    writer.set_status("default", "p00003", "deprecated", reason="test")
    revised = writer.get("default", "p00004").model_copy(update={"version": 2})
    writer.put(revised)
    assert "p00003" not in [r[0] for r, _ in serving.search("default", vectors[3], 5)]
    assert serving.search("default", vectors[4], 1)[0][0] == ("p00004", 2)
    # Its own writes: a restore and a new lineage, caught up from the lineages they changed.
    serving.set_status("default", "p00003", "active", reason="back")
    assert serving.search("default", vectors[3], 1)[0][0] == ("p00003", 1)
    extra = make_procedure("cool the mug quickly")
    serving.put(extra)
    assert serving.search("default", extra.embedding, 1)[0][0] == (extra.id, 1)
    assert serving.search("default", vectors[4], 1)[0][0] == ("p00004", 2)
    serving.close()
    writer.close()


def test_changed_since_names_own_commits_and_gives_up_after_a_foreign_one(tmp_path):
    path = tmp_path / "m.db"
    a, b = SQLiteStore(path), SQLiteStore(path)
    start = a.generation()
    p, q = make_procedure("heat the egg"), make_procedure("cool the mug", namespace="other")
    a.put(p)
    a.put(q)
    assert a.changed_since(start, a.generation()) == {"default": {p.id}, "other": {q.id}}
    assert a.changed_since(a.generation(), a.generation()) == {}
    b.put(make_procedure("clean the pan"))
    assert a.changed_since(start, a.generation()) is None
    a.close()
    b.close()


@pytest.mark.parametrize("bad", [{"dtype": "f64"}, {"m": 0}, {"ef_search": "many"}, {"threads": -1},
                                 {"efsearch": 10}, "yes"])
def test_bad_index_options_are_refused_before_the_file_is_touched(tmp_path, bad):
    with pytest.raises(InvalidInputError):
        SQLiteStore(tmp_path / "m.db", ann=bad)
    assert not (tmp_path / "m.db").exists()


def test_an_index_config_object_is_accepted():
    assert ANNConfig.of({"ef_search": 128}) == ANNConfig(ef_search=128)
    assert ANNConfig.of(True) == ANNConfig()


def test_float16_vectors_score_within_rounding_and_float32_ones_exactly(tmp_path):
    texts = _texts(200)
    queries = EMB.embed(_texts(10, seed=3))
    for dtype, tolerance in (("f16", 2e-3), ("f32", 1e-5)):
        store = SQLiteStore(tmp_path / f"{dtype}.db", ann={"dtype": dtype, "ef_search": 400, "threads": 1})
        _fill(store, texts)
        table = store.vectors("default")
        for q in queries:
            exact = dict(table.top(q, len(table.refs)))
            got = store.search("default", q, 10)
            assert [s for _, s in got] == pytest.approx([exact[r] for r, _ in got], abs=tolerance)
        store.close()


def test_memp_ann_turns_the_index_on_for_opened_stores(tmp_path, monkeypatch):
    from memp.store import open_store

    monkeypatch.setenv("MEMP_ANN", '{"ef_search": 96}')
    store = open_store(tmp_path / "m.db")
    assert store._ann is not None and store._ann.config.ef_search == 96
    store.close()
    monkeypatch.setenv("MEMP_ANN", "0")
    store = open_store(tmp_path / "m.db")
    assert store._ann is None
    store.close()
    monkeypatch.setenv("MEMP_ANN", "fast please")
    with pytest.raises(InvalidInputError, match="MEMP_ANN"):
        open_store(tmp_path / "other.db")
    assert not (tmp_path / "other.db").exists()


def test_the_index_and_the_default_embedder_live_in_one_process(tmp_path):
    """memp serve with MEMP_ANN=1: the index is built before the embedder loads onnxruntime."""
    import subprocess
    import sys

    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("needs the embed extra (onnxruntime)")
    script = (  # a fresh process: here, conftest has already imported onnxruntime
        "from memp.store.ann import ANNConfig, HNSWIndex\n"
        "index = HNSWIndex(4, ANNConfig())\n"
        "import onnxruntime\n"  # in this order, after usearch, it crashed the process
        "print('alive')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr[-2000:]
