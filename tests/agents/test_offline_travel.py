"""The LLM-free TravelPlanner planner: naive without memory, better with procedures from gold runs."""

from __future__ import annotations

import pytest

from memp.agents.offline_travel import OfflineTravelPlanner, nights_per_city
from memp.embed import HashingEmbedder
from memp.envs.travelplanner import evaluate, generate_queries
from memp.experiments.travel_adjust import travel_memory
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.episode import task_for
from memp.envs.travelplanner.gold import gold_trajectories
from memp.envs.travelplanner.procedures import Check, Instructions, parse_check, read_procedures
from memp.types import Procedure, RetrievalHit


def _run(queries, db, memory=None):
    agent = OfflineTravelPlanner()
    runs = []
    for q in queries:
        hits = memory.retrieve(task_for(q)) if memory else None
        runs.append(agent.run(TravelEnv(q, db), hits))
    return runs


def _scores(queries, runs, db):
    return evaluate(queries, [t.metadata["plan"] for t in runs], db)


@pytest.fixture(scope="module")
def gold_memory(travel_db, travel_train, tmp_path_factory):
    golds = gold_trajectories(travel_train, travel_db) + gold_trajectories(
        generate_queries(20, travel_db, seed=101), travel_db)
    memory = travel_memory(tmp_path_factory.mktemp("tp") / "m.db", build="proceduralization",
                           embedder=HashingEmbedder())
    memory.add_many(golds)
    yield memory
    memory.close()


def test_nights_split_evenly():
    assert nights_per_city(3, 1) == [2]
    assert nights_per_city(5, 2) == [2, 2]
    assert nights_per_city(7, 3) == [2, 2, 2]
    assert nights_per_city(6, 2) == [3, 2]


def test_without_memory_the_planner_checks_nothing(travel_db, travel_train):
    runs = _run(travel_train[:5], travel_db)
    for run in runs:
        assert run.metadata["checks"] == []
        assert not any(parse_check(s.action) for s in run.steps)
        # It acts only through the tools and ends with a delivered plan.
        assert run.metadata["tool_calls"] >= 4 and run.metadata["delivered"]
    # Naive day-by-day filling repeats restaurants: the check it has not learned.
    assert all(any(f["constraint"] == "Diverse Restaurants" for f in r.metadata["failures"]) for r in runs)


def test_gold_trajectories_pass_and_carry_checks(travel_db, travel_train):
    golds = gold_trajectories(travel_train, travel_db)
    assert len(golds) == 45 and all(t.success for t in golds)
    lines = {s.action for t in golds for s in t.steps}
    assert "Filter[restaurant, not visited]" in lines
    assert "Filter[accommodation, minimum nights]" in lines
    # A query with a house rule records the house-rule check after its accommodation search.
    ruled = next(t for q, t in zip(travel_train, golds) if q.local_constraint.house_rule)
    actions = [s.action for s in ruled.steps]
    at = actions.index("Filter[accommodation, house rule]")
    assert any(a.startswith("AccommodationSearch[") for a in actions[:at])


def test_script_builder_keeps_the_checks(travel_db, travel_train, gold_memory):
    procedure = gold_memory.retrieve(task_for(travel_train[0]), k=1)[0].procedure
    checks = [c for line in procedure.script if (c := parse_check(line))]
    assert Check("restaurant", "not visited") in checks
    # Tool calls keep the official syntax, and the plan is written last.
    assert procedure.script[-1].startswith("Planner[")


def test_instructions_are_data():
    bare = Procedure(key="a trip", script=["AccommodationSearch[Houston]", "Filter[accommodation, house rule]",
                                           "GoogleDistanceMatrix[Dallas, Houston, self-driving]"])
    ins = read_procedures([bare])
    assert ins.checks == frozenset({Check("accommodation", "house rule")})
    assert ins.modes[0] == "self-driving"
    assert Instructions().checks == frozenset()


@pytest.mark.shared
def test_memory_beats_no_memory_on_held_out_generated_and_validation(travel_db, travel_validation, gold_memory):
    held_out = generate_queries(12, travel_db, seed=202)
    validation = travel_validation[::10]  # 12 queries across levels and lengths
    for queries in (held_out, validation):
        base = _scores(queries, _run(queries, travel_db), travel_db)
        with_memory = _scores(queries, _run(queries, travel_db, gold_memory), travel_db)
        assert with_memory["commonsense_micro"] > base["commonsense_micro"]
        assert with_memory["hard_micro"] > base["hard_micro"]
        assert with_memory["final_pass_rate"] > base["final_pass_rate"]


