"""The HNSW index saved beside the file: a new process loads it, caught up exactly with the
database, and never uses one that is stale, damaged, or another database's."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing as mp
import shutil
import traceback

import pytest

from memp._errors import InvalidInputError
from memp.store.ann import HNSWIndex
from memp.store.sqlite import SQLiteStore
from tests.store.contract import EMB

# No module-level import of usearch: the spawned workers below import this module, and usearch
# imported before onnxruntime crashes the process (memp.store.ann imports them in the right order).
pytestmark = pytest.mark.skipif(importlib.util.find_spec("usearch") is None,
                                reason="the ANN index needs the 'ann' extra")

# ef_search above the table's size: searches are exhaustive, so every index finds the exact top k.
ANN = {"save_min": 50, "threads": 1, "ef_search": 400}
N = 300


def _texts(n: int, start: int = 0, tag: str = "") -> list[str]:
    verbs, objects = ["heat", "cool", "clean", "put", "slice", "find"], ["egg", "mug", "apple", "plate", "cup", "pan"]
    return [f"{tag}{verbs[i % 6]} the {objects[i // 6 % 6]} in room {i} on floor {i * 7 % 31}"
            for i in range(start, start + n)]


def _fill(path, texts: list[str], start: int = 0) -> None:
    """These texts as procedures p<start>… (hashing vectors) in one import: one generation."""
    with SQLiteStore(path) as store:
        store.import_records(_records(texts, start))


def _records(texts, start=0):
    from memp.types import Procedure, Provenance

    for i, (text, vec) in enumerate(zip(texts, EMB.embed(texts)), start):
        yield {"type": "procedure", "head": True,
               "procedure": Procedure(id=f"p{i:05d}", key=text, script=[f"do {text}"],
                                      provenance=Provenance(trajectory_ids=[f"t{i}"]),
                                      embedding=vec.tolist()).model_dump(mode="json")}


QUERIES = EMB.embed(_texts(12, start=5000, tag="now "))


def _answers(store, queries=QUERIES, k=5) -> list[list]:
    return [[(ref, round(score, 5)) for ref, score in store.search("default", q, k)] for q in queries]


def _exact(path, answers: list[list], queries=QUERIES) -> bool:
    """Whether these answers are the exact scan's top k, up to float16 rounding at the boundary
    (an index searched exhaustively finds them; hashing vectors tie often)."""
    with SQLiteStore(path) as store:
        table = store.vectors("default")
        for q, row in zip(queries, answers):
            exact = dict(table.top(q, len(table.refs)))
            kth = sorted(exact.values(), reverse=True)[len(row) - 1]
            if not (len(row) == min(5, len(exact)) and all(exact[ref] >= kth - 2e-3 for ref, _ in row)):
                return False
    return True


@pytest.fixture
def added(monkeypatch) -> list[int]:
    """How many vectors went into any index in this process, one entry per HNSWIndex.add."""
    counts: list[int] = []
    add = HNSWIndex.add

    def counting(self, ids, *rest):
        counts.append(len(ids))
        return add(self, ids, *rest)

    monkeypatch.setattr(HNSWIndex, "add", counting)
    return counts


def _built_and_saved(path) -> list[list]:
    """Fill the file, search it once (the index is built and saved); that search's answers."""
    _fill(path, _texts(N))
    with SQLiteStore(path, ann=ANN) as store:
        return _answers(store)


def _manifest(path) -> dict:
    (manifest,) = (path.parent / (path.name + ".ann")).glob("*.json")
    return json.loads(manifest.read_text())


def test_a_new_store_loads_the_saved_index_and_answers_exactly_as_the_build(tmp_path, added):
    path = tmp_path / "m.db"
    built = _built_and_saved(path)
    assert sum(added) == N
    assert _exact(path, built)
    assert _manifest(path)["size"] == N
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:
        reads = []
        store.key_rows = lambda *a: reads.append(a) or iter(())  # a rebuild or a walk would call it
        assert _answers(store) == built  # the same graph: the same refs and scores
        assert added == [] and reads == []


def _write_elsewhere(path: str) -> dict:
    """In another process: new procedures, a deprecation, a revision."""
    with SQLiteStore(path) as store:
        store.import_records(_records(_texts(20, start=N, tag="new "), start=N))
        store.set_status("default", "p00003", "deprecated", reason="test")
        store.put(store.get("default", "p00004").model_copy(update={"version": 2}))
    return {"new": [f"p{i:05d}" for i in range(N, N + 20)]}


