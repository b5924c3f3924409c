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


OCCUPANCY = Check("accommodation", "occupancy")


def test_a_budget_failure_withdraws_the_filter_that_guards_no_constraint():
    """The budget is a sum of prices and a Filter only narrows a choice: on a budget failure, a
    Filter on a priced choice that no constraint calls for is withdrawn; the others stay."""
    from memp.envs.travelplanner.procedures import CHECKS, parse_skip
    from memp.experiments.travel_adjust import GUARDS, fixes_for, withdrawals_for

    # Of the whole repertoire, only occupancy guards nothing; Budget no longer calls for it.
    assert withdrawals_for("Budget", set(CHECKS)) == (OCCUPANCY,)
    assert OCCUPANCY not in GUARDS and OCCUPANCY not in fixes_for("Budget", "...")
    assert withdrawals_for("Budget", set(CHECKS) - {OCCUPANCY}) == ()
    assert withdrawals_for("Room Type", set(CHECKS)) == ()  # only the cost constraint withdraws

    procedure = Procedure(key="a trip", script=["AccommodationSearch[Houston]", OCCUPANCY.line,
                                                "Prefer[accommodation, cheapest]", "RestaurantSearch[Houston]"])
    failed = _failed(("Budget", "The total cost exceeds the budget (2262 > 2200)."))
    failed.metadata["checks"] = [OCCUPANCY.line, "Prefer[accommodation, cheapest]"]
    revised = TravelAdjuster().revise(procedure, failed)
    assert revised is not None and revised.version == 2
    # The filter's line makes way for its Skip after the search; the missing Prefers come in too.
    assert revised.script == ["AccommodationSearch[Houston]", "Prefer[accommodation, cheapest]",
                              "Skip[accommodation, occupancy]", "RestaurantSearch[Houston]",
                              "Prefer[restaurant, cheapest]", "GoogleDistanceMatrix[{city}]",
                              "Prefer[transportation, cheapest]", "FlightSearch[{city}]", "Prefer[flight, cheapest]"]
    assert OCCUPANCY.line not in revised.extra["checks"]
    assert revised.extra["skipped"] == ["Skip[accommodation, occupancy]"]
    assert "withdrew Filter[accommodation, occupancy]" in revised.notes[-1]
    ins = read_procedures([revised])
    assert OCCUPANCY not in ins.checks and OCCUPANCY in ins.skipped
    assert {parse_skip(line) for line in revised.script} - {None} == {OCCUPANCY}
    # The same failure again teaches nothing new.
    assert TravelAdjuster().revise(revised, failed) is None


def test_the_withdrawal_is_learned_from_what_the_run_made_not_only_what_the_procedure_names():
    """The planner makes the union of k procedures plus what it explores: a budget failure that
    made the check withdraws it in the followed procedure even if that one never named it."""
    procedure = Procedure(key="a trip", script=["AccommodationSearch[Houston]", "Prefer[accommodation, cheapest]"])
    cheap = ["Prefer[accommodation, cheapest]", "Prefer[flight, cheapest]", "Prefer[restaurant, cheapest]",
             "Prefer[transportation, cheapest]"]
    made = _failed(("Budget", "The total cost exceeds the budget (1 > 0)."))
    made.metadata["checks"] = [*cheap, OCCUPANCY.line]
    revised = TravelAdjuster().revise(procedure, made)
    assert revised is not None and "Skip[accommodation, occupancy]" in revised.script
    # A budget failure that did not make it leaves it alone: nothing to teach here.
    not_made = _failed(("Budget", "The total cost exceeds the budget (1 > 0)."))
    not_made.metadata["checks"] = cheap
    assert TravelAdjuster().revise(procedure.model_copy(update={"script": procedure.script + cheap[1:]}),
                                   not_made) is None


@needs_data
def test_a_failed_training_query_withdraws_the_check_for_a_later_similar_query(db, train, tmp_path):
    """Train query 33 (2 people, 3 days) fails its budget with every check made: the occupancy
    filter kept only listings for two, dearer than two units of a single. Adjustment withdraws
    the check; a later query of the same kind then stays within its budget. Validation, from the
    same failure, learns nothing and the later query still fails."""
    from memp.envs.travelplanner import load_queries
    from memp.envs.travelplanner.procedures import CHECKS
    from memp.types import RetrievalHit

    from .conftest import DATA

    q = train[33]
    later = next(v for v in load_queries(DATA / "queries" / "validation.jsonl") if v.idx == 139)
    every = Procedure(key="every check", script=[c.line for c in CHECKS])
    seeded = OfflineTravelPlanner().run(TravelEnv(q, db), [RetrievalHit(procedure=every, score=1.0)])
    assert "Budget" in {f["constraint"] for f in seeded.metadata["failures"]}
    outcomes = {}
    for update in ("adjustment", "validation"):
        memory = travel_memory(tmp_path / f"{update}.db", update=update, build="script",
                               embedder=HashingEmbedder(), k=1)
        memory.add(seeded)  # a procedure that names every check, occupancy included
        hits = memory.retrieve(task_for(q))
        run = OfflineTravelPlanner().run(TravelEnv(q, db), hits)
        assert OCCUPANCY.line in run.metadata["checks"] and not run.success
        report = memory.update(run, hits)
        assert bool(report.revised) is (update == "adjustment")
        again = OfflineTravelPlanner().run(TravelEnv(later, db), memory.retrieve(task_for(later)))
        outcomes[update] = (OCCUPANCY.line in again.metadata["checks"],
                            {f["constraint"] for f in again.metadata["failures"]})
        memory.close()
    assert outcomes["adjustment"] == (False, set())
    assert outcomes["validation"][0] and "Budget" in outcomes["validation"][1]
