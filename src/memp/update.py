"""Update: how memory changes after each finished run.

- ``VanillaUpdater``: every trajectory becomes a procedure;
- ``ValidationUpdater``: only successful trajectories do;
- ``AdjustmentUpdater``: successes are added as in validation, and a failure teaches too. A
  procedure that was followed in the failed run is revised from that run (``RuleAdjuster``
  without a model, ``LLMAdjuster`` with one); the revision is a new version whose provenance
  names the failed trajectory. A failed run that followed no procedure leaves *failure
  evidence* instead: a procedure with no script, only what the run tried in vain (the places it
  searched, the actions that changed nothing for the goal, the actions the environment refused).
  Retrieval returns it like any procedure, so the next attempt at that kind of task can try
  something else first. One evidence record is kept per kind of task (the task's non-entity
  keywords, such as its action): later failures of that kind add their counts to it, and the
  first success of that kind retires it, since a procedure that worked now says more.
  When memory does hold a procedure of the failed run's kind and retrieval did not give it
  (the task's words were closer to other kinds of task), the lesson is where to find it: a copy
  of that procedure is filed under the failed task (``refiled``), so that tasks worded like it
  retrieve it next time. Its provenance names the procedure it copies and the failed run.

Credit: a run's outcome counts for the procedures it *followed* (``trajectory.metadata
['followed']`` when the agent says so, else everything retrieved). All three strategies then
apply the deprecation rule to those procedures (default, as in the paper's code: at least 3 uses
and a success rate below 0.5; or, with ``confidence``, when the Beta posterior of the success
rate is that sure it is below the bar), and none adds a copy of an active procedure: a duplicate
(same script, key embedding at least ``dedup_threshold`` similar) merges its provenance into
the existing one instead.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from memp import prompts
from memp._errors import InvalidInputError, StoreError, UnknownStrategyError
from memp.build import NON_ENTITY_KEYS, TOGGLE_VERBS, Abstraction, Builder
from memp.embed import Embedder, embed_procedure, embed_procedures
from memp.keywords import KeywordExtractor, RuleKeywordExtractor
from memp.llm import LLM
from memp.store.base import Store, nearest
from memp.types import Procedure, ProcedureStats, Provenance, RetrievalHit, Trajectory, UpdateReport, utcnow

MAX_NOTES = 6
MAX_REBASES = 20  # a revision re-made on a newer head, at most
# How many entries each evidence count keeps (the most frequent): memory stays small.
MAX_EVIDENCE = 40
# How many of the nearest procedures a failed run's task is compared with, to find one of its kind
# that retrieval missed (a bounded search: memory of any size costs one top-k query).
REFILE_POOL = 20
EVIDENCE_COUNTS = ("tried_in_vain", "refused", "searched_in_vain")


def below_probability(bar: float, stats: ProcedureStats) -> float:
    """P(success rate < bar) under the posterior Beta(1 + successes, 1 + failures).

    For whole-number parameters the Beta CDF is a binomial tail:
    I_x(a, b) = P(Binomial(a + b - 1, x) ≥ a).
    """
    a, b = 1 + stats.successes, 1 + stats.failures
    n = a + b - 1
    return sum(math.comb(n, j) * bar ** j * (1 - bar) ** (n - j) for j in range(a, n + 1))


@dataclass(frozen=True)
class DeprecationRule:
    """Retire a procedure once it has been used enough and mostly failed.

    By default "mostly failed" is the observed rate below ``min_success_rate`` (the paper's rule);
    with ``confidence`` (e.g. 0.9) it is the Beta posterior being that sure the true rate is below
    it, which spares a procedure that was merely unlucky in its first few uses.
    """

    min_uses: int = 3
    min_success_rate: float = 0.5
    confidence: float | None = None

    def __post_init__(self) -> None:
        if self.min_uses < 0 or not 0.0 <= self.min_success_rate <= 1.0:
            raise InvalidInputError("min_uses must be ≥ 0 and min_success_rate between 0 and 1")
        if self.confidence is not None and not 0.0 < self.confidence < 1.0:
            raise InvalidInputError(f"confidence must lie strictly between 0 and 1, got {self.confidence}")

    def should_deprecate(self, stats: ProcedureStats) -> bool:
        rate = stats.success_rate
        if stats.uses < self.min_uses or rate is None:
            return False
        if self.confidence is None:
            return rate < self.min_success_rate
        return below_probability(self.min_success_rate, stats) > self.confidence

    def reason(self, stats: ProcedureStats) -> str:
        if self.confidence is not None:
            p = below_probability(self.min_success_rate, stats)
            return (f"{stats.successes} successes in {stats.uses} uses: P(success rate < "
                    f"{self.min_success_rate}) = {p:.2f} > {self.confidence}")
        return (f"{stats.successes} successes in {stats.uses} uses: success rate "
                f"{stats.success_rate:.2f} < {self.min_success_rate} after ≥ {self.min_uses} uses")


class Updater(Protocol):
    name: str

    def update(self, store: Store, namespace: str, trajectory: Trajectory,
               used: list[RetrievalHit]) -> UpdateReport:
        ...


class Adjuster(Protocol):
    def revise(self, procedure: Procedure, failed: Trajectory) -> Procedure | None:
        """The next version of the procedure, corrected from the failed run (None: no change)."""
        ...

    def evidence(self, failed: Trajectory) -> Procedure | None:
        """Failure evidence from a run that followed no procedure (None: nothing to learn)."""
        ...


# --- failure evidence ------------------------------------------------------------------------


def is_evidence(procedure: Procedure) -> bool:
    """Whether a procedure is failure evidence: nothing to follow, only what was tried in vain."""
    return "failed_runs" in procedure.extra and not procedure.script and not procedure.steps


def kind_of(keywords: dict[str, str]) -> dict[str, str]:
    """What a task asks for, without what it is asked of: its non-entity keywords (action, ...)."""
    return {k: v for k, v in keywords.items() if k in NON_ENTITY_KEYS}


def evidence_procedure(failed: Trajectory, keywords: dict[str, str], counts: dict[str, Counter],
                       notes: list[str], **extra) -> Procedure:
    """Version 1 of the evidence record for the failed run's kind of task."""
    return Procedure(
        key=failed.task.text, task_type=failed.task.type, keywords=keywords,
        summary=f"Failure evidence for tasks like '{failed.task.text}': no procedure worked yet.",
        notes=_dedupe(notes), builder="evidence",
        extra={"failed_runs": 1, **{name: _top(counts.get(name, Counter())) for name in EVIDENCE_COUNTS},
               **extra},
        provenance=Provenance(trajectory_ids=[failed.id], agents=[failed.agent] if failed.agent else [],
                              models=[failed.model] if failed.model else [], builder="evidence"),
    )


def merge_evidence(head: Procedure, new: Procedure, failed: Trajectory) -> Procedure:
    """The next version of an evidence record, with a further failed run's counts added."""
    extra = {**head.extra, **{k: v for k, v in new.extra.items() if k not in EVIDENCE_COUNTS}}
    extra["failed_runs"] = int(head.extra.get("failed_runs", 1)) + 1
    for name in EVIDENCE_COUNTS:
        counts = Counter(head.extra.get(name, {}))
        counts.update(new.extra.get(name, {}))
        extra[name] = _top(counts)
    return next_version(head, failed, notes=_dedupe([*head.notes, *new.notes]), extra=extra)


def refiled(source: Procedure, failed: Trajectory, keyed: Procedure) -> Procedure:
    """Version 1 of a copy of ``source`` under the failed run's task (``keyed``: its key, keywords
    and their vectors). What to do is the source's; only where retrieval finds it is new."""
    prov = source.provenance
    return source.model_copy(deep=True, update={
        "id": keyed.id, "version": 1, "parent_version": None,
        "key": keyed.key, "keywords": keyed.keywords, "task_type": failed.task.type or source.task_type,
        "embedding": keyed.embedding, "keyword_embeddings": keyed.keyword_embeddings,
        "status": "active", "status_reason": None, "stats": ProcedureStats(),
        "provenance": prov.model_copy(update={
            "trajectory_ids": [failed.id], "revised_from_failure": failed.id, "derived_from": source.ref}),
        "created_at": keyed.created_at, "updated_at": keyed.updated_at,
    })


def _top(counts: Counter) -> dict[str, int]:
    """The most frequent entries, alphabetical among equals, as a plain sorted dict."""
    kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_EVIDENCE]
    return dict(sorted(kept))


