"""Conformance checks: the promises every strategy keeps, runnable against your own.

    from memp.checks import check_retriever
    check_retriever(lambda embedder: MyRetriever(embedder))

After scikit-learn's ``check_estimator``. Each check builds a small memory of its own, exercises
the strategy on it and raises ``CheckFailure`` (an AssertionError) naming the first broken
promise. Every built-in strategy passes them all (``tests/test_checks.py``).

Retrievers and updaters are given as a function of an embedder, ``make(embedder)``: the check's
store holds vectors from that embedder, and determinism is judged on two fresh instances.
Builders, adjusters, keyword extractors and embedders are given as objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from memp._errors import InvalidInputError, MempError, ProcedureNotFoundError
from memp.build import ProceduralizationBuilder
from memp.embed import Embedder, HashingEmbedder, embed_procedure
from memp.keywords import RuleKeywordExtractor
from memp.store import SQLiteStore, Store
from memp.types import Procedure, RetrievalHit, Step, Task, Trajectory, UpdateReport

NAMESPACE = "check"
# Fields that legitimately differ between two runs of a deterministic strategy.
VOLATILE = {"id", "created_at", "updated_at"}


class CheckFailure(AssertionError):
    """A strategy broke one of the promises its protocol makes."""


def _factory(make: Any, method: str, check: str) -> None:
    """Refuse a strategy object where a function of an embedder is expected, saying why."""
    if not isinstance(make, type) and (callable(getattr(make, method, None)) or not callable(make)):
        raise InvalidInputError(
            f"{check} takes a function embedder -> strategy, e.g. {check}(lambda embedder: "
            f"My{method.capitalize()}r(embedder)): the check's store holds that embedder's vectors, and "
            "determinism is judged on two fresh instances"
        )


def _has(strategy: Any, method: str) -> None:
    _require(callable(getattr(strategy, method, None)), strategy, f"has no {method}() method")


def _require(condition: bool, who: Any, promise: str) -> None:
    if not condition:
        name = getattr(who, "name", None) or type(who).__name__
        raise CheckFailure(f"{name}: {promise}")


def _content(procedure: Procedure) -> dict:
    return procedure.model_dump(exclude=VOLATILE)


# --- sample data ---------------------------------------------------------------------------------


def household_run(obj: str = "apple", target: str = "fridge", *, success: bool = True,
                  run_id: str | None = None) -> Trajectory:
    """An ALFWorld-style run with exploration, a refused action and a pointless toggle."""
    steps = [
        ("go to countertop 1", "On the countertop 1, you see a knife 1."),
        ("go to countertop 2", f"On the countertop 2, you see a {obj} 1."),
        (f"take {obj} 1 from countertop 2", f"You pick up the {obj} 1 from the countertop 2."),
        (f"clean {obj} 1 with {target} 1", "Nothing happens."),
        ("go to sinkbasin 1", "On the sinkbasin 1, you see nothing."),
        (f"clean {obj} 1 with sinkbasin 1", f"You clean the {obj} 1 using the sinkbasin 1."),
        ("go to drawer 1", "The drawer 1 is closed."),
        ("open drawer 1", "You open the drawer 1. In it, you see nothing."),
        (f"go to {target} 1", f"The {target} 1 is closed."),
        (f"open {target} 1", f"You open the {target} 1."),
    ]
    if success:
        steps.append((f"put {obj} 1 in/on {target} 1", f"You put the {obj} 1 in/on the {target} 1."))
    return Trajectory(
        id=run_id or f"{obj}-{target}-{'won' if success else 'lost'}",
        task=Task(text=f"put a clean {obj} in {target}.", type="pick_clean_then_place_in_recep"),
        steps=[Step(action=a, observation=o) for a, o in steps],
        reward=1.0 if success else 0.0, agent="check-agent", model="check-model",
    )


SAMPLE_RUNS = (("apple", "fridge", True), ("tomato", "fridge", False), ("mug", "shelf", True),
               ("egg", "microwave", False))
TASKS = ("put a clean apple in fridge.", "put a hot egg in microwave.", "rinse a mug and place it on the shelf.",
         "find two pencils and put them in drawer.", "Plan a 3-day trip from Seattle to Denver.")
STORED = ("put a clean apple in cabinet.", "put a clean tomato in fridge.", "put a hot egg in microwave.",
          "put a cool potato in countertop.", "put some pencil on desk.", "look at book under the desklamp.",
          "find two spoons and put them in drawer.", "put a clean mug in shelf.")


def _procedure(text: str, embedder: Embedder) -> Procedure:
    keywords = RuleKeywordExtractor().extract(Task(text=text))
    return embed_procedure(Procedure(namespace=NAMESPACE, key=text, keywords=keywords), embedder)


def _retrieval_store(embedder: Embedder) -> tuple[Store, str, tuple[str, int]]:
    """A store with active procedures, one deprecated lineage and one revised to version 2.

    The deprecated one answers the first task word for word, so a retriever ignoring status shows."""
    store = SQLiteStore(":memory:")
    stored = [store.put(_procedure(text, embedder)) for text in STORED]
    deprecated = store.put(_procedure(TASKS[0], embedder))
    store.set_status(NAMESPACE, deprecated.id, "deprecated", reason="conformance check")
    revised = stored[2]
    store.put(revised.model_copy(update={"version": 2, "parent_version": 1}), event="revised")
    return store, deprecated.id, (revised.id, 1)


def _versions(store: Store) -> set[tuple[str, int]]:
    heads = store.list(NAMESPACE, limit=100_000)
    return {(p.id, p.version) for head in heads for p in store.history(NAMESPACE, head.id)}


# --- retrievers ----------------------------------------------------------------------------------


def check_retriever(make: Callable[[Embedder], Any], embedder: Embedder | None = None) -> None:
    """At most k hits, best first, only active newest versions, nothing for k = 0, InvalidInputError
    for a negative k, the same hits from two fresh instances, and the store left as it was."""
    _factory(make, "retrieve", "check_retriever")
    embedder = embedder or HashingEmbedder()
    store, deprecated_id, old_version = _retrieval_store(embedder)
    try:
        retriever = make(embedder)
        _has(retriever, "retrieve")
        generation = store.generation()
        seen = []
        for task in TASKS:
            for k in (0, 1, 3, 100):
                hits = retriever.retrieve(Task(text=task), store, NAMESPACE, k)
                _check_hits(retriever, store, hits, k, deprecated_id, old_version)
                seen.append([(h.procedure.id, h.procedure.version, h.score) for h in hits])
        _require(any(seen), retriever, "returned no hit for any task, even with k = 100")
        for k in (-1, -5):
            try:
                retriever.retrieve(Task(text=TASKS[0]), store, NAMESPACE, k)
            except InvalidInputError:
                continue
            _require(False, retriever, f"k = {k} must raise memp.InvalidInputError, not return hits")
        empty = retriever.retrieve(Task(text=TASKS[0]), store, "empty-namespace", 3)
        _require(empty == [], retriever, "an empty namespace must give no hits")
        _require(store.generation() == generation, retriever, "retrieval must not change the store")
        again = make(embedder)
        replay = [[(h.procedure.id, h.procedure.version, h.score)
                   for h in again.retrieve(Task(text=task), store, NAMESPACE, k)]
                  for task in TASKS for k in (0, 1, 3, 100)]
        _require(replay == seen, retriever, "two fresh instances (same seed) returned different hits")
    finally:
        store.close()


def _check_hits(retriever, store: Store, hits, k: int, deprecated_id: str, old_version) -> None:
    _require(isinstance(hits, list), retriever, f"retrieve must return a list, got {type(hits).__name__}")
    _require(len(hits) <= k, retriever, f"returned {len(hits)} hits for k = {k}")
    _require(all(isinstance(h, RetrievalHit) for h in hits), retriever, "every hit must be a RetrievalHit")
    scores = [h.score for h in hits]
    _require(scores == sorted(scores, reverse=True), retriever, f"hits must be best first, got scores {scores}")
    ids = [h.procedure.id for h in hits]
    _require(len(set(ids)) == len(ids), retriever, "a procedure was returned twice")
    _require(deprecated_id not in ids, retriever, "returned a deprecated procedure")
    refs = [(h.procedure.id, h.procedure.version) for h in hits]
    _require(old_version not in refs, retriever, "returned an old version instead of the newest")
    for h in hits:
        try:
            head = store.get(NAMESPACE, h.procedure.id)
        except ProcedureNotFoundError:
            head = None
        _require(head is not None and head.version == h.procedure.version and head.status == "active",
                 retriever, f"hit {h.procedure.ref} is not an active head of the store")


# --- builders ------------------------------------------------------------------------------------


def check_builder(builder: Any, trajectories: Iterable[Trajectory] | None = None) -> None:
    """The same procedure every time for the same run, version 1, provenance naming the run (its
    id, model and agent), and the run left untouched."""
    _has(builder, "build")
    runs = list(trajectories) if trajectories is not None else [household_run(*r[:2], success=r[2])
                                                                for r in SAMPLE_RUNS]
    built = 0
    for run in runs:
        before = run.model_dump()
        first, second = builder.build(run), builder.build(run)
        _require(run.model_dump() == before, builder, f"build changed its input trajectory {run.id}")
        if first is None:
            _require(second is None, builder, f"built {run.id} once and returned None the next time")
            continue
        built += 1
        _require(isinstance(first, Procedure), builder, f"build must return a Procedure or None, "
                                                        f"got {type(first).__name__}")
        _require(_content(first) == _content(second), builder, f"two builds of {run.id} differ")
        _require(first.version == 1 and first.status == "active" and first.stats.uses == 0, builder,
                 "a new procedure must be an unused, active version 1")
        prov = first.provenance
        _require(run.id in prov.trajectory_ids, builder, f"provenance must name trajectory {run.id}")
        _require(not run.model or run.model in prov.models, builder, f"provenance must name model {run.model}")
        _require(not run.agent or run.agent in prov.agents, builder, f"provenance must name agent {run.agent}")
        _require(bool(first.builder), builder, "Procedure.builder must name the strategy")
    _require(built > 0, builder, "built nothing from any sample trajectory")


# --- updaters ------------------------------------------------------------------------------------


def check_updater(make: Callable[[Embedder], Any], embedder: Embedder | None = None) -> None:
    """Every trajectory stored, no version ever lost, reports that point at real versions, and
    deprecation: a procedure that failed ten runs in a row is retired, one that won ten is not."""
    _factory(make, "update", "check_updater")
    embedder = embedder or HashingEmbedder()
    store = SQLiteStore(":memory:")
    try:
        updater = make(embedder)
        _has(updater, "update")
        losing = _stored_procedure(store, household_run("tomato", "fridge"), embedder)
        winning = _stored_procedure(store, household_run("mug", "shelf"), embedder)
        stored: list[Trajectory] = []
        deprecated_refs: list[str] = []
        for run, used_id in _updater_runs(losing.id, winning.id):
            used = [RetrievalHit(procedure=store.get(NAMESPACE, used_id), score=1.0, retriever="check")] \
                if used_id else []
            versions = _versions(store)
            report = updater.update(store, NAMESPACE, run, used)
            stored.append(run)
            _check_report(updater, store, run, report)
            _require(versions <= _versions(store), updater, f"updating with {run.id} lost a procedure version")
            for earlier in stored:
                _require(_stored_run(store, earlier.id) == earlier, updater,
                         f"trajectory {earlier.id} was not stored as given")
            deprecated_refs += report.deprecated
        _require(store.get(NAMESPACE, losing.id).status == "deprecated", updater,
                 "a procedure that failed 10 runs in a row is still active: deprecation was not applied")
        _require(any(ref.split("@")[0] == losing.id for ref in deprecated_refs), updater,
                 "the deprecation was not reported in UpdateReport.deprecated")
        _require(store.get(NAMESPACE, winning.id).status == "active", updater,
                 "a procedure that won 10 runs in a row was deprecated")
    finally:
        store.close()


def _stored_procedure(store: Store, run: Trajectory, embedder: Embedder) -> Procedure:
    procedure = ProceduralizationBuilder().build(run).model_copy(update={"namespace": NAMESPACE})
    return store.put(embed_procedure(procedure, embedder))


def _updater_runs(losing_id: str, winning_id: str) -> list[tuple[Trajectory, str | None]]:
    """(run, id of the procedure it used): fresh runs, a run with no steps, ten failures with
    one procedure, ten successes with another."""
    runs: list[tuple[Trajectory, str | None]] = [
        (household_run("apple", "fridge"), None), (household_run("egg", "microwave", success=False), None),
        (Trajectory(id="no-steps", task=Task(text="put a clean apple in fridge.")), None)]
    runs += [(household_run("tomato", "fridge", success=False, run_id=f"lost-{i}"), losing_id) for i in range(10)]
    runs += [(household_run("mug", "shelf", run_id=f"won-{i}"), winning_id) for i in range(10)]
    return runs


def _stored_run(store: Store, trajectory_id: str) -> Trajectory | None:
    try:
        return store.get_trajectory(NAMESPACE, trajectory_id)
    except MempError:
        return None


def _check_report(updater, store: Store, run: Trajectory, report) -> None:
    _require(isinstance(report, UpdateReport), updater, f"update must return an UpdateReport, got {report!r}")
    _require(report.trajectory_id == run.id, updater, f"the report names {report.trajectory_id}, not {run.id}")
    for ref in [*report.added, *report.merged, *report.revised, *report.deprecated]:
        procedure_id, _, version = ref.partition("@v")
        try:
            store.get(NAMESPACE, procedure_id, int(version))
        except (ProcedureNotFoundError, ValueError):
            _require(False, updater, f"the report names {ref}, which is not in the store")


# --- adjusters -----------------------------------------------------------------------------------


def check_adjuster(adjuster: Any, cases: Iterable[tuple[Procedure, Trajectory]] | None = None) -> None:
    """None or the next version of the same lineage, whose provenance adds the failed run, the same
    revision twice, and both inputs left untouched."""
    _has(adjuster, "revise")
    for procedure, failed in _adjuster_cases() if cases is None else cases:
        before = (procedure.model_dump(), failed.model_dump())
        new, again = adjuster.revise(procedure, failed), adjuster.revise(procedure, failed)
        _require((procedure.model_dump(), failed.model_dump()) == before, adjuster,
                 "revise changed its input procedure or trajectory")
        if new is None:
            _require(again is None, adjuster, "revised once and returned None the next time")
            continue
        _require(isinstance(new, Procedure) and new is not procedure, adjuster,
                 "revise must return a new Procedure or None")
        _require(new.id == procedure.id and new.namespace == procedure.namespace, adjuster,
                 "a revision must keep the procedure's id and namespace")
        _require(new.version == procedure.version + 1 and new.parent_version == procedure.version, adjuster,
                 f"a revision of version {procedure.version} must be version {procedure.version + 1}, "
                 f"got {new.version} (parent {new.parent_version})")
        _require(new.status == "active", adjuster, "a revision must be active")
        prov = new.provenance
        _require(prov.revised_from_failure == failed.id and failed.id in prov.trajectory_ids, adjuster,
                 f"provenance must name the failed run {failed.id} (use memp.update.next_version)")
        _require(set(procedure.provenance.trajectory_ids) <= set(prov.trajectory_ids), adjuster,
                 "a revision must keep the trajectories the procedure came from")
        _require(_content(new) == _content(again), adjuster, "two revisions from the same run differ")


def _adjuster_cases() -> list[tuple[Procedure, Trajectory]]:
    """A procedure failed on a sibling task, one failed on its own task, and a third version."""
    apple = ProceduralizationBuilder().build(household_run("apple", "fridge"))
    mug = ProceduralizationBuilder().build(household_run("mug", "shelf"))
    third = apple.model_copy(update={"version": 3, "parent_version": 2})
    return [(apple, household_run("tomato", "fridge", success=False)),
            (mug, household_run("mug", "shelf", success=False)),
            (third, household_run("apple", "fridge", success=False))]


# --- keyword extractors --------------------------------------------------------------------------


def check_keyword_extractor(extractor: Any, tasks: Iterable[Task] | None = None) -> None:
    """A dict of non-empty strings, the same each time, and the environment's own
    keywords (``Task.keywords``) returned as given, as a copy."""
    _has(extractor, "extract")
    tasks = list(tasks) if tasks is not None else [Task(text=t) for t in TASKS]
    found = 0
    for task in tasks:
        before = task.model_dump()
        first, second = extractor.extract(task), extractor.extract(task)
        _require(task.model_dump() == before, extractor, "extract changed its input task")
        _require(isinstance(first, dict), extractor, f"extract must return a dict, got {type(first).__name__}")
        _require(all(isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
                     for k, v in first.items()), extractor,
                 f"keywords must be non-empty strings, got {first!r} for {task.text!r}")
        _require(first == second, extractor, f"two extractions of {task.text!r} differ: {first} / {second}")
        found += bool(first)
    _require(found > 0, extractor, "found no keyword in any sample task")
    given = Task(text="put a clean apple in fridge.", keywords={"object": "apple", "target": "fridge"})
    out = extractor.extract(given)
    _require(out == given.keywords, extractor,
             f"keywords given with the task must be returned as given, got {out}")
    _require(out is not given.keywords, extractor, "return a copy of Task.keywords, not the task's own dict")


# --- embedders -----------------------------------------------------------------------------------

EMBED_TEXTS = ["put a clean apple in fridge.", "put a hot egg in microwave.", "apple", "fridge", "", "!!!",
               "Plan a 3-day trip from Seattle to Denver for 2 people."]


def check_embedder(embedder: Any) -> None:
    """A ``name`` and a ``dim``; float32 unit rows of that size, in input order, whatever the batch;
    the same vectors every time; different texts, different vectors."""
    _has(embedder, "embed")
    _require(isinstance(getattr(embedder, "name", None), str) and embedder.name, embedder,
             "an embedder needs a non-empty name (it keys caches and experiment records)")
    dim = getattr(embedder, "dim", None)
    _require(isinstance(dim, int) and dim > 0, embedder, f"dim must be a positive int, got {dim!r}")
    vectors = embedder.embed(EMBED_TEXTS)
    _require(isinstance(vectors, np.ndarray) and vectors.dtype == np.float32, embedder,
             "embed must return a float32 numpy array")
    _require(vectors.shape == (len(EMBED_TEXTS), dim), embedder,
             f"embed returned shape {vectors.shape} for {len(EMBED_TEXTS)} texts of dim {dim}")
    norms = np.linalg.norm(vectors, axis=1)
    _require(bool(np.all(np.abs(norms - 1) < 1e-3)), embedder,
             f"every row must be a unit vector, got norms {np.round(norms, 4).tolist()} for {EMBED_TEXTS}")
    _require(np.allclose(embedder.embed(EMBED_TEXTS), vectors, atol=1e-5), embedder,
             "the same texts gave different vectors")
    alone = np.stack([embedder.embed([t])[0] for t in EMBED_TEXTS])
    _require(np.allclose(alone, vectors, atol=1e-4), embedder, "a text's vector depends on its batch")
    _require(np.allclose(embedder.embed(EMBED_TEXTS[::-1]), vectors[::-1], atol=1e-4), embedder,
             "rows must follow the order of the texts")
    empty = embedder.embed([])
    _require(getattr(empty, "shape", None) == (0, dim), embedder, f"embed([]) must have shape (0, {dim})")
    _require(not np.allclose(vectors[0], vectors[1], atol=1e-3), embedder, "different texts, same vector")
