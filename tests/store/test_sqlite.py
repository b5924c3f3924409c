import multiprocessing as mp
import sqlite3

import numpy as np
import pytest

from memp import InvalidInputError, StoreCorruptError, StoreError, StoreVersionError
from memp.store.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.store.contract import StoreContract, make_procedure


@pytest.fixture
def store(tmp_path):
    with SQLiteStore(tmp_path / "memp.db") as s:
        yield s


@pytest.fixture
def twin(store):
    with SQLiteStore(store.path) as s:
        yield s


@pytest.fixture
def empty_store(tmp_path):
    with SQLiteStore(tmp_path / "other.db") as s:
        yield s


class TestSQLiteContract(StoreContract):
    pass


def test_directory_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        SQLiteStore(tmp_path)


def test_garbage_file_is_reported_corrupt_and_left_alone(tmp_path):
    path = tmp_path / "memp.db"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreCorruptError, match="not a readable memp database"):
        SQLiteStore(path)
    assert path.read_bytes() == before


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "memp.db"
    SQLiteStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StoreVersionError, match="upgrade memp"):
        SQLiteStore(path)


def test_reopen_keeps_data_and_passes_integrity_check(tmp_path):
    path = tmp_path / "memp.db"
    p = make_procedure("x y")
    with SQLiteStore(path) as s:
        s.put(p)
    with SQLiteStore(path) as s:
        assert s.get("default", p.id).key == "x y"
        assert s.check() == []


def _hammer(path: str, pid: str, n: int) -> None:
    with SQLiteStore(path) as s:
        for i in range(n):
            s.record_use("default", pid, 1, success=i % 2 == 0)


def test_concurrent_processes_lose_no_increment(tmp_path):
    path = tmp_path / "memp.db"
    p = make_procedure("x y")
    with SQLiteStore(path) as s:
        s.put(p)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(path), p.id, 40)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    with SQLiteStore(path) as s:
        stats = s.get("default", p.id).stats
        assert (stats.uses, stats.successes) == (160, 80)
        assert sum(1 for e in s.events("default", p.id) if e.kind == "used") == 160


def _foreign_file(path):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (name TEXT)")
    con.execute("INSERT INTO users VALUES ('ada')")
    con.commit()
    con.close()


@pytest.mark.parametrize("read_only", [False, True])
def test_a_foreign_sqlite_file_is_refused_before_anything_is_written(tmp_path, read_only):
    path = tmp_path / "other.sqlite"
    _foreign_file(path)
    before = path.read_bytes()
    with pytest.raises(StoreCorruptError, match="not a memp database"):
        SQLiteStore(path, read_only=read_only)
    assert path.read_bytes() == before  # still in rollback-journal mode, no tables added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.sqlite"]


def test_read_only_needs_an_existing_memp_file_and_never_writes(tmp_path):
    path = tmp_path / "memp.db"
    with pytest.raises(StoreError, match="no memp database"):
        SQLiteStore(path, read_only=True)
    assert not path.exists()
    p = make_procedure("x y")
    with SQLiteStore(path) as s:
        s.put(p)
    with SQLiteStore(path, read_only=True) as s:
        assert s.get("default", p.id).key == "x y" and s.vectors("default").refs == [(p.id, 1)]
        with pytest.raises(StoreError, match="read-only"):
            s.record_use("default", p.id, 1, success=True)
        with pytest.raises(StoreError, match="read-only"):
            s.put(make_procedure("z w"))
    with SQLiteStore(path) as s:
        assert s.count("default") == 1 and s.get("default", p.id).stats.uses == 0


def test_a_schema_1_file_is_upgraded_with_the_vector_sizes_filled_in(tmp_path):
    from memp.store.sqlite import MIGRATIONS

    path = tmp_path / "old.db"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0] + "INSERT INTO meta VALUES ('schema_version', '1');")
    p = make_procedure("x y")
    con.execute("INSERT INTO procedures VALUES ('default', ?, 1, 1, 'active', NULL, 0, 0, '{}', ?, '2024-05-01')",
                (p.id, np.asarray(p.embedding, np.float32).tobytes()))
    con.commit()
    con.close()
    with SQLiteStore(path, read_only=True) as s:  # read-only: read as it is, not upgraded
        assert s.schema_version() == 1
    with SQLiteStore(path) as s:
        assert s.schema_version() == SCHEMA_VERSION == 2
        assert s._read("SELECT dim FROM procedures") == [(384,)]
        with pytest.raises(InvalidInputError, match="384-dimensional"):
            s.put(make_procedure("z w").model_copy(update={"embedding": [1.0] * 8, "keyword_embeddings": {}}))