def next_version(procedure: Procedure, failed: Trajectory, **changes) -> Procedure:
    """A new version of a procedure, caused by a failed trajectory.

    Statistics carry over, as when the paper's code revises a memory in place: a lineage that
    keeps failing through its revisions is still retired by the deprecation rule.
    """
    prov = procedure.provenance
    provenance = prov.model_copy(update={
        "revised_from_failure": failed.id,
        "trajectory_ids": [*prov.trajectory_ids, failed.id],
    })
    now = utcnow()
    return procedure.model_copy(deep=True, update={
        "version": procedure.version + 1, "parent_version": procedure.version,
        "status": "active", "status_reason": None,
        "provenance": provenance, "created_at": now, "updated_at": now, **changes,
    })


class RuleAdjuster:
    """LLM-free adjustment: diff the failed run against the script it followed.

    It finds the first script step the run never accomplished; if the run tried that step and
    the environment refused, that is recorded as a pitfall, and if the run accomplished the same
    verb differently, the step is replaced by what worked. Places visited in vain are counted in
    ``extra['searched_in_vain']`` and named in a pitfall, so that a reader (or agent) tries
    elsewhere first.
    """

    def __init__(self, abstraction: Abstraction | None = None, keywords: KeywordExtractor | None = None) -> None:
        self.abstraction = abstraction or Abstraction()
        self.keywords = keywords or RuleKeywordExtractor()

    def revise(self, procedure: Procedure, failed: Trajectory) -> Procedure | None:
        ab = self.abstraction
        facts = self.keywords.extract(failed.task)
        bindings = ab.bindings({k: facts[k] for k in procedure.bindings if k in facts}, failed.steps)
        done = [ab.generalise(s.action, bindings) for s in failed.steps if not ab.is_noop(s)]
        script, notes = list(procedure.script), list(procedure.notes)
        missing = next((i for i, line in enumerate(script) if line not in done), None)
        if missing is not None:
            line = script[missing]
            verb = ab.verb(line)
            refused = [s for s in failed.steps if ab.is_noop(s) and ab.verb(s.action) == verb]
            if refused:
                notes.append(f"step {missing + 1} '{line}' failed: '{refused[0].action}' gave "
                             f"'{refused[0].observation.strip()[:80]}'")
            else:
                notes.append(f"a run on '{failed.task.text}' never reached step {missing + 1} '{line}'")
            alternatives = [a for a in done if ab.verb(a) == verb and a not in script]
            if alternatives:
                script[missing] = alternatives[0]
        vain = self._searched_in_vain(failed, bindings)
        extra = dict(procedure.extra)
        if vain:
            counts = Counter(extra.get("searched_in_vain", {}))
            counts.update(vain)
            extra["searched_in_vain"] = dict(sorted(counts.items()))
            notes.append("searched in vain: " + ", ".join(sorted(set(vain))[:5]))
        if not notes or notes == procedure.notes:
            notes.append(f"failed on '{failed.task.text}' after {len(failed.steps)} steps")
        return next_version(procedure, failed, script=script, notes=_dedupe(notes), extra=extra)

    def evidence(self, failed: Trajectory) -> Procedure | None:
        """What the run tried in vain: each effective action (generalised, once per run; moving,
        opening and looking are not tries), each action the environment refused, and the kinds of
        place where it found and tried nothing."""
        ab = self.abstraction
        keywords = self.keywords.extract(failed.task)
        bindings = ab.bindings(keywords, failed.steps)
        tried, refused = set(), set()
        for s in failed.steps:
            if ab.is_move(s.action) or ab.verb(s.action) in (*TOGGLE_VERBS, *ab.info_verbs):
                continue
            (refused if ab.is_noop(s) else tried).add(ab.generalise(s.action, bindings))
        vain = set(self._searched_in_vain(failed, bindings))
        if not (tried or refused or vain):
            return None
        notes = [f"a run on '{failed.task.text}' failed after {len(failed.steps)} steps"]
        if tried:
            notes.append("tried in vain: " + ", ".join(sorted(tried)[:8]))
        if refused:
            notes.append("refused: " + ", ".join(sorted(refused)[:5]))
        if vain:
            notes.append("searched in vain: " + ", ".join(sorted(vain)[:5]))
        counts = {"tried_in_vain": Counter(tried), "refused": Counter(refused), "searched_in_vain": Counter(vain)}
        return evidence_procedure(failed, keywords, counts, notes)

    def _searched_in_vain(self, failed: Trajectory, bindings: dict[str, str]) -> list[str]:
        """Kinds of place visited where the run neither saw a task entity nor tried anything.

        A visit is the move and what follows until the next move; opening, closing and looking
        around do not count as trying something (a refused action does)."""
        ab = self.abstraction
        steps = failed.steps
        vain = []
        for i, s in enumerate(steps):
            if not ab.is_move(s.action) or ab.is_noop(s):
                continue
            visit = [s]
            for later in steps[i + 1:]:
                if ab.is_move(later.action):
                    break
                visit.append(later)
            seen = " ".join(v.observation.lower() for v in visit)
            found = any(re.search(rf"\b{re.escape(v)}\b", seen) for v in bindings.values())
            acted = any(ab.verb(v.action) not in (*TOGGLE_VERBS, *ab.info_verbs) for v in visit[1:])
            if not found and not acted:
                vain.append(ab.generalise(s.action, {}).removeprefix("go to ").strip())
        return vain