def _in_processes(*jobs: tuple) -> list:
    """Run each job, ``(function, *args)``, in its own spawned process, all at once; their results."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_report, args=(queue, n, *job)) for n, job in enumerate(jobs)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    failures = [r for r in results.values() if isinstance(r, str)]
    assert not failures, failures[0]
    return [results[n] for n in range(len(jobs))]


def _report(queue, n: int, target, *args) -> None:
    try:
        queue.put((n, target(*args)))
    except BaseException:  # noqa: BLE001 - any error is a failure, reported to the test
        queue.put((n, traceback.format_exc()))


def test_another_process_writes_between_save_and_load_are_caught_up_exactly(tmp_path, added):
    path = tmp_path / "m.db"
    _built_and_saved(path)
    (written,) = _in_processes((_write_elsewhere, str(path)))
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:
        new = EMB.embed(_texts(20, start=N, tag="new "))
        assert [store.search("default", q, 1)[0][0] for q in new] == [(pid, 1) for pid in written["new"]]
        old = EMB.embed(_texts(5))
        assert "p00003" not in [ref[0] for ref, _ in store.search("default", old[3], 10)]
        assert store.search("default", old[4], 1)[0][0] == ("p00004", 2)
        assert _exact(path, _answers(store))
        # Caught up, not rebuilt: only the 20 new heads and p00004's new version were added.
        assert sum(added) == 21
        index = store._ann.index(store, "default")
        assert sorted((pid, index.indexed(pid)) for pid in index.lineages()) == sorted(store.refs("default"))


def test_a_database_recreated_at_the_same_path_ignores_the_old_index(tmp_path, added):
    path = tmp_path / "m.db"
    _built_and_saved(path)
    for leftover in tmp_path.glob("m.db*"):
        if leftover.is_file():
            leftover.unlink()
    # The same ids, versions and generation as before, other vectors: only the identity differs.
    with SQLiteStore(path) as store:
        assert store.identity(create=True) != _manifest(path)["identity"]
    _fill(path, _texts(N, tag="other "))
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:
        assert _exact(path, _answers(store))
        assert sum(added) == N  # built from the database
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:  # and saved again, for this database
        _answers(store)
        assert added == []


def test_a_database_restored_from_an_older_backup_ignores_a_newer_index(tmp_path, added):
    path, backup = tmp_path / "m.db", tmp_path / "backup.db"
    _built_and_saved(path)
    shutil.copy(path, backup)  # the same identity, an older generation
    with SQLiteStore(path, ann=ANN) as store:
        store.import_records(_records(_texts(N, start=N, tag="more "), start=N))
        _answers(store)  # half the index is new: saved again, at the newer generation
    assert _manifest(path)["size"] == 2 * N
    shutil.copy(backup, path)
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:
        assert _exact(path, _answers(store))
        assert sum(added) == N


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(255 - b for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    ("graph", _truncate), ("graph", _garble), ("columns", _truncate), ("columns", _garble),
    ("columns", lambda p: p.unlink()), ("manifest", lambda p: p.write_text('{"format": 1, "ident')),
])
def test_a_damaged_saved_index_is_rebuilt_from_the_database(tmp_path, added, damage):
    path = tmp_path / "m.db"
    built = _built_and_saved(path)
    part, harm = damage
    folder = tmp_path / "m.db.ann"
    manifest = _manifest(path)
    harm(folder / manifest[part] if part != "manifest" else next(folder.glob("*.json")))
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:
        assert _answers(store) == built  # threads=1: the rebuild is the same graph
        assert sum(added) == N
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:  # the rebuild replaced the damaged save
        assert _answers(store) == built and added == []


def test_an_index_made_with_another_graph_shape_is_ignored(tmp_path, added):
    path = tmp_path / "m.db"
    _built_and_saved(path)
    added.clear()
    with SQLiteStore(path, ann={**ANN, "ef_search": 300}) as store:  # search breadth is not shape
        _answers(store)
        assert added == []
    for shape in ({"m": 8}, {"ef_construction": 64}, {"dtype": "f32"}):
        added.clear()
        with SQLiteStore(path, ann={**ANN, **shape}) as store:
            assert _exact(path, _answers(store))
            assert sum(added) == N
        assert _manifest(path)["shape"] == {"m": 16, "ef_construction": 128, "dtype": "f16", **shape}


def test_a_read_only_store_loads_a_saved_index_and_never_writes_one(tmp_path, added):
    path = tmp_path / "m.db"
    _fill(path, _texts(N))
    with SQLiteStore(path, ann=ANN, read_only=True) as store:
        built = _answers(store)
        assert sum(added) == N and store.identity(create=True) is None
    assert not (tmp_path / "m.db.ann").exists()
    with SQLiteStore(path, ann=ANN) as store:
        assert _answers(store) == built  # built again, and saved
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "m.db.ann").iterdir())
    added.clear()
    with SQLiteStore(path, ann=ANN, read_only=True) as store:
        assert _answers(store) == built and added == []
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "m.db.ann").iterdir()) == before


def test_saved_again_after_a_tenth_changed_not_after_every_write(tmp_path):
    path = tmp_path / "m.db"
    _built_and_saved(path)
    first = _manifest(path)
    with SQLiteStore(path, ann=ANN) as store:
        for i, text in enumerate(_texts(40, start=N, tag="own ")):
            store.import_records(_records([text], start=N + i))
            _answers(store, QUERIES[:1])
            if _manifest(path) != first:
                break
        # i + 1 heads added to an index of N + i + 1: saved at the first write that makes it a tenth.
        assert i == min(j for j in range(40) if j + 1 >= (N + j + 1) // 10)
        assert _manifest(path)["size"] == N + i + 1
        assert _manifest(path)["generation"] == store.generation()
    # The previous save's files are gone, and no temporary file is left.
    assert sorted(p.suffix for p in (tmp_path / "m.db.ann").iterdir()) == [".json", ".npz", ".usearch"]


def test_small_indexes_and_save_min_0_save_nothing(tmp_path):
    path = tmp_path / "m.db"
    _fill(path, _texts(40))
    for ann in ({**ANN, "save_min": 41}, {**ANN, "save_min": 0}):
        with SQLiteStore(path, ann=ann) as store:
            assert len(_answers(store)[0]) == 5
        assert not (tmp_path / "m.db.ann").exists()


@pytest.mark.parametrize("bad", [-1, "many", 2.5])
def test_a_bad_save_min_is_refused(tmp_path, bad):
    with pytest.raises(InvalidInputError, match="save_min"):
        SQLiteStore(tmp_path / "m.db", ann={"save_min": bad})
    assert not (tmp_path / "m.db").exists()


def _save_repeatedly(path: str, times: int) -> int:
    """In another process: load or build the index, then save it ``times`` times."""
    with SQLiteStore(path, ann=ANN) as store:
        index = store._ann.index(store, "default")
        for _ in range(times):
            store._ann._saved.save(store.identity(create=True), "default", store.generation(), index)
        return index.size


def _load_repeatedly(path: str, times: int, expected: list[list]) -> int:
    """In another process: open the store ``times`` times and search; how often the index was
    loaded whole (nothing added to it). Every answer must be the expected one."""
    added = []
    add = HNSWIndex.add
    HNSWIndex.add = lambda self, ids, *rest: added.append(len(ids)) or add(self, ids, *rest)
    loaded = 0
    for _ in range(times):
        added.clear()
        with SQLiteStore(path, ann={**ANN, "save_min": 10**9}) as store:  # loads, never saves
            answers = _answers(store)
        assert answers == expected, "a loaded index answered wrong"
        loaded += not added
    return loaded


def test_processes_saving_and_loading_at_once_always_get_a_whole_index(tmp_path, added):
    path = tmp_path / "m.db"
    built = _built_and_saved(path)
    saves, loads = (_save_repeatedly, str(path), 15), (_load_repeatedly, str(path), 15, built)
    results = _in_processes(saves, saves, loads, loads)
    assert results[:2] == [N, N]
    # Loads find a whole index (a load that loses three races in a row to new saves would build
    # instead: still right, only slower).
    assert sum(results[2:]) >= 24
    folder = tmp_path / "m.db.ann"
    assert not list(folder.glob("*.tmp"))
    manifest = _manifest(path)
    assert (folder / manifest["graph"]).exists() and (folder / manifest["columns"]).exists()
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:
        assert _answers(store) == built and added == []


def test_a_failed_save_leaves_search_working(tmp_path, caplog):
    path = tmp_path / "m.db"
    _fill(path, _texts(N))
    (tmp_path / "m.db.ann").write_text("a file where the folder would go")
    with SQLiteStore(path, ann=ANN) as store:
        assert _exact(path, _answers(store))
    assert "could not save the index" in caplog.text
    assert (tmp_path / "m.db.ann").read_text() == "a file where the folder would go"


def test_an_in_memory_store_saves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SQLiteStore(":memory:", ann=ANN) as store:
        store.import_records(_records(_texts(N)))
        assert len(_answers(store)[0]) == 5
    assert list(tmp_path.iterdir()) == []


def test_a_manifest_naming_other_files_neither_loads_nor_removes_them(tmp_path, added):
    path = tmp_path / "m.db"
    built = _built_and_saved(path)
    victim = tmp_path / "victim.npz"
    victim.write_text("not memp's")
    (manifest_path,) = (tmp_path / "m.db.ann").glob("*.json")
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "columns": "../victim.npz"}))
    added.clear()
    with SQLiteStore(path, ann=ANN) as store:
        assert _answers(store) == built and sum(added) == N  # built, and saved again
    assert victim.read_text() == "not memp's"
    assert _manifest(path)["columns"] != "../victim.npz"
