"""memp.checks over every built-in strategy, and over broken ones, to show the checks can fail."""

from __future__ import annotations

import json
import random
import re
import uuid

import numpy as np
import pytest

from memp import InvalidInputError
from memp.build import BUILDERS, ScriptBuilder, make_builder
from memp.checks import (
    CheckFailure,
    check_adjuster,
    check_builder,
    check_embedder,
    check_keyword_extractor,
    check_retriever,
    check_updater,
)
from memp.embed import CachedEmbedder, HashingEmbedder
from memp.keywords import LLMKeywordExtractor, RuleKeywordExtractor
from memp.retrieve import RETRIEVERS, QueryRetriever, RandomRetriever, make_retriever
from memp.types import Procedure, RetrievalHit, Task, Trajectory
from memp.update import UPDATERS, DeprecationRule, LLMAdjuster, RuleAdjuster, ValidationUpdater, make_updater

from .conftest import ScriptedLLM


def model_reply(messages: list[dict]) -> str:
    """A deterministic stand-in for a model: a well-formed answer to each of memp's prompts."""
    system, user = messages[0]["content"], messages[-1]["content"]
    numbered = re.findall(r"^\s*(\d+)\. (.+?) ->", user, re.MULTILINE)
    if "Pick the critical steps" in system:  # script_critical
        indices = [int(i) for i in re.findall(r"^\s*(\d+)\. \[", user, re.MULTILINE)]
        return json.dumps({"critical": indices[-3:], "summary": "the last three events"})
    if "as a state change" in system:  # script_events
        return json.dumps([{"index": int(i), "pre_state": "before", "action": a, "new_state": "after"}
                           for i, a in numbered])
    if "reusable procedure" in system:  # script_direct
        return json.dumps({"summary": "do what worked", "steps": [a for _, a in numbered][-3:]})
    if "key facts" in system:  # keywords
        words = re.findall(r"[a-z]+", user.lower().rsplit("task:", 1)[1])
        return json.dumps({"action": words[0], "object": words[-1]})
    if "followed a stored procedure and failed" in system:  # adjust
        return json.dumps({"analysis": "it stopped early", "summary": "finish the job",
                           "steps": [a for _, a in numbered][-2:] or ["look"], "pitfall": "check the target"})
    if "without any stored procedure and failed" in system:  # reflect
        return json.dumps({"analysis": "it never found the target", "tried_in_vain": [a for _, a in numbered][:2],
                           "refused": [], "try_instead": ["look elsewhere"], "pitfall": "search wider"})
    raise AssertionError(f"no scripted answer for the prompt: {system[:80]}")


def llm() -> ScriptedLLM:
    return ScriptedLLM(model_reply)


# --- every built-in passes ------------------------------------------------------------------------


@pytest.mark.parametrize("name", RETRIEVERS)
def test_retrievers_pass(name):
    check_retriever(lambda embedder: make_retriever(name, embedder=embedder, seed=7))


def test_retrievers_with_options_pass():
    check_retriever(lambda embedder: make_retriever("query", embedder=embedder, min_score=0.2))
    check_retriever(lambda embedder: make_retriever("hybrid", embedder=embedder, min_score=0.2))
    check_retriever(lambda embedder: make_retriever("avefact", embedder=embedder,
                                                    keywords=LLMKeywordExtractor(llm())))


def test_query_retriever_passes_with_minilm(minilm):
    check_retriever(lambda embedder: make_retriever("query", embedder=embedder), embedder=minilm)


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("mode", [None, "direct", "two_stage"])
def test_builders_pass(name, mode):
    if mode is None:
        builder = make_builder(name)
    else:
        model = llm()
        builder = make_builder(name, llm=model, mode=mode, keywords=LLMKeywordExtractor(model))
    check_builder(builder)


@pytest.mark.parametrize("name", list(UPDATERS))
def test_updaters_pass(name):
    check_updater(lambda embedder: make_updater(name, builder=make_builder("script"), embedder=embedder))


def _travel_adjuster():
    from memp.experiments.travel_adjust import TravelAdjuster

    return TravelAdjuster()


@pytest.mark.parametrize("adjuster", ["llm", "travel"])
def test_adjustment_updater_with_other_adjusters_passes(adjuster):
    chosen = LLMAdjuster(llm()) if adjuster == "llm" else _travel_adjuster()
    check_updater(lambda embedder: make_updater("adjustment", builder=make_builder("proceduralization"),
                                                embedder=embedder, adjuster=chosen))


def test_rule_and_llm_adjusters_pass():
    check_adjuster(RuleAdjuster())
    check_adjuster(LLMAdjuster(llm()))


