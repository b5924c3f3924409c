"""Learning from the planner's own runs: a failure from empty memory leaves a lesson."""

from __future__ import annotations

from memp.agents.offline_travel import OfflineTravelPlanner
from memp.embed import HashingEmbedder
from memp.experiments.travel_adjust import TravelAdjuster, TravelAdjustmentUpdater, travel_memory
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.episode import task_for
from memp.envs.travelplanner.procedures import Check, parse_check, procedure_lines, read_procedures
from memp.types import Procedure, Task, Trajectory

from .conftest import needs_data


def _failed(*failures: tuple[str, str]) -> Trajectory:
    return Trajectory(task=Task(text="a trip"), reward=0.5, metadata={
        "failures": [{"constraint": c, "reason": r} for c, r in failures]})


def test_lesson_is_a_new_procedure_with_the_checks_the_failures_call_for():
    built = Procedure(key="a trip", script=["AccommodationSearch[Houston]", "RestaurantSearch[Houston]"])
    failed = _failed(("Diverse Restaurants", "The restaurant in day 2 lunch is repeated."),
                     ("Within Sandbox", "The flight number in day 1 is invalid in the sandbox."))
    lesson = TravelAdjuster().lesson(built, failed)
    assert lesson is not None and lesson.version == 1 and lesson.id == built.id
    assert lesson.script == ["AccommodationSearch[Houston]", "RestaurantSearch[Houston]",
                             "Filter[restaurant, not visited]"]
    assert lesson.extra == {"checks": ["Filter[restaurant, not visited]"], "lesson_from_failure": failed.id}
    assert lesson.notes == ["Diverse Restaurants failed (The restaurant in day 2 lunch is repeated.): "
                            "added Filter[restaurant, not visited]"]
    # A failure no check prevents teaches nothing.
    assert TravelAdjuster().lesson(built, _failed(("Within Sandbox", "..."))) is None


def test_only_adjustment_gets_the_travel_updater(tmp_path):
    for update, travel in (("adjustment", True), ("validation", False), ("vanilla", False)):
        memory = travel_memory(tmp_path / f"{update}.db", update=update, embedder=HashingEmbedder())
        assert isinstance(memory.updater, TravelAdjustmentUpdater) is travel
        assert memory.updater.name == update
        memory.close()


@needs_data
def test_failure_from_empty_memory_teaches_the_next_run(db, train, tmp_path):
    """From empty memory the planner repeats a restaurant and fails; adjustment stores the
    lesson, retrieval returns it, and the next run makes the check and no longer repeats."""
    q = train[0]
    memory = travel_memory(tmp_path / "m.db", update="adjustment", embedder=HashingEmbedder(), k=1)
    run = OfflineTravelPlanner().run(TravelEnv(q, db), [])
    assert not run.success and "Diverse Restaurants" in {f["constraint"] for f in run.metadata["failures"]}
    report = memory.update(run, [])
    assert len(report.added) == 1 and not report.revised
    hits = memory.retrieve(task_for(q))
    assert Check("restaurant", "not visited") in read_procedures(h.procedure for h in hits).checks
    again = OfflineTravelPlanner().run(TravelEnv(q, db), hits)
    assert "Diverse Restaurants" not in {f["constraint"] for f in again.metadata["failures"]}
    # Validation, from the same failure, learns nothing.
    plain = travel_memory(tmp_path / "v.db", update="validation", embedder=HashingEmbedder(), k=1)
    assert plain.update(run, []).added == [] and plain.retrieve(task_for(q)) == []
    memory.close()
    plain.close()


def test_lesson_keeps_what_the_run_did():
    built = Procedure(key="a trip", script=["AccommodationSearch[Houston]", "Filter[accommodation, house rule]"])
    lesson = TravelAdjuster().lesson(built, _failed(("Minimum Nights Stay", "...")))
    checks = {parse_check(line) for line in procedure_lines(lesson)} - {None}
    assert checks == {Check("accommodation", "house rule"), Check("accommodation", "minimum nights")}


def test_posterior_deprecation_waits_for_evidence():
    from memp.experiments.travel_adjust import PosteriorDeprecation
    from memp.types import ProcedureStats
    from memp.update import DeprecationRule

    rule = PosteriorDeprecation()

    def retired(uses, successes):
        return rule.should_deprecate(ProcedureStats(uses=uses, successes=successes))

    # The paper's rule retires 0 in 3; the posterior waits for 0 in 4, 1 in 7, 2 in 10.
    assert DeprecationRule().should_deprecate(ProcedureStats(uses=3, successes=0))
    assert not retired(3, 0) and retired(4, 0)
    assert not retired(6, 1) and retired(7, 1)
    assert not retired(9, 2) and retired(10, 2)
    assert not retired(40, 20)
    # P(rate < 0.5) under Beta(1, 4) is 1 - 0.5^4.
    assert abs(rule.belief_below(ProcedureStats(uses=3, successes=0)) - 0.9375) < 1e-12
    assert "P(success rate < 0.5) = 0.969" in rule.reason(ProcedureStats(uses=4, successes=0))