class LLMAdjuster:
    """Reflection: the model reads the procedure and the failed run, then rewrites the procedure."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    def revise(self, procedure: Procedure, failed: Trajectory) -> Procedure | None:
        from memp.llm.parse import complete_json
        from memp.llm.schemas import Adjustment

        messages = prompts.render(
            "adjust", procedure=procedure.render(include_steps=False), task=failed.task.text,
            steps=[s.model_dump() for s in failed.steps],
        )
        data = complete_json(self.llm, messages, validate=_validate_adjustment, schema=Adjustment)
        extra = {**procedure.extra, "analysis": data["analysis"]}
        notes = [*procedure.notes, data["pitfall"]] if data["pitfall"] else list(procedure.notes)
        return next_version(procedure, failed, script=data["steps"], summary=data["summary"],
                            notes=_dedupe(notes), extra=extra)


    def evidence(self, failed: Trajectory) -> Procedure | None:
        """Reflection without a procedure: the model names what the run tried in vain."""
        from memp.llm.parse import complete_json

        messages = prompts.render("reflect", task=failed.task.text, steps=[s.model_dump() for s in failed.steps])
        data = complete_json(self.llm, messages, validate=_validate_reflection)
        notes = [data["pitfall"]] if data["pitfall"] else []
        if data["try_instead"]:
            notes.append("try instead: " + ", ".join(data["try_instead"][:8]))
        counts = {name: Counter(data[name]) for name in ("tried_in_vain", "refused")}
        return evidence_procedure(failed, dict(failed.task.keywords), counts, notes,
                                  analysis=data["analysis"], try_instead=data["try_instead"])


def _strings(data: dict, key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"'{key}' must be a list of strings")
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))


def _validate_reflection(data: object) -> dict:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with analysis, tried_in_vain, refused, try_instead and pitfall")
    out = {key: _strings(data, key) for key in ("tried_in_vain", "refused", "try_instead")}
    out["analysis"] = str(data.get("analysis", "")).strip()
    out["pitfall"] = str(data.get("pitfall", "")).strip()
    if not (out["tried_in_vain"] or out["refused"] or out["try_instead"] or out["pitfall"]):
        raise ValueError("name at least one action tried in vain, refused or to try instead, or a pitfall")
    return out


def _validate_adjustment(data: object) -> dict:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with analysis, summary, steps and pitfall")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
        raise ValueError("'steps' must be a non-empty list of strings")
    return {
        "analysis": str(data.get("analysis", "")).strip(),
        "summary": str(data.get("summary", "")).strip(),
        "steps": [s.strip() for s in steps],
        "pitfall": str(data.get("pitfall", "")).strip(),
    }


def _dedupe(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))[-MAX_NOTES:]


# --- the strategies --------------------------------------------------------------------------


class _BaseUpdater:
    name = "base"

    def __init__(self, builder: Builder, embedder: Embedder, *, adjuster: Adjuster | None = None,
                 deprecation: DeprecationRule | None = None, dedup_threshold: float = 0.92) -> None:
        self.builder = builder
        self.embedder = embedder
        self.adjuster = adjuster or RuleAdjuster()
        self.deprecation = deprecation or DeprecationRule()
        self.dedup_threshold = dedup_threshold

    def update(self, store: Store, namespace: str, trajectory: Trajectory,
               used: list[RetrievalHit]) -> UpdateReport:
        report = UpdateReport(trajectory_id=trajectory.id)
        # Build first: if a model call fails here, nothing has been written yet.
        learned = self._learn(store, namespace, trajectory, used, report)
        # Embedded outside the transaction too: other writers wait while it is open.
        learned = [self._embedded(p, namespace) for p in learned]
        # One transaction, opened by storing the run: a run reported again (a client retrying
        # after a timeout, even while the first report is still being written) finds it stored
        # and counts nothing twice, and a crash leaves either the whole outcome or none of it.
        with store.atomic():
            if not store.add_trajectory(namespace, trajectory):
                return UpdateReport(trajectory_id=trajectory.id,
                                    skipped="this run was already recorded; it is not counted again")
            credited = self._credited(trajectory, used)
            for hit in credited:
                store.record_use(namespace, hit.procedure.id, hit.procedure.version,
                                 success=bool(trajectory.success), trajectory_id=trajectory.id)
            for procedure in learned:
                self._store(store, namespace, trajectory, procedure, report)
            self._deprecate(store, namespace, credited, report)
        return report

    def _credited(self, trajectory: Trajectory, used: list[RetrievalHit]) -> list[RetrievalHit]:
        """The procedures whose statistics the outcome counts for: the ones the agent says it
        followed, else (an agent that does not say) everything it was given. Failure evidence
        is never credited: it is not followed, and retiring it is the first success's job."""
        if "followed" not in trajectory.metadata:
            return [h for h in used if not is_evidence(h.procedure)]
        return self._followed(trajectory, used)

    def _followed(self, trajectory: Trajectory, used: list[RetrievalHit]) -> list[RetrievalHit]:
        """The retrieved procedures named in ``metadata['followed']`` (``id`` or ``id@vN``);
        without that key, the top hit. Failure evidence is never followed."""
        followed = trajectory.metadata.get("followed")
        candidates = [h for h in used if not is_evidence(h.procedure)]
        if followed is None:
            return candidates[:1]
        wanted = {str(f).split("@")[0] for f in (followed if isinstance(followed, list) else [followed])}
        return [h for h in candidates if h.procedure.id in wanted]

    def add(self, store: Store, namespace: str, trajectory: Trajectory) -> UpdateReport:
        """Build and add a trajectory regardless of the strategy (e.g. seeding from gold runs)."""
        return self.add_many(store, namespace, [trajectory])[0]

    def add_many(self, store: Store, namespace: str, trajectories: list[Trajectory]) -> list[UpdateReport]:
        """``add`` for many trajectories, embedding all their procedures in one batch."""
        reports = [UpdateReport(trajectory_id=t.id) for t in trajectories]
        built = [self.builder.build(t) for t in trajectories]
        ready = iter(embed_procedures([p.model_copy(update={"namespace": namespace})
                                       for p in built if p is not None], self.embedder))
        with store.atomic():  # all of them or none
            for trajectory, procedure, report in zip(trajectories, built, reports):
                embedded = next(ready) if procedure is not None else None
                if not store.add_trajectory(namespace, trajectory):
                    report.skipped = "this run was already recorded; it is not added again"
                elif embedded is None:
                    report.skipped = "the trajectory has no steps to build from"
                else:
                    self._store(store, namespace, trajectory, embedded, report)
        return reports

    def _learn(self, store: Store, namespace: str, trajectory: Trajectory, used: list[RetrievalHit],
               report: UpdateReport) -> list[Procedure]:
        procedure = self.builder.build(trajectory)
        if procedure is None:
            report.skipped = "the trajectory has no steps to build from"
            return []
        return [procedure]

    def _store(self, store: Store, namespace: str, trajectory: Trajectory, procedure: Procedure,
               report: UpdateReport) -> None:
        if procedure.version > 1:  # a revision of an existing lineage
            self._revise(store, namespace, trajectory, procedure, report)
            return
        procedure = self._embedded(procedure, namespace)
        with store.atomic():  # no other process adds the same procedure between check and add
            duplicate = self._duplicate(store, namespace, procedure)
            if duplicate is not None:
                head, similarity = duplicate
                store.merge_provenance(namespace, head.id, trajectory, similarity=similarity)
                report.merged.append(head.ref)
            else:
                store.put(procedure, trajectory_id=trajectory.id)
                report.added.append(procedure.ref)

    def _embedded(self, procedure: Procedure, namespace: str) -> Procedure:
        """A new lineage's procedure in this namespace, with its vectors (a revision has its head's)."""
        if procedure.version > 1 or (procedure.embedding is not None and procedure.namespace == namespace):
            return procedure
        return embed_procedure(procedure.model_copy(update={"namespace": namespace}), self.embedder)

    def _revise(self, store: Store, namespace: str, trajectory: Trajectory, procedure: Procedure,
                report: UpdateReport) -> None:
        """Store a revision; the store carries the head's statistics and provenance over."""
        for _ in range(MAX_REBASES):
            try:
                store.put(procedure, event="revised", trajectory_id=trajectory.id,
                          detail={"parent_version": procedure.parent_version})
                report.revised.append(procedure.ref)
                return
            except InvalidInputError:  # "the next version must be N"
                head = store.get(namespace, procedure.id)
                if head.version < procedure.version:
                    raise  # not a race: the version was wrong
                if head.status != "active":
                    return  # retired meanwhile; _learn would not have revised it
                # Another process revised this lineage since we read it: redo ours on its new head.
                procedure = self._rebase(head, trajectory)
                if procedure is None:
                    return
        raise StoreError(f"procedure {procedure.id} kept being revised by other processes; "
                         "report the outcome again")

    def _rebase(self, head: Procedure, trajectory: Trajectory) -> Procedure | None:
        """This run's change made again on a newer head: a revision, or merged failure evidence."""
        if is_evidence(head):
            new = self._new_evidence(trajectory)
            return merge_evidence(head, new, trajectory) if new is not None else None
        return self.adjuster.revise(head, trajectory)

    def _new_evidence(self, trajectory: Trajectory) -> Procedure | None:
        # An adjuster written before evidence existed only revises: its failures teach nothing new.
        evidence = getattr(self.adjuster, "evidence", None)
        return evidence(trajectory) if evidence is not None else None

    def _duplicate(self, store: Store, namespace: str, procedure: Procedure) -> tuple[Procedure, float] | None:
        if is_evidence(procedure):
            return None  # evidence of one kind is merged by kind (AdjustmentUpdater), not by script
        close = [(ref, score) for ref, score in nearest(store, namespace, procedure.embedding, 5)
                 if score >= self.dedup_threshold]
        for (_, score), head in zip(close, store.get_many(namespace, [ref for ref, _ in close], vectors=False)):
            if head.builder == procedure.builder and head.script == procedure.script and not is_evidence(head):
                return head, score
        return None

    def _deprecate(self, store: Store, namespace: str, used: list[RetrievalHit], report: UpdateReport) -> None:
        for hit in used:
            head = store.get(namespace, hit.procedure.id)
            if head.status != "active":
                continue
            if self.deprecation.should_deprecate(head.stats):
                try:
                    store.set_status(namespace, head.id, "deprecated",
                                     reason=self.deprecation.reason(head.stats))
                except InvalidInputError:
                    continue  # another process deprecated it between our read and this write
                report.deprecated.append(head.ref)


