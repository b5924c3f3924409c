"""Many processes writing one memory at once lose nothing: the library-level concurrency suite.

N processes (spawned, each with its own connection) × M operations on each write path, on SQLite
and on PostgreSQL: outcomes under each updater, duplicate adds that merge, revisions made from a
head read earlier, deprecations and restores, imports. Afterwards every counter, event and
provenance id is checked exactly against what the workers did: 0 lost.

    pytest tests/store/test_concurrency.py
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections import Counter

import pytest

from memp import InvalidInputError, TrajectoryConflictError
from memp.embed import HashingEmbedder
from memp.memory import Memory
from memp.store import open_store
from memp.types import Event, Task, Trajectory
from memp.update import DeprecationRule
from tests.conftest import clean_apple_trajectory
from tests.store.contract import make_procedure

N, M = 4, 25  # processes × operations each
NS = "shared"
TASK = "put a clean apple in fridge."


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return request.getfixturevalue("pg_url")


def _run(target, location: str, worker: int, queue, args: tuple) -> None:
    try:
        queue.put((worker, target(location, worker, *args)))
    except BaseException:  # noqa: BLE001 - any error is a failure, reported to the test
        queue.put((worker, traceback.format_exc()))


def run_workers(target, location: str, *args) -> list:
    """Run ``target(location, worker, *args)`` in N spawned processes at once; their results."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_run, args=(target, location, w, queue, args)) for w in range(N)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=300) for _ in procs)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    failures = [r for r in results.values() if isinstance(r, str)]
    assert not failures, failures[0]
    return [results[w] for w in range(N)]


def memory(location: str, update: str) -> Memory:
    # Deprecation off: which runs come after a retirement would depend on timing, not on the data.
    return Memory.open(location, namespace=NS, embedder=HashingEmbedder(), update=update,
                       deprecation=DeprecationRule(min_uses=10**9))


def provenance_ids(store) -> set[str]:
    heads = store.list(NS, limit=1000)
    return {t for p in heads for t in p.provenance.trajectory_ids}


def lost(expected: set, found: set, what: str) -> str:
    """'' when nothing expected is missing, else how much, for the assertion message."""
    missing = expected - found
    return f"{len(missing)} of {len(expected)} {what} lost" if missing else ""


# -- outcomes: retrieve, run, report, under each update strategy --------------------------------


def _outcomes(location: str, worker: int, update: str) -> list[tuple[str, bool]]:
    done = []
    with memory(location, update) as mem:
        for i in range(M):
            hits = mem.retrieve(TASK, k=1)
            run = clean_apple_trajectory(success=(worker + i) % 2 == 0, traj_id=f"w{worker}-{i}")
            mem.update(run, used=hits)
            done.append((run.id, bool(run.success)))
    return done


@pytest.mark.parametrize("update", ["vanilla", "validation", "adjustment"])
def test_outcomes_lose_no_use_success_or_provenance(location, update):
    with memory(location, update) as mem:
        mem.add(clean_apple_trajectory(traj_id="seed"))
    runs = [r for worker in run_workers(_outcomes, location, update) for r in worker]
    successes = {t for t, ok in runs if ok}
    failures = {t for t, ok in runs if not ok}
    with open_store(location) as store:
        (head,) = store.list(NS)  # every run followed the one procedure, and merged into it
        used = store.events(NS, head.id, kind="used")
        assert len(used) == N * M and sum(e.detail["success"] for e in used) == len(successes)
        assert (head.stats.uses, head.stats.successes) == (N * M, len(successes))
        learned = {"vanilla": successes | failures, "validation": successes,
                   "adjustment": successes | failures}[update]
        assert not lost(learned | {"seed"}, provenance_ids(store), "provenance ids")
        assert provenance_ids(store) == learned | {"seed"}
        revised = failures if update == "adjustment" else set()
        assert {e.trajectory_id for e in store.events(NS, head.id, kind="revised")} == revised
        assert head.version == 1 + len(revised)
        merged = store.events(NS, head.id, kind="merged")
        assert sorted(e.trajectory_id for e in merged) == sorted(learned - revised)
        assert all(store.get_trajectory(NS, t).id == t for t, _ in runs)


# -- the same runs reported by every process at once (retries racing the first report) ----------


def _report_again(location: str, worker: int, update: str, runs: list[str]) -> int:
    with memory(location, update) as mem:
        for raw in runs:
            mem.update(Trajectory.model_validate_json(raw), used=mem.retrieve(TASK, k=1))
    return len(runs)


