"""PostgresStore against a real server: the shared contract, plus what only PostgreSQL has."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

pytest.importorskip("psycopg", reason="PostgreSQL tests need the 'postgres' extra")

from memp import Memory, StoreVersionError  # noqa: E402
from memp.embed import HashingEmbedder  # noqa: E402
from memp.store import open_store  # noqa: E402
from memp.store.postgres import SCHEMA_VERSION, PostgresStore  # noqa: E402
from tests.store.contract import EMB, StoreContract, make_procedure  # noqa: E402


@pytest.fixture
def store(pg_url):
    with PostgresStore(pg_url) as s:
        yield s


@pytest.fixture
def twin(store):
    with PostgresStore(store.url) as s:
        yield s


@pytest.fixture
def empty_store(pg_database):
    with PostgresStore(pg_database()) as s:
        yield s


class TestPostgresContract(StoreContract):
    pass


def test_open_store_routes_urls(pg_url):
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    store.close()


def test_memory_open_just_works(pg_url, apple_run):
    with Memory.open(pg_url, embedder=HashingEmbedder(), update="vanilla") as mem:
        report = mem.update(apple_run)
        assert len(report.added) == 1
        hits = mem.retrieve("put a clean apple in the fridge", k=2)
        assert [h.procedure.ref for h in hits] == report.added


def test_reopen_migrates_once_and_keeps_data(pg_url):
    p = make_procedure("x y")
    with PostgresStore(pg_url) as s:
        s.put(p)
        assert s.schema_version() == SCHEMA_VERSION
    with PostgresStore(pg_url) as s:
        assert s.get("default", p.id).key == "x y"


def test_newer_schema_is_refused(pg_url):
    with PostgresStore(pg_url) as s:
        s._db.execute("UPDATE memp_meta SET value=%s WHERE key='schema_version'", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreVersionError, match="upgrade memp"):
        PostgresStore(pg_url)


def test_search_uses_hnsw_and_agrees_with_exact_scan(store):
    rng = np.random.default_rng(0)
    keys = [f"task {i} {w}" for i, w in enumerate(rng.choice(["apple", "mug", "egg", "lamp"], 300))]
    for key in keys:
        store.put(make_procedure(key))
    store.put(make_procedure("elsewhere", namespace="other"))
    query = EMB.embed(["task 17 egg"])[0]
    exact = store.vectors("default").top(query, 10)
    fast = store.search("default", query, 10)
    # Approximate, but at this size HNSW finds the same neighbours (scores tie among many rows,
    # so compare scores, and the refs only where the score is unique).
    assert [s for _, s in fast] == pytest.approx([s for _, s in exact], abs=1e-5)
    assert fast[0][0] == exact[0][0]
    plan = "\n".join(r[0] for r in store._read(
        "EXPLAIN SELECT id FROM memp_procedures WHERE namespace='default' AND dim=384 AND is_head "
        "AND status='active' ORDER BY embedding::vector(384) <=> ?::vector(384) LIMIT 10", (query,)))
    assert "memp_procedures_hnsw_384" in plan or "Seq Scan" in plan  # the planner's choice at 300 rows
    assert store.search("other", query, 10)[0][0][1] == 1


def test_search_in_a_small_namespace_among_a_large_one_finds_everything(store):
    for i in range(200):
        store.put(make_procedure(f"big namespace task {i}", namespace="big"))
    small = [make_procedure(f"small task {i}", namespace="small") for i in range(3)]
    for p in small:
        store.put(p)
    got = store.search("small", EMB.embed(["small task"])[0], 10)
    assert sorted(r for r, _ in got) == sorted((p.id, 1) for p in small)


def test_search_skips_deprecated_and_old_versions(store):
    p, q = make_procedure("heat egg"), make_procedure("cool egg")
    store.put(p)
    store.put(q)
    store.put(p.model_copy(update={"version": 2, "parent_version": 1}), event="revised")
    store.set_status("default", q.id, "deprecated", reason="test")
    got = store.search("default", EMB.embed(["egg"])[0], 5)
    assert [r for r, _ in got] == [(p.id, 2)]


def _hammer(url: str, pid: str, n: int) -> None:
    with PostgresStore(url) as s:
        for i in range(n):
            s.record_use("default", pid, 1, success=i % 2 == 0)


def test_concurrent_processes_lose_no_increment(pg_url):
    p = make_procedure("x y")
    with PostgresStore(pg_url) as s:
        s.put(p)
        gen = s.generation()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(pg_url, p.id, 40)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    with PostgresStore(pg_url) as s:
        stats = s.get("default", p.id).stats
        assert (stats.uses, stats.successes) == (160, 80)
        assert sum(1 for e in s.events("default", p.id) if e.kind == "used") == 160
        assert s.generation() == gen + 160


def test_nul_characters_round_trip_in_bodies_and_are_refused_in_ids(store):
    from memp import InvalidInputError
    from memp.types import Step, Task, Trajectory

    t = Trajectory(task=Task(text="a\x00b"), steps=[Step(action="x", observation="nul \x00 here")])
    store.add_trajectory("default", t)
    assert store.get_trajectory("default", t.id) == t
    with pytest.raises(InvalidInputError, match="NUL"):
        store.add_trajectory("default", Trajectory(id="bad\x00id", task=Task(text="t")))
    gen = store.generation()
    with pytest.raises(InvalidInputError):
        store.put(make_procedure("x y", task_type="bad\x00type"))
    assert store.count("default") == 0 and store.generation() == gen


def test_read_only_needs_memp_tables_and_never_writes(pg_database):
    from memp import StoreError

    url = pg_database()
    with pytest.raises(StoreError, match="holds no memp memory"):
        PostgresStore(url, read_only=True)
    import psycopg

    with psycopg.connect(url) as con:  # the refused open created nothing
        assert con.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
    with PostgresStore(url) as s:
        p = s.put(make_procedure("x y"))
    with open_store(url, read_only=True) as s:
        assert s.get("default", p.id).key == "x y"
        assert s.search("default", EMB.embed(["x y"])[0], 1)[0][0] == (p.id, 1)
        with pytest.raises(StoreError, match="read-only"):
            s.record_use("default", p.id, 1, success=True)
