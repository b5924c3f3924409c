"""Update: how memory changes after each finished run.

- ``VanillaUpdater``: every trajectory becomes a procedure;
- ``ValidationUpdater``: only successful trajectories do;
- ``AdjustmentUpdater``: successes are added as in validation, and a procedure that was followed
  in a failed run is revised from that run (``RuleAdjuster`` without a model, ``LLMAdjuster``
  with one). The revision is a new version whose provenance names the failed trajectory.

All three then apply the deprecation rule to the procedures that were used (default, as in the
paper's code: at least 3 uses and a success rate below 0.5), and none adds a copy of an active
procedure: a duplicate (same script, key embedding at least ``dedup_threshold`` similar) merges
its provenance into the existing one instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from memp import prompts
from memp._errors import InvalidInputError, UnknownStrategyError
from memp.build import Abstraction, Builder
from memp.embed import Embedder, embed_procedure, embed_procedures
from memp.keywords import KeywordExtractor, RuleKeywordExtractor
from memp.llm import LLM
from memp.store.base import Store, nearest
from memp.types import Procedure, ProcedureStats, RetrievalHit, Trajectory, UpdateReport, utcnow

MAX_NOTES = 6


@dataclass(frozen=True)
class DeprecationRule:
    """Retire a procedure once it has been used enough and mostly failed."""

    min_uses: int = 3
    min_success_rate: float = 0.5

    def should_deprecate(self, stats: ProcedureStats) -> bool:
        rate = stats.success_rate
        return stats.uses >= self.min_uses and rate is not None and rate < self.min_success_rate

    def reason(self, stats: ProcedureStats) -> str:
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

    def _searched_in_vain(self, failed: Trajectory, bindings: dict[str, str]) -> list[str]:
        ab = self.abstraction
        steps = failed.steps
        vain = []
        for i, s in enumerate(steps):
            if not ab.is_move(s.action) or ab.is_noop(s):
                continue
            nxt = steps[i + 1] if i + 1 < len(steps) else None
            seen = s.observation.lower()
            found = any(v in seen for v in bindings.values())
            if not found and (nxt is None or ab.is_move(nxt.action)):
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
        store.add_trajectory(namespace, trajectory)
        for hit in used:
            store.record_use(namespace, hit.procedure.id, hit.procedure.version,
                             success=bool(trajectory.success), trajectory_id=trajectory.id)
        for procedure in learned:
            self._store(store, namespace, trajectory, procedure, report)
        self._deprecate(store, namespace, used, report)
        return report

    def add(self, store: Store, namespace: str, trajectory: Trajectory) -> UpdateReport:
        """Build and add a trajectory regardless of the strategy (e.g. seeding from gold runs)."""
        return self.add_many(store, namespace, [trajectory])[0]

    def add_many(self, store: Store, namespace: str, trajectories: list[Trajectory]) -> list[UpdateReport]:
        """``add`` for many trajectories, embedding all their procedures in one batch."""
        reports = [UpdateReport(trajectory_id=t.id) for t in trajectories]
        built = [self.builder.build(t) for t in trajectories]
        ready = iter(embed_procedures([p.model_copy(update={"namespace": namespace})
                                       for p in built if p is not None], self.embedder))
        for trajectory, procedure, report in zip(trajectories, built, reports):
            store.add_trajectory(namespace, trajectory)
            if procedure is None:
                report.skipped = "the trajectory has no steps to build from"
            else:
                self._store(store, namespace, trajectory, next(ready), report)
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
            # Its statistics must include the use just recorded for the version it replaces.
            procedure = procedure.model_copy(update={"stats": store.get(namespace, procedure.id).stats})
            try:
                store.put(procedure, event="revised", trajectory_id=trajectory.id,
                          detail={"parent_version": procedure.parent_version})
            except InvalidInputError:  # "the next version must be N": the head moved on
                # Another process revised this lineage since we read it; its version stands.
                return
            report.revised.append(procedure.ref)
            return
        if procedure.embedding is None or procedure.namespace != namespace:
            procedure = embed_procedure(procedure.model_copy(update={"namespace": namespace}), self.embedder)
        duplicate = self._duplicate(store, namespace, procedure)
        if duplicate is not None:
            head, similarity = duplicate
            store.merge_provenance(namespace, head.id, trajectory, similarity=similarity)
            report.merged.append(head.ref)
        else:
            store.put(procedure, trajectory_id=trajectory.id)
            report.added.append(procedure.ref)

    def _duplicate(self, store: Store, namespace: str, procedure: Procedure) -> tuple[Procedure, float] | None:
        for ref, score in nearest(store, namespace, procedure.embedding, 5):
            if score < self.dedup_threshold:
                break
            head = store.get(namespace, *ref)
            if head.builder == procedure.builder and head.script == procedure.script:
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
    """Validation, plus: the procedure followed in a failed run is revised from that run.

    Which procedure was followed: the refs (``id`` or ``id@vN``) in
    ``trajectory.metadata['followed']`` when the agent says so, else the top retrieved hit.
    """

    name = "adjustment"

    def _learn(self, store, namespace, trajectory, used, report):
        if trajectory.success or not used:
            return super()._learn(store, namespace, trajectory, used, report)
        report.skipped = "failed trajectory not stored; the procedure it followed is revised instead"
        revised = []
        for hit in self._followed(trajectory, used):
            # Revise the newest version: another run may have revised it since retrieval.
            head = store.get(namespace, hit.procedure.id)
            if head.status != "active":
                continue
            new = self.adjuster.revise(head, trajectory)
            if new is not None:
                revised.append(new)
        return revised

    def _followed(self, trajectory: Trajectory, used: list[RetrievalHit]) -> list[RetrievalHit]:
        followed = trajectory.metadata.get("followed")
        if not followed:
            return used[:1]
        wanted = {str(f).split("@")[0] for f in (followed if isinstance(followed, list) else [followed])}
        return [h for h in used if h.procedure.id in wanted]


UPDATERS: dict[str, type[_BaseUpdater]] = {
    u.name: u for u in (VanillaUpdater, ValidationUpdater, AdjustmentUpdater)
}


def make_updater(name: str, **kwargs) -> _BaseUpdater:
    if name not in UPDATERS:
        raise UnknownStrategyError(
            f"unknown update strategy {name!r}; choose one of: {', '.join(UPDATERS)}"
        )
    return UPDATERS[name](**kwargs)