def test_travel_adjuster_passes():
    failed = Trajectory(id="trip-failed", task=Task(text="a trip"), reward=0.5, metadata={"failures": [
        {"constraint": "Room Type", "reason": "The room type should be entire room."},
        {"constraint": "Budget", "reason": "over budget"}]})
    procedure = Procedure(key="a trip", script=["AccommodationSearch[Houston]", "RestaurantSearch[Houston]"])
    adjuster = _travel_adjuster()
    assert adjuster.revise(procedure, failed) is not None  # so the check below sees a revision
    check_adjuster(adjuster, cases=[(procedure, failed)])
    check_adjuster(adjuster)  # no failures recorded: nothing to revise, None


def test_keyword_extractors_pass():
    check_keyword_extractor(RuleKeywordExtractor())
    check_keyword_extractor(LLMKeywordExtractor(llm()))


@pytest.mark.parametrize("make", [
    lambda tmp: HashingEmbedder(),
    lambda tmp: HashingEmbedder(dim=64),
    lambda tmp: CachedEmbedder(HashingEmbedder()),
    lambda tmp: CachedEmbedder(HashingEmbedder(), tmp / "cache.sqlite"),
], ids=["hashing", "hashing-64", "cached-memory", "cached-disk"])
def test_embedders_pass(make, tmp_path):
    check_embedder(make(tmp_path))


def test_cached_embedder_passes_when_read_back_from_disk(tmp_path):
    first = CachedEmbedder(HashingEmbedder(), tmp_path / "cache.sqlite")
    check_embedder(first)
    first.close()
    reopened = CachedEmbedder(HashingEmbedder(), tmp_path / "cache.sqlite")
    check_embedder(reopened)
    assert reopened.misses == 0 and reopened.hits > 0  # every vector came from the file


def test_minilm_passes(minilm):
    check_embedder(minilm.inner)
    check_embedder(minilm)


def test_a_class_is_a_factory_but_an_instance_is_refused_with_the_fix():
    check_retriever(QueryRetriever)
    with pytest.raises(InvalidInputError, match=r"check_retriever\(lambda embedder: MyRetriever\(embedder\)\)"):
        check_retriever(QueryRetriever(HashingEmbedder()))
    with pytest.raises(CheckFailure, match="object: has no build\\(\\) method"):
        check_builder(object())


# --- broken strategies fail -----------------------------------------------------------------------


class OneTooMany(QueryRetriever):
    def retrieve(self, task, store, namespace, k):
        return super().retrieve(task, store, namespace, k + 1)


class WorstFirst(QueryRetriever):
    def retrieve(self, task, store, namespace, k):
        return super().retrieve(task, store, namespace, k)[::-1]


class IgnoresStatus(QueryRetriever):
    """Ranks every head, deprecated or not."""

    def retrieve(self, task, store, namespace, k):
        if k < 0:
            raise ValueError("negative k")
        query = self.embedder.embed([task.text])[0]
        heads = store.list(namespace, limit=1000)
        full = store.get_many(namespace, [(p.id, p.version) for p in heads])
        scored = sorted(((float(np.dot(query, p.embedding)), p) for p in full), key=lambda sp: -sp[0])[:k]
        return [RetrievalHit(procedure=p, score=s, retriever="broken") for s, p in scored]


class ClampsK(RandomRetriever):
    def retrieve(self, task, store, namespace, k):
        return super().retrieve(task, store, namespace, max(k, 0))


@pytest.mark.parametrize("make, failure", [
    (lambda e: OneTooMany(e), "returned 1 hits for k = 0"),
    (lambda e: WorstFirst(e), "best first"),
    (lambda e: IgnoresStatus(e), "deprecated"),
    (lambda e: ClampsK(seed=0), "k = -1 must raise"),
    (lambda e: RandomRetriever(seed=random.randrange(2**32)), "two fresh instances"),
], ids=["too-many", "unsorted", "deprecated", "negative-k", "unseeded"])
def test_broken_retrievers_fail(make, failure):
    with pytest.raises(CheckFailure, match=failure):
        check_retriever(make)


class ForgetsProvenance(ScriptBuilder):
    def build(self, trajectory):
        p = super().build(trajectory)
        return p.model_copy(update={"provenance": p.provenance.model_copy(update={"trajectory_ids": []})})


class Nondeterministic(ScriptBuilder):
    def build(self, trajectory):
        p = super().build(trajectory)
        return p.model_copy(update={"summary": f"{p.summary} ({uuid.uuid4()})"})


class EatsItsInput(ScriptBuilder):
    def build(self, trajectory):
        trajectory.steps.pop()
        return super().build(trajectory)


