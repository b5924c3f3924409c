"""The contract every Store backend must pass.

A backend's test module subclasses ``StoreContract`` and provides a ``store`` fixture that yields
an empty store, and ``twin``: a second store object on the same database, as another process would
open it. Vectors here come from the hashing embedder, so the suite needs no model.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from memp import InvalidInputError, NamespaceError, ProcedureNotFoundError, TrajectoryConflictError
from memp.embed import HashingEmbedder, embed_procedure
from memp.types import Procedure, ProcedureStats, Provenance, Step, Task, Trajectory

EMB = HashingEmbedder()


def make_procedure(key: str, namespace: str = "default", **kw) -> Procedure:
    p = Procedure(key=key, namespace=namespace, keywords=kw.pop("keywords", {"object": key.split()[-1]}),
                  script=kw.pop("script", [f"do {key}"]), steps=[Step(action="go", observation="ok")],
                  provenance=Provenance(trajectory_ids=["t1"]), **kw)
    return embed_procedure(p, EMB)


def same_table(a, b) -> bool:
    """Two VectorTables with the same refs in the same order and bit-identical matrices."""
    return a.refs == b.refs and a.matrix.shape == b.matrix.shape and np.array_equal(a.matrix, b.matrix)


T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)


def heads_for_listing(store) -> dict[str, Procedure]:
    """Six heads with known builders, task types, statistics and update times (b is deprecated)."""
    specs = {  # name: (builder, task_type, uses, successes, minutes after T0)
        "a": ("script", "clean", 4, 1, 5),     # 25%
        "b": ("script", "heat", 2, 2, 1),      # 100%, deprecated below
        "c": ("trajectory", "clean", 0, 0, 9),  # never used: no rate
        "d": ("trajectory", None, 4, 3, 3),    # 75%
        "e": ("script", "clean", 8, 2, 7),     # 25%, like a but more uses
        "f": ("proceduralization", "cool", 0, 0, 2),
    }
    made = {}
    for name, (builder, task_type, uses, successes, minutes) in specs.items():
        at = T0 + timedelta(minutes=minutes)
        p = make_procedure(f"task {name}", builder=builder, task_type=task_type,
                           stats=ProcedureStats(uses=uses, successes=successes), created_at=at, updated_at=at)
        made[name] = store.put(p)
    store.set_status("default", made["b"].id, "deprecated", reason="test")  # now the newest update
    store.put(make_procedure("elsewhere", namespace="other", builder="script", task_type="clean"))
    return made


class StoreContract:
    def test_put_get_round_trip_with_vectors(self, store):
        p = make_procedure("put apple in fridge")
        store.put(p, trajectory_id="t1")
        got = store.get("default", p.id)
        assert got.model_dump(exclude={"embedding", "keyword_embeddings"}) == p.model_dump(
            exclude={"embedding", "keyword_embeddings"})
        assert got.embedding == pytest.approx(p.embedding, abs=1e-6)
        assert got.keyword_embeddings.keys() == p.keyword_embeddings.keys()

    def test_get_many_reads_each_ref_as_get_does_in_the_order_asked(self, store):
        made = [make_procedure(f"put apple {i} in fridge", keywords={"object": f"apple{i}", "target": "fridge"})
                for i in range(5)]
        for p in made:
            store.put(p)
        store.put(made[2].model_copy(update={"version": 2, "parent_version": 1, "script": ["v2"]}), event="revised")
        store.put(make_procedure("put apple 0 in fridge", namespace="other"))  # same key elsewhere
        refs = [(made[3].id, 1), (made[2].id, 2), (made[0].id, 1), (made[2].id, 1), (made[3].id, 1)]
        many = store.get_many("default", refs)
        one_by_one = [store.get("default", pid, version) for pid, version in refs]
        assert [p.model_dump() for p in many] == [p.model_dump() for p in one_by_one]
        assert [(p.id, p.version) for p in many] == refs
        assert set(many[0].keyword_embeddings) == {"object", "target"}
        bare = store.get_many("default", refs, vectors=False)  # the same procedures, vectors unread
        assert [p.model_dump(exclude={"embedding", "keyword_embeddings"}) for p in bare] == \
            [p.model_dump(exclude={"embedding", "keyword_embeddings"}) for p in one_by_one]
        assert all(p.embedding is None and p.keyword_embeddings == {} for p in bare)
        assert store.get_many("default", []) == []
        with pytest.raises(ProcedureNotFoundError):
            store.get_many("default", [(made[0].id, 1), (made[1].id, 7)])
        with pytest.raises(ProcedureNotFoundError):
            store.get_many("other", [(made[1].id, 1)])
        with pytest.raises(ProcedureNotFoundError):
            store.get_many("default", [(made[1].id, 7)], vectors=False)

    def test_versions_are_kept_and_only_head_is_searched(self, store):
        p = make_procedure("put apple in fridge")
        store.put(p)
        v2 = p.model_copy(update={"version": 2, "parent_version": 1, "script": ["new"]})
        store.put(v2, event="revised", trajectory_id="fail-1")
        assert [v.version for v in store.history("default", p.id)] == [1, 2]
        assert store.get("default", p.id).script == ["new"]
        assert store.get("default", p.id, version=1).script == p.script
        assert store.refs("default") == [(p.id, 2)]
        assert store.vectors("default").refs == [(p.id, 2)]
        kinds = [(e.kind, e.version, e.trajectory_id) for e in store.events("default", p.id)]
        assert kinds == [("created", 1, None), ("revised", 2, "fail-1")]

    def test_version_must_follow_head(self, store):
        p = make_procedure("a b")
        store.put(p)
        with pytest.raises(InvalidInputError, match="next version must be 2"):
            store.put(p.model_copy(update={"version": 3}))
        with pytest.raises(InvalidInputError):
            store.put(p)  # version 1 again
        assert [v.version for v in store.history("default", p.id)] == [1]

    def test_namespaces_are_isolated(self, store):
        a = make_procedure("task one", namespace="agent-a")
        b = make_procedure("task two", namespace="agent-b")
        store.put(a)
        store.put(b)
        assert store.refs("agent-a") == [(a.id, 1)]
        assert store.count("agent-b") == 1
        with pytest.raises(ProcedureNotFoundError):
            store.get("agent-a", b.id)
        assert store.namespaces() == ["agent-a", "agent-b"]

    def test_bad_namespace_is_refused(self, store):
        with pytest.raises(NamespaceError, match="invalid namespace"):
            store.put(make_procedure("x y", namespace="bad space"))
        assert store.namespaces() == []

    def test_record_use_counts_and_logs(self, store):
        p = make_procedure("x y")
        store.put(p)
        store.record_use("default", p.id, 1, success=True, trajectory_id="r1")
        stats = store.record_use("default", p.id, 1, success=False, trajectory_id="r2")
        assert (stats.uses, stats.successes) == (2, 1)
        assert store.get("default", p.id).stats == stats
        with pytest.raises(ProcedureNotFoundError):
            store.record_use("default", "nope", 1, success=True)

    def test_deprecate_and_restore(self, store):
        p = make_procedure("x y")
        store.put(p)
        for _ in range(3):
            store.record_use("default", p.id, 1, success=False)
        d = store.set_status("default", p.id, "deprecated", reason="3 failures")
        assert d.status == "deprecated" and d.status_reason == "3 failures"
        assert store.refs("default") == [] and store.vectors("default").refs == []
        assert store.count("default", status="deprecated") == 1
        with pytest.raises(InvalidInputError, match="already deprecated"):
            store.set_status("default", p.id, "deprecated", reason="again")
        r = store.set_status("default", p.id, "active", reason="give it another go")
        assert r.status == "active" and r.stats.uses == 0
        assert store.refs("default") == [(p.id, 1)]
        evidence = [e.detail for e in store.events("default", p.id) if e.kind == "deprecated"][0]
        assert evidence["uses"] == 3 and evidence["successes"] == 0

    def test_merge_provenance(self, store):
        p = make_procedure("x y")
        store.put(p)
        t = Trajectory(id="t2", task=Task(text="x y"), model="gpt-x", agent="a1")
        merged = store.merge_provenance("default", p.id, t, similarity=0.97)
        assert merged.provenance.trajectory_ids == ["t1", "t2"]
        assert merged.provenance.models == ["gpt-x"] and merged.version == 1

    def test_vector_search_orders_by_similarity(self, store):
        keys = ["put apple in fridge", "heat egg in microwave", "look at bowl under lamp"]
        procs = [make_procedure(k) for k in keys]
        for p in procs:
            store.put(p)
        query = EMB.embed(["heat an egg in the microwave"])[0]
        top = store.vectors("default").top(query, 2)
        assert top[0][0] == (procs[1].id, 1) and len(top) == 2
        assert top[0][1] > top[1][1]
        kw = store.vectors("default", "kw:object")
        assert sorted(kw.refs) == sorted((p.id, 1) for p in procs)

    def test_refs_follow_storage_order_not_ids(self, store):
        procs = [make_procedure(f"task {i}") for i in range(6)]
        for p in procs:
            store.put(p)
        store.put(procs[0].model_copy(update={"version": 2, "parent_version": 1}), event="revised")
        expected = [(procs[0].id, 2)] + [(p.id, 1) for p in procs[1:]]
        assert store.refs("default") == expected
        assert store.vectors("default").refs == expected

    def test_vectors_see_new_writes(self, store):
        assert store.vectors("default").refs == []
        p = make_procedure("x y")
        store.put(p)
        assert store.vectors("default").refs == [(p.id, 1)]

    def test_trajectories_round_trip(self, store):
        t = Trajectory(task=Task(text="t"), steps=[Step(action="a", observation="o")], reward=1)
        store.add_trajectory("default", t)
        assert store.get_trajectory("default", t.id) == t
        with pytest.raises(ProcedureNotFoundError):
            store.get_trajectory("default", "missing")

    def test_list_pages_and_filters(self, store):
        for i in range(5):
            store.put(make_procedure(f"task {i}", task_type="even" if i % 2 == 0 else "odd"))
        first, second = store.list("default", limit=3), store.list("default", limit=3, offset=3)
        assert len(first) == 3 and len(second) == 2
        assert {p.id for p in first}.isdisjoint({p.id for p in second})
        assert {p.task_type for p in store.list("default", task_type="odd")} == {"odd"}

    def test_export_import_reproduces(self, store, empty_store):
        p = make_procedure("x y")
        store.put(p)
        store.put(p.model_copy(update={"version": 2, "parent_version": 1}), event="revised")
        store.record_use("default", p.id, 2, success=True)
        store.add_trajectory("default", Trajectory(task=Task(text="x y")))
        store.put(make_procedure("other", namespace="ns2"))
        records = list(store.export_records())
        empty_store.import_records(records)
        assert list(empty_store.export_records()) == records

    def test_bad_import_writes_nothing(self, store):
        good = {"type": "procedure", "head": True, "procedure": make_procedure("x y").model_dump(mode="json")}
        bad = {"type": "procedure", "procedure": {"key": ""}}
        with pytest.raises(InvalidInputError, match="record 2"):
            store.import_records([good, bad])
        assert store.count("default") == 0

    # -- listing: filters, sorts, pages, totals, facets

    def test_list_sorts_by_update_uses_and_success_rate(self, store):
        h = heads_for_listing(store)
        ids = {p.id: name for name, p in h.items()}

        def names(**kw):
            return "".join(ids[p.id] for p in store.list("default", limit=100, **kw))

        assert names() == names(sort="updated", order="desc") == "bceadf"
        assert names(sort="updated", order="asc") == "fdaecb"
        # Equal uses (a, d): the newer first, in either order.
        assert names(sort="uses") == "eadbcf" and names(sort="uses", order="asc") == "cfbade"
        # a and e tie at 25% (e is newer); c and f were never used: last both ways, newest first.
        assert names(sort="success_rate") == "bdeacf"
        assert names(sort="success_rate", order="asc") == "eadbcf"

    def test_list_filters_and_count_agree(self, store):
        h = heads_for_listing(store)
        ids = {p.id: name for name, p in h.items()}
        cases = [({}, "abcdef"), ({"builder": "script"}, "abe"), ({"task_type": "clean"}, "ace"),
                 ({"status": "active", "builder": "script"}, "ae"), ({"status": "deprecated"}, "b"),
                 ({"builder": "script", "task_type": "clean", "status": "active"}, "ae"),
                 ({"builder": "nobody"}, "")]
        for filters, expected in cases:
            got = store.list("default", sort="uses", limit=100, **filters)
            assert "".join(sorted(ids[p.id] for p in got)) == expected, filters
            assert store.count("default", **filters) == len(expected), filters
        assert store.count("other", builder="script", task_type="clean") == 1

    def test_list_pages_through_a_sorted_order(self, store):
        heads_for_listing(store)
        whole = [p.id for p in store.list("default", sort="success_rate", order="asc", limit=100)]
        pages = [store.list("default", sort="success_rate", order="asc", limit=4, offset=o) for o in (0, 4, 8)]
        assert [len(page) for page in pages] == [4, 2, 0]
        assert [p.id for page in pages for p in page] == whole
        assert store.list("default", limit=0) == []

    def test_bad_sort_order_or_page_is_refused(self, store):
        store.put(make_procedure("x y"))
        with pytest.raises(InvalidInputError, match="unknown sort 'cleverness'"):
            store.list("default", sort="cleverness")
        with pytest.raises(InvalidInputError, match="unknown order 'sideways'"):
            store.list("default", order="sideways")
        with pytest.raises(InvalidInputError, match="limit and offset"):
            store.list("default", offset=-1)
        with pytest.raises(InvalidInputError, match="limit and offset"):
            store.events("default", limit=-5)

    def test_facets_are_the_heads_task_types_and_builders(self, store):
        h = heads_for_listing(store)
        facets = store.facets("default")
        assert facets.task_types == ["clean", "cool", "heat"]  # d has none
        assert facets.builders == ["proceduralization", "script", "trajectory"]
        # Only heads count: revising f into another task type and builder replaces its values.
        f2 = h["f"].model_copy(update={"version": 2, "parent_version": 1, "task_type": "slice", "builder": "script"})
        store.put(f2, event="revised")
        facets = store.facets("default")
        assert facets.task_types == ["clean", "heat", "slice"] and facets.builders == ["script", "trajectory"]
        assert store.facets("default", limit=1).task_types == ["clean"]
        assert store.facets("other").task_types == ["clean"] and store.facets("empty").builders == []

    # -- events: by kind, newest first, paged

    def test_events_filter_by_kind_newest_first_with_pages(self, store):
        p, q = make_procedure("x y"), make_procedure("z w")
        store.put(p)
        store.put(q)
        for pid in (p.id, q.id, p.id):
            store.set_status("default", pid, "deprecated", reason=f"retire {pid}")
            if pid == p.id:
                store.set_status("default", pid, "active", reason="again")
        deprecations = store.events("default", kind="deprecated", newest_first=True)
        assert [(e.procedure_id, e.kind) for e in deprecations] == [(p.id, "deprecated"), (q.id, "deprecated"),
                                                                     (p.id, "deprecated")]
        assert [e.seq for e in deprecations] == sorted((e.seq for e in deprecations), reverse=True)
        assert store.events("default", kind="deprecated", newest_first=True, limit=1, offset=1) == deprecations[1:2]
        assert store.count_events("default", kind="deprecated") == 3
        assert store.count_events("default", p.id, kind="restored") == 2
        assert store.count_events("default") == len(store.events("default")) == 7
        assert [e.kind for e in store.events("default", p.id, limit=2)] == ["created", "deprecated"]
        assert store.events("other", kind="deprecated") == [] and store.count_events("other") == 0
        with pytest.raises(InvalidInputError, match="unknown event kind 'exploded'"):
            store.events("default", kind="exploded")

    # -- cached vectors: patched by this object's writes, reloaded after anyone else's

    def test_vectors_after_many_writes_equal_a_fresh_read(self, store, twin):
        """Each write patches the cached tables; a second store object reads them whole: equal,
        down to the order of refs among equal vectors (a restored lineage goes back to its place)."""
        same = [make_procedure("heat egg in microwave") for _ in range(3)]  # identical vectors: ties
        others = [make_procedure(f"put {o} in fridge") for o in ("apple", "mug", "bowl", "pan")]
        bare = make_procedure("no key vector").model_copy(update={"embedding": None})
        query = EMB.embed(["heat egg in microwave"])[0]
        fields = ("key", "kw:object", "kw:absent")

        def check(step: str) -> None:
            for ns in ("default", "other"):
                for field in fields:
                    assert same_table(store.vectors(ns, field), twin.vectors(ns, field)), (step, ns, field)
            assert store.vectors("default").top(query, 10) == twin.vectors("default").top(query, 10), step

        for p in [same[0], others[0], same[1]]:
            store.put(p)
        store.put(make_procedure("far away", namespace="other"))
        check("start")  # the caches now hold every field
        writes = [
            ("new lineage", lambda: store.put(others[1])),
            ("no key vector", lambda: store.put(bare)),
            ("deprecate a tie", lambda: store.set_status("default", same[0].id, "deprecated", reason="t")),
            ("new lineage after", lambda: store.put(same[2])),
            ("restore a tie", lambda: store.set_status("default", same[0].id, "active", reason="t")),
            ("new version", lambda: store.put(others[0].model_copy(update={"version": 2, "parent_version": 1}),
                                              event="revised")),
            ("version without keywords", lambda: store.put(same[1].model_copy(
                update={"version": 2, "parent_version": 1, "keywords": {}, "keyword_embeddings": {}}))),
            ("use", lambda: store.record_use("default", same[2].id, 1, success=False)),
            ("merge", lambda: store.merge_provenance("default", others[1].id, Trajectory(task=Task(text="t")),
                                                     similarity=0.99)),
            ("trajectory", lambda: store.add_trajectory("default", Trajectory(task=Task(text="t")))),
            ("deprecate the last", lambda: store.set_status("default", same[2].id, "deprecated", reason="t")),
            ("other namespace", lambda: store.put(make_procedure("put cup in fridge", namespace="other"))),
            ("deprecated version", lambda: store.put(others[2].model_copy(update={"status": "deprecated"}))),
            ("new version of a deprecated one", lambda: store.put(
                store.get("default", same[2].id).model_copy(update={"version": 2, "parent_version": 1,
                                                                   "status": "active"}), event="revised")),
        ]
        for step, write in writes:
            write()
            check(step)
        with pytest.raises(InvalidInputError):  # a refused write leaves the caches as they were
            store.put(others[3].model_copy(update={"version": 2}))
        check("refused write")
        assert [ref for ref, _ in store.vectors("default").top(query, 3)] == [
            (same[0].id, 1), (same[1].id, 2), (same[2].id, 2)]

    def test_writes_through_another_store_object_are_seen(self, store, twin):
        p, q = make_procedure("put apple in fridge"), make_procedure("heat egg in microwave")
        store.put(p)
        assert store.vectors("default").refs == [(p.id, 1)]
        twin.put(q)
        assert store.vectors("default").refs == [(p.id, 1), (q.id, 1)]
        twin.set_status("default", p.id, "deprecated", reason="elsewhere")
        # This object's next write follows one it did not make: its cache must not patch over it.
        store.put(make_procedure("cool mug", namespace="default"))
        for field in ("key", "kw:object"):
            assert same_table(store.vectors("default", field), twin.vectors("default", field)), field
        assert (p.id, 1) not in store.vectors("default").refs

    # -- nothing replaced, nothing that breaks a namespace, all or nothing

    def test_same_trajectory_again_is_kept_and_other_content_under_its_id_is_refused(self, store):
        t = Trajectory(id="run-1", task=Task(text="put apple in fridge"), steps=[Step(action="a", observation="o")])
        store.add_trajectory("default", t)
        gen = store.generation()
        store.add_trajectory("default", t.model_copy())  # a retry of the same report
        other = t.model_copy(update={"steps": [Step(action="b", observation="p")]})
        with pytest.raises(TrajectoryConflictError, match="run-1.*already stored"):
            store.add_trajectory("default", other)
        with pytest.raises(TrajectoryConflictError):
            store.import_records([
                {"type": "trajectory", "namespace": "default", "trajectory": other.model_dump(mode="json")},
                {"type": "procedure", "procedure": make_procedure("x y").model_dump(mode="json")}])
        assert store.get_trajectory("default", "run-1") == t
        assert store.count("default") == 0
        store.add_trajectory("elsewhere", other)  # ids are per namespace
        assert store.get_trajectory("elsewhere", "run-1") == other
        assert store.generation() >= gen

    def test_vectors_of_another_size_or_not_finite_are_refused_and_search_still_works(self, store):
        good = make_procedure("put apple in fridge")
        store.put(good)
        short = make_procedure("heat egg").model_copy(update={"embedding": [0.5] * 8,
                                                             "keyword_embeddings": {"object": [0.5] * 8}})
        mixed = make_procedure("cool mug").model_copy(update={"keyword_embeddings": {"object": [1.0] * 8}})
        nan = make_procedure("slice bread").model_copy(update={"embedding": [float("nan")] * 384})
        gen = store.generation()
        for bad, message in ((short, "384-dimensional"), (mixed, "differ in size"), (nan, "NaN")):
            with pytest.raises(InvalidInputError, match=message):
                store.put(bad)
            with pytest.raises(InvalidInputError, match=message):
                store.import_records([{"type": "procedure", "procedure": bad.model_dump(mode="json")}])
        assert store.generation() == gen and store.count("default") == 1
        assert store.vectors("default").top(EMB.embed(["apple"])[0], 3)[0][0] == (good.id, 1)
        store.put(short.model_copy(update={"namespace": "small"}))  # its own namespace takes any one size
        with pytest.raises(InvalidInputError, match="8-dimensional"):
            store.put(make_procedure("x y", namespace="small"))

    def test_atomic_block_stores_all_or_nothing(self, store, twin):
        p, q = make_procedure("put apple in fridge"), make_procedure("heat egg in microwave")
        store.put(p)
        assert twin.vectors("default").refs == store.vectors("default").refs  # both cached
        gen = store.generation()
        with pytest.raises(ProcedureNotFoundError):
            with store.atomic():
                store.put(q)
                store.record_use("default", p.id, 1, success=True)
                assert store.vectors("default").refs == [(p.id, 1), (q.id, 1)]  # the block sees its writes
                store.record_use("default", "missing", 1, success=True)
        assert store.generation() == gen and store.count("default") == 1
        assert store.get("default", p.id).stats.uses == 0 and store.count_events("default") == 1
        assert same_table(store.vectors("default"), twin.vectors("default"))
        with store.atomic():
            store.put(q)
            with pytest.raises(InvalidInputError):  # a refused write inside leaves the rest going
                store.put(q)
            store.record_use("default", q.id, 1, success=True)
        assert store.generation() == gen + 1
        assert store.get("default", q.id).stats.uses == 1
        assert same_table(store.vectors("default"), twin.vectors("default"))

    # -- a revision made from a head read earlier loses nothing counted or merged since

    def test_revision_takes_over_the_heads_statistics_and_provenance_at_write_time(self, store):
        p = make_procedure("x y")
        store.put(p)
        read = store.get("default", p.id)  # the reviser reads the head ...
        store.record_use("default", p.id, 1, success=True)  # ... others count and merge meanwhile
        store.merge_provenance("default", p.id, Trajectory(id="t2", task=Task(text="x y"), model="m1"),
                               similarity=0.99)
        v2 = read.model_copy(update={"version": 2, "parent_version": 1, "script": ["new"],
                                     "provenance": read.provenance.model_copy(update={"trajectory_ids": ["t1", "f1"]})})
        stored = store.put(v2, event="revised", trajectory_id="f1")
        head = store.get("default", p.id)
        assert head.stats == stored.stats == ProcedureStats(uses=1, successes=1)
        assert head.provenance.trajectory_ids == ["t1", "t2", "f1"] and head.provenance.models == ["m1"]

    def test_a_use_of_a_replaced_version_counts_on_the_head_too(self, store):
        p = make_procedure("x y")
        store.put(p)
        store.record_use("default", p.id, 1, success=False)
        store.put(p.model_copy(update={"version": 2, "parent_version": 1}), event="revised")
        stats = store.record_use("default", p.id, 1, success=True)  # retrieved before the revision
        assert stats == ProcedureStats(uses=2, successes=1)
        assert store.get("default", p.id).stats == ProcedureStats(uses=2, successes=1)
        assert store.count_events("default", p.id, kind="used") == 2

    def test_ids_with_prefix_match_literally(self, store):
        for pid in ("ab12", "ab34", "a_x", "a%y", "b1"):
            store.put(make_procedure(f"task {pid}").model_copy(update={"id": pid}))
        assert store.ids_with_prefix("default", "ab") == ["ab12", "ab34"]
        assert store.ids_with_prefix("default", "ab", limit=1) == ["ab12"]
        assert store.ids_with_prefix("default", "a_") == ["a_x"]  # not a wildcard
        assert store.ids_with_prefix("default", "a%") == ["a%y"]
        assert store.ids_with_prefix("default", "AB") == [] and store.ids_with_prefix("other", "ab") == []