def test_memory_run_records_and_follows_checks(travel_db, travel_train, gold_memory):
    q = travel_train[3]
    hits = gold_memory.retrieve(task_for(q))
    run = OfflineTravelPlanner().run(TravelEnv(q, travel_db), hits)
    assert run.metadata["followed"] == [h.procedure.ref for h in hits]
    assert "Filter[restaurant, not visited]" in run.metadata["checks"]
    assert any(s.action == "Filter[restaurant, not visited]" for s in run.steps)


def test_exploration_tries_unnamed_checks_seeded(travel_db, travel_train):
    from memp._errors import InvalidInputError
    from memp.agents.offline_travel import Exploration
    from memp.envs.travelplanner.procedures import CHECKS

    q = travel_train[3]
    named = Procedure(key="a trip", script=["RestaurantSearch[{city}]", "Filter[restaurant, not visited]"])
    hits = [RetrievalHit(procedure=named, score=1.0)]

    def explored(rate, seed, n=3):
        planner = OfflineTravelPlanner(explore=Exploration(rate=rate, seed=seed))
        return [planner.run(TravelEnv(q, travel_db), hits).metadata["explored"] for _ in range(n)]

    # The same seed replays the same trials; successive runs draw afresh.
    first = explored(0.5, seed=7)
    assert first == explored(0.5, seed=7)
    assert len({tuple(e) for e in first}) > 1
    # A check memory names is followed, never "explored"; rate 1 tries every other one.
    everything = explored(1.0, seed=0, n=1)[0]
    assert everything == sorted(c.line for c in CHECKS if c != Check("restaurant", "not visited"))
    assert explored(0.0, seed=0, n=1)[0] == []
    run = OfflineTravelPlanner(explore=Exploration(rate=1.0)).run(TravelEnv(q, travel_db), hits)
    assert set(run.metadata["checks"]) == {c.line for c in CHECKS}
    # An explored check that applies is recorded as a step, so a passing run teaches it.
    assert any(s.action == "Filter[accommodation, minimum nights]" for s in run.steps)
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        Exploration(rate=1.5)


def test_a_check_made_is_recorded_even_when_it_ruled_nothing_out(travel_db, travel_train):
    """A passing run teaches the checks it made, so 'has venues' is a step on every multi-city
    trip that made it, not only on those where a city lacked venues."""
    venues = Procedure(key="a trip", script=["Filter[city, has venues]"])
    trips = [q for q in travel_train if q.visiting_city_number > 1][:6]
    for q in trips:
        run = OfflineTravelPlanner().run(TravelEnv(q, travel_db), [RetrievalHit(procedure=venues, score=1.0)])
        notes = [s for s in run.steps if s.action == "Filter[city, has venues]"]
        assert len(notes) == 1 and notes[0].observation.startswith("visiting ")
        visited = {d["current_city"] for d in run.metadata["plan"] if " to " not in d["current_city"]}
        assert all(city in notes[0].observation for city in visited)


def test_a_withdrawn_check_is_not_made_even_when_another_procedure_names_it(travel_db, travel_train):
    """Skip[kind, criterion] wins over the union of the retrieved procedures, is never explored,
    and is recorded as a step so a passing run teaches the withdrawal in turn."""
    from memp.agents.offline_travel import Exploration
    from memp.envs.travelplanner.procedures import parse_skip, tool_of

    occupancy = Check("accommodation", "occupancy")
    assert parse_skip("Skip[accommodation, occupancy]") == occupancy
    assert tool_of("Skip[accommodation, occupancy]") is None
    assert parse_skip("Skip[accommodation, breakfast]") is None and parse_skip(occupancy.line) is None
    names = Procedure(key="a trip", script=["AccommodationSearch[{city}]", occupancy.line])
    withdraws = Procedure(key="a trip", script=["AccommodationSearch[{city}]", "Skip[accommodation, occupancy]"])
    assert occupancy in read_procedures([names]).checks
    ins = read_procedures([names, withdraws])
    assert occupancy not in ins.checks and ins.skipped == frozenset({occupancy})

    q = next(q for q in travel_train if q.people_number > 1)
    hits = [RetrievalHit(procedure=p, score=1.0) for p in (names, withdraws)]
    run = OfflineTravelPlanner(explore=Exploration(rate=1.0)).run(TravelEnv(q, travel_db), hits)
    assert occupancy.line not in run.metadata["checks"] and occupancy.line not in run.metadata["explored"]
    assert run.metadata["skipped"] == [occupancy.line]
    assert not any(s.action == occupancy.line for s in run.steps)
    assert [s.action for s in run.steps].count("Skip[accommodation, occupancy]") == 1
    # Without the withdrawal the same planner makes the check.
    named_only = OfflineTravelPlanner().run(TravelEnv(q, travel_db), hits[:1])
    assert any(s.action == occupancy.line for s in named_only.steps)