@pytest.mark.parametrize("builder, failure", [
    (ForgetsProvenance(), "provenance must name trajectory"),
    (Nondeterministic(), "two builds of .* differ"),
    (EatsItsInput(), "changed its input"),
], ids=["provenance", "nondeterministic", "mutates"])
def test_broken_builders_fail(builder, failure):
    with pytest.raises(CheckFailure, match=failure):
        check_builder(builder)


class KeepsOnlySuccesses(ValidationUpdater):
    """Forgets failed runs altogether: the trajectory is never stored."""

    def update(self, store, namespace, trajectory, used):
        if not trajectory.success:
            from memp.types import UpdateReport

            return UpdateReport(trajectory_id=trajectory.id, skipped="failed")
        return super().update(store, namespace, trajectory, used)


class RetireAll(DeprecationRule):
    """A broken rule: every used procedure is retired, winners too."""

    def should_deprecate(self, stats) -> bool:
        return stats.uses >= 1


def _updater(rule: DeprecationRule | None = None, cls=None):
    def make(embedder):
        if cls is not None:
            return cls(make_builder("script"), embedder)
        return make_updater("vanilla", builder=make_builder("script"), embedder=embedder, deprecation=rule)
    return make


class ReportsAGhost(ValidationUpdater):
    def update(self, store, namespace, trajectory, used):
        report = super().update(store, namespace, trajectory, used)
        report.added.append("ghost@v1")
        return report


@pytest.mark.parametrize("make, failure", [
    (_updater(cls=KeepsOnlySuccesses), "was not stored"),
    (_updater(cls=ReportsAGhost), "names ghost@v1, which is not in the store"),
    (_updater(DeprecationRule(min_uses=1000)), "deprecation was not applied"),
    (_updater(RetireAll()), "won 10 runs in a row was deprecated"),
], ids=["drops-runs", "ghost-report", "never-deprecates", "deprecates-winners"])
def test_broken_updaters_fail(make, failure):
    with pytest.raises(CheckFailure, match=failure):
        check_updater(make)


class InPlace(RuleAdjuster):
    def revise(self, procedure, failed):
        procedure.notes.append("edited in place")
        return super().revise(procedure, failed)


class SameVersion:
    def revise(self, procedure, failed):
        return procedure.model_copy(update={"notes": [*procedure.notes, "oops"]})


class NoProvenance:
    def revise(self, procedure, failed):
        return procedure.model_copy(update={"version": procedure.version + 1, "parent_version": procedure.version})


@pytest.mark.parametrize("adjuster, failure", [
    (InPlace(), "changed its input"),
    (SameVersion(), "must be version 2, got 1"),
    (NoProvenance(), "provenance must name the failed run"),
], ids=["mutates", "same-version", "no-provenance"])
def test_broken_adjusters_fail(adjuster, failure):
    with pytest.raises(CheckFailure, match=failure):
        check_adjuster(adjuster)


class Shuffled(RuleKeywordExtractor):
    def extract(self, task):
        return {**super().extract(task), "salt": str(random.random())}


class OverridesEnvironment(RuleKeywordExtractor):
    def extract(self, task):
        return super().extract(task.model_copy(update={"keywords": {}}))


class NumbersToo(RuleKeywordExtractor):
    def extract(self, task):
        return {**super().extract(task), "count": 2}


@pytest.mark.parametrize("extractor, failure", [
    (Shuffled(), "two extractions .* differ"),
    (OverridesEnvironment(), "returned as given"),
    (NumbersToo(), "non-empty strings"),
], ids=["random", "ignores-task-keywords", "not-strings"])
def test_broken_keyword_extractors_fail(extractor, failure):
    with pytest.raises(CheckFailure, match=failure):
        check_keyword_extractor(extractor)


class Unnormalised(HashingEmbedder):
    def embed(self, texts):
        return super().embed(texts) * 2


class WrongDim(HashingEmbedder):
    def embed(self, texts):
        return super().embed(texts)[:, :10]


class Constant(HashingEmbedder):
    def embed(self, texts):
        return np.tile(super().embed(["same"]), (len(texts), 1))


class BatchDependent(HashingEmbedder):
    def embed(self, texts):
        out = super().embed(texts) + len(texts) * 0.01
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.parametrize("embedder, failure", [
    (Unnormalised(), "unit vector"),
    (WrongDim(), "shape"),
    (Constant(), "different texts, same vector"),
    (BatchDependent(), "depends on its batch"),
], ids=["unnormalised", "wrong-dim", "constant", "batch-dependent"])
def test_broken_embedders_fail(embedder, failure):
    with pytest.raises(CheckFailure, match=failure):
        check_embedder(embedder)