@pytest.mark.parametrize("update", ["vanilla", "validation", "adjustment"])
def test_a_run_reported_by_many_processes_at_once_counts_once(location, update):
    with memory(location, update) as mem:
        mem.add(clean_apple_trajectory(traj_id="seed"))
    runs = [clean_apple_trajectory(success=i % 2 == 0, traj_id=f"r{i}") for i in range(M)]
    run_workers(_report_again, location, update, [r.model_dump_json() for r in runs])
    successes = {r.id for r in runs if r.success}
    with open_store(location) as store:
        (head,) = store.list(NS)
        used = store.events(NS, head.id, kind="used")
        assert sorted(e.trajectory_id for e in used) == sorted(r.id for r in runs)  # each once
        assert (head.stats.uses, head.stats.successes) == (M, len(successes))
        revised = {r.id for r in runs if not r.success} if update == "adjustment" else set()
        assert sorted(e.trajectory_id for e in store.events(NS, head.id, kind="revised")) == sorted(revised)
        assert head.version == 1 + len(revised)
        learned = {r.id for r in runs} if update == "vanilla" else successes
        merged = store.events(NS, head.id, kind="merged")
        assert sorted(e.trajectory_id for e in merged) == sorted(learned - revised)


# -- failures that followed nothing, of one kind, from everyone at once: one evidence record ----


def _fail_unguided(location: str, worker: int) -> list[str]:
    with memory(location, "adjustment") as mem:
        runs = [clean_apple_trajectory(success=False, traj_id=f"w{worker}-{i}") for i in range(M)]
        for run in runs:
            mem.update(run, used=[])
    return [r.id for r in runs]


def test_failures_of_one_kind_join_one_evidence_record(location):
    ids = {t for worker in run_workers(_fail_unguided, location) for t in worker}
    with open_store(location) as store:
        (record,) = store.list(NS, builder="evidence")  # not one per process that failed first
        assert record.extra["failed_runs"] == N * M and record.version == N * M
        assert set(record.provenance.trajectory_ids) == ids


# -- failures that missed memory's procedure of their kind, from everyone at once: one copy -----


def _fail_missing(location: str, worker: int) -> list[str]:
    with memory(location, "adjustment") as mem:
        runs = [clean_apple_trajectory("tomato", "cabinet", success=False, traj_id=f"w{worker}-{i}")
                for i in range(M)]
        for run in runs:
            mem.update(run, used=[])
    return [r.id for r in runs]


def test_failures_that_missed_a_procedure_file_one_copy_of_it(location):
    with memory(location, "adjustment") as mem:
        source = mem.add(clean_apple_trajectory(traj_id="source")).added[0]
    ids = {t for worker in run_workers(_fail_missing, location) for t in worker}
    with open_store(location) as store:
        assert store.list(NS, builder="evidence") == []
        (copy,) = [p for p in store.list(NS) if p.provenance.derived_from]  # not one per process
        assert copy.provenance.derived_from == source and copy.key == "put a clean tomato in cabinet."
        kinds = Counter(e.kind for e in store.events(NS, copy.id))
        assert kinds == {"created": 1, "merged": N * M - 1}
        assert set(copy.provenance.trajectory_ids) == ids and store.count(NS) == 2


# -- the same procedure added by everyone at once: one lineage, every source kept ---------------


def _add_duplicates(location: str, worker: int) -> list[str]:
    with memory(location, "vanilla") as mem:
        return [mem.add(clean_apple_trajectory(traj_id=f"w{worker}-{i}")).trajectory_id for i in range(M)]


def test_duplicate_adds_merge_into_one_procedure(location):
    ids = {t for worker in run_workers(_add_duplicates, location) for t in worker}
    with open_store(location) as store:
        assert store.count(NS) == 1
        (head,) = store.list(NS)
        kinds = Counter(e.kind for e in store.events(NS, head.id))
        assert kinds == {"created": 1, "merged": N * M - 1}
        assert not lost(ids, set(head.provenance.trajectory_ids), "provenance ids")
        assert set(head.provenance.trajectory_ids) == ids and len(ids) == N * M


# -- revisions made from a head read earlier, with uses counted against that (now old) version --


def _revise(location: str, worker: int, pid: str) -> list[str]:
    done = []
    with open_store(location) as store:
        for i in range(M):
            run = f"w{worker}-{i}"
            head = store.get(NS, pid)
            store.record_use(NS, pid, head.version, success=i % 2 == 0, trajectory_id=run)
            while True:  # a revision must follow the head: on a race, re-make it from the new head
                prov = head.provenance.model_copy(update={"trajectory_ids": [*head.provenance.trajectory_ids, run]})
                try:
                    store.put(head.model_copy(update={"version": head.version + 1, "parent_version": head.version,
                                                      "provenance": prov}), event="revised", trajectory_id=run)
                    break
                except InvalidInputError:
                    head = store.get(NS, pid)
            done.append(run)
    return done