class VanillaUpdater(_BaseUpdater):
    name = "vanilla"


class ValidationUpdater(_BaseUpdater):
    name = "validation"

    def _learn(self, store, namespace, trajectory, used, report):
        if not trajectory.success:
            report.skipped = "failed trajectory not stored (validation keeps only successes)"
            return []
        return super()._learn(store, namespace, trajectory, used, report)


class AdjustmentUpdater(ValidationUpdater):
    """Validation, plus: a failure teaches.

    - The procedure followed in a failed run is revised from that run. Which procedure was
      followed: the refs (``id`` or ``id@vN``) in ``trajectory.metadata['followed']`` when the
      agent says so, else the top retrieved hit.
    - A failed run that followed nothing, while memory holds a procedure of its kind, files a copy
      of that procedure under its task (retrieval missed it: the lesson is where it is).
    - A failed run that followed nothing, with no procedure of its kind in memory, adds its
      evidence to its kind's evidence record (a new one for a kind not seen failing before).
    - A success retires its kind's evidence record.
    """

    name = "adjustment"

    def _learn(self, store, namespace, trajectory, used, report):
        if trajectory.success:
            self._retire_evidence(store, namespace, trajectory, report)
            return super()._learn(store, namespace, trajectory, used, report)
        followed = self._followed(trajectory, used)
        if not followed:
            refiled = self._refiled(store, namespace, trajectory)
            if refiled is not None:
                report.skipped = ("failed trajectory not stored; it followed no procedure, and memory's "
                                  "procedure for its kind of task is filed under its task instead")
                return [refiled]
            return self._evidence(store, namespace, trajectory, report)
        report.skipped = "failed trajectory not stored; the procedure it followed is revised instead"
        revised = []
        for hit in followed:
            # Revise the newest version: another run may have revised it since retrieval.
            head = store.get(namespace, hit.procedure.id)
            if head.status != "active":
                continue
            new = self.adjuster.revise(head, trajectory)
            if new is not None:
                revised.append(new)
        return revised

    def _refiled(self, store: Store, namespace: str, trajectory: Trajectory) -> Procedure | None:
        """A copy of the procedure of the failed run's kind nearest to its task, keyed by its task.

        None when memory holds no procedure to follow, the task has no kind (no non-entity
        keywords) or none of the nearest ``REFILE_POOL`` procedures is of its kind: then there is
        nothing to point to. Memory is counted first, since the keywords may cost a model call."""
        active = store.count(namespace, status="active")
        if active == 0 or active == store.count(namespace, status="active", builder="evidence"):
            return None
        keywords = self.builder.keywords.extract(trajectory.task)
        kind = kind_of(keywords)
        if not kind:
            return None
        probe = self._embedded(Procedure(key=trajectory.task.text, keywords=keywords), namespace)
        pool = [ref for ref, _ in nearest(store, namespace, probe.embedding, REFILE_POOL)]
        for source in store.get_many(namespace, pool, vectors=False):  # nearest first, read in one go
            if not is_evidence(source) and kind_of(source.keywords) == kind:
                return refiled(source, trajectory, probe)
        return None

    def _evidence(self, store, namespace, trajectory, report) -> list[Procedure]:
        report.skipped = "failed trajectory not stored; it followed no procedure, so it leaves failure evidence"
        new = self._new_evidence(trajectory)
        if new is None:
            return []
        head = self._kind_evidence(store, namespace, trajectory)
        return [merge_evidence(head, new, trajectory) if head is not None else new]

    def _store(self, store, namespace, trajectory, procedure, report) -> None:
        kind = kind_of(procedure.keywords)
        if is_evidence(procedure) and procedure.version == 1 and kind:
            # Looked for again inside the outcome's transaction, where writers take turns: a failed
            # run of the same kind reported meanwhile may have made the record this one must join.
            head = self._kind_record(store, namespace, kind)
            if head is not None:
                procedure = merge_evidence(head, procedure, trajectory)
        super()._store(store, namespace, trajectory, procedure, report)

    def _kind_evidence(self, store: Store, namespace: str, trajectory: Trajectory) -> Procedure | None:
        """The active evidence record for the run's kind of task."""
        if store.count(namespace, status="active", builder="evidence") == 0:
            return None  # the common case, and every success asks: no keywords, no listing
        return self._kind_record(store, namespace, kind_of(self.builder.keywords.extract(trajectory.task)))

    def _kind_record(self, store: Store, namespace: str, kind: dict[str, str]) -> Procedure | None:
        """The active evidence record of a kind of task.

        Evidence is one record per kind of task, so the active ones are few: reading them all is
        exact and cheap, where a vector search would embed the task on every run and could miss."""
        offset = 0
        while page := store.list(namespace, status="active", builder="evidence", sort="updated",
                                 order="asc", limit=100, offset=offset):
            for head in page:
                if is_evidence(head) and kind_of(head.keywords) == kind:
                    return head
            offset += len(page)
        return None

    def _retire_evidence(self, store, namespace, trajectory, report) -> None:
        head = self._kind_evidence(store, namespace, trajectory)
        if head is None:
            return
        try:
            store.set_status(namespace, head.id, "deprecated",
                             reason=f"a run of this kind of task succeeded ({trajectory.id}); "
                                    "its procedure replaces the failure evidence")
        except InvalidInputError:
            return  # another process retired it first
        report.deprecated.append(head.ref)


UPDATERS: dict[str, type[_BaseUpdater]] = {
    u.name: u for u in (VanillaUpdater, ValidationUpdater, AdjustmentUpdater)
}


def make_updater(name: str, **kwargs) -> _BaseUpdater:
    if name not in UPDATERS:
        raise UnknownStrategyError(
            f"unknown update strategy {name!r}; choose one of: {', '.join(UPDATERS)}"
        )
    return UPDATERS[name](**kwargs)