def test_revisions_keep_every_use_and_every_source(location):
    p = make_procedure("put apple in fridge", namespace=NS)
    with open_store(location) as store:
        store.put(p)
    runs = {t for worker in run_workers(_revise, location, p.id) for t in worker}
    with open_store(location) as store:
        head = store.get(NS, p.id)
        assert head.version == 1 + N * M
        assert (head.stats.uses, head.stats.successes) == (N * M, N * len(range(0, M, 2)))
        assert not lost(runs, set(head.provenance.trajectory_ids), "provenance ids")
        assert set(head.provenance.trajectory_ids) == runs | {"t1"}
        assert store.count_events(NS, p.id, kind="revised") == store.count_events(NS, p.id, kind="used") == N * M


# -- deprecations and restores racing with uses ------------------------------------------------


def _toggle(location: str, worker: int, pid: str) -> Counter:
    done: Counter = Counter()
    with open_store(location) as store:
        for i in range(M):
            store.record_use(NS, pid, 1, success=i % 3 == 0)
            done["used"] += 1
            for status, kind in (("deprecated", "deprecated"), ("active", "restored")):
                try:
                    store.set_status(NS, pid, status, reason=f"worker {worker} step {i}")
                    done[kind] += 1
                    break
                except InvalidInputError:  # already so: another worker got there first
                    continue
    return done


def test_deprecations_and_restores_keep_exact_evidence(location):
    p = make_procedure("put apple in fridge", namespace=NS)
    with open_store(location) as store:
        store.put(p)
    done = sum(run_workers(_toggle, location, p.id), Counter())
    with open_store(location) as store:
        log: list[Event] = store.events(NS, p.id)
        head = store.get(NS, p.id)
    kinds = Counter(e.kind for e in log)
    assert kinds["used"] == done["used"] == N * M
    assert (kinds["deprecated"], kinds["restored"]) == (done["deprecated"], done["restored"])
    assert head.status == ("deprecated" if done["deprecated"] > done["restored"] else "active")
    # Each status change's evidence is exactly the uses since the last restore, and so are the
    # head's counts at the end: no use fell between a read and a write.
    since = 0
    for e in log:
        if e.kind == "used":
            since += 1
        elif e.kind in ("deprecated", "restored"):
            assert e.detail["uses"] == since, e
            since = 0 if e.kind == "restored" else since
    assert head.stats.uses == since


# -- imports: every batch whole or not at all, a shared trajectory kept as it was ---------------


def _import(location: str, worker: int) -> dict[str, list[str]]:
    shared = Trajectory(id="shared-run", task=Task(text=TASK))
    other = shared.model_copy(update={"task": Task(text="something else")})
    done: dict[str, list[str]] = {"stored": [], "refused": []}
    with open_store(location) as store:
        for i in range(M):
            p = make_procedure(f"task {worker} {i}", namespace=NS)
            conflict = i % 5 == 4  # every fifth batch brings another run under the shared id
            records = [{"type": "trajectory", "namespace": NS,
                        "trajectory": (other if conflict else shared).model_dump(mode="json")},
                       {"type": "procedure", "procedure": p.model_dump(mode="json")},
                       {"type": "event", "event": {"namespace": NS, "procedure_id": p.id, "version": 1,
                                                   "kind": "imported"}}]
            try:
                store.import_records(records)
                done["stored"].append(p.id)
            except TrajectoryConflictError:
                done["refused"].append(p.id)
    return done


def test_imports_store_whole_batches_and_replace_nothing(location):
    results = run_workers(_import, location)
    stored = {pid for r in results for pid in r["stored"]}
    refused = {pid for r in results for pid in r["refused"]}
    assert len(stored) == N * (M - M // 5) and len(refused) == N * (M // 5)
    with open_store(location) as store:
        assert {p.id for p in store.list(NS, limit=1000)} == stored
        assert store.count_events(NS, kind="imported") == len(stored)
        assert store.get_trajectory(NS, "shared-run").task.text == TASK



def _open_new_files(paths: list[str], barrier, results) -> None:
    from memp.store.sqlite import SQLiteStore

    for path in paths:  # every process opens each new file at the same moment
        barrier.wait(timeout=60)
        try:
            SQLiteStore(path).close()
            results.put("ok")
        except Exception as err:  # reported, not raised: the parent counts them
            results.put(repr(err))


def test_processes_opening_one_new_sqlite_file_at_once_all_open_it(tmp_path):
    """The first process creates the schema and switches the file to WAL; a process opening the
    file meanwhile met "database is locked" (SQLite does not wait for that lock) and was told the
    file was not a memp database: about one open in 30."""
    paths = [str(tmp_path / f"new-{trial}.db") for trial in range(40)]
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(N), ctx.Queue()
    procs = [ctx.Process(target=_open_new_files, args=(paths, barrier, results)) for _ in range(N)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=300) for _ in range(N * len(paths))]
    for proc in procs:
        proc.join(60)
    assert [o for o in outcomes if o != "ok"] == [] and len(outcomes) == N * len(paths)
