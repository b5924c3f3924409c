"""Observation parsing, evaluator-driven adjustment, and the bench runner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from memp.agents.offline_travel import OfflineTravelPlanner
from memp.embed import HashingEmbedder
from memp.envs.travelplanner import TravelTools
from memp.experiments.travel_adjust import TravelAdjuster, fixes_for, insert_check, travel_memory
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.episode import task_for
from memp.envs.travelplanner.gold import gold_trajectory
from memp.envs.travelplanner.observe import (
    ACCOMMODATION_COLUMNS,
    RESTAURANT_COLUMNS,
    parse_cities,
    parse_distance,
    parse_table,
)
from memp.envs.travelplanner.procedures import Check, parse_check, procedure_lines
from memp.types import Procedure, Task, Trajectory

from .conftest import needs_data


@needs_data
def test_tables_read_back_exactly(db):
    tools = TravelTools(db)
    for city in ("Houston", "Orlando", "San Antonio"):
        stays = parse_table(tools.run(f"AccommodationSearch[{city}]"), ACCOMMODATION_COLUMNS)
        assert [(r["NAME"], r["house_rules"]) for r in stays] == [
            (a.name.strip(), a.house_rules) for a in db.accommodations_by_city[city]]
        food = parse_table(tools.run(f"RestaurantSearch[{city}]"), RESTAURANT_COLUMNS, indexed=True)
        assert [r["Name"] for r in food] == [r.name.strip() for r in db.restaurants_by_city[city]]
    assert "Houston" in parse_cities(tools.run("CitySearch[Texas]"))
    assert parse_cities("Invalid State") == []
    assert parse_distance(tools.run("GoogleDistanceMatrix[Orlando, San Antonio, taxi]"))["cost"] == "1863"
    assert parse_distance("taxi, from A to B, no valid information.") is None


def test_fixes_map_failures_to_checks():
    assert fixes_for("Room Rule", "...") == (Check("accommodation", "house rule"),)
    assert Check("city", "reachable") in fixes_for("Complete Information", "No transportation in day 1 is not allowed.")
    assert fixes_for("Complete Information", "No attaction in day 2 is not allowed.") == (Check("city", "has venues"),)
    assert fixes_for("Within Sandbox", "The flight number in day 1 is invalid in the sandbox.") == ()
    script = ["AccommodationSearch[Houston]", "Filter[accommodation, minimum nights]", "RestaurantSearch[Houston]"]
    assert insert_check(script, Check("accommodation", "room type")) == [
        "AccommodationSearch[Houston]", "Filter[accommodation, minimum nights]",
        "Filter[accommodation, room type]", "RestaurantSearch[Houston]"]
    assert insert_check(["Planner[x]"], Check("attraction", "not visited")) == [
        "AttractionSearch[{city}]", "Filter[attraction, not visited]", "Planner[x]"]


def _failed(*failures: tuple[str, str]) -> Trajectory:
    return Trajectory(task=Task(text="a trip"), reward=0.5, metadata={
        "failures": [{"constraint": c, "reason": r} for c, r in failures]})


def test_adjuster_adds_the_missing_check_as_a_new_version():
    procedure = Procedure(key="a trip", script=["AccommodationSearch[Houston]", "RestaurantSearch[Houston]"])
    failed = _failed(("Room Type", "The room type should be entire room: X is 'Private room'."))
    revised = TravelAdjuster().revise(procedure, failed)
    assert revised is not None and revised.version == 2 and revised.parent_version == 1
    assert revised.script == ["AccommodationSearch[Houston]", "Filter[accommodation, room type]",
                              "RestaurantSearch[Houston]"]
    assert revised.extra["checks"] == ["Filter[accommodation, room type]"]
    assert revised.provenance.revised_from_failure == failed.id
    assert "Room Type failed" in revised.notes[-1]
    # The same failure again teaches nothing new.
    assert TravelAdjuster().revise(revised, failed) is None


@needs_data
def test_adjustment_from_evaluator_feedback_through_memory(db, train, tmp_path):
    """A procedure without the house-rule check fails a house-rule query; memory revises it."""
    q = next(q for q in train if q.local_constraint.house_rule and q.visiting_city_number == 1)
    gold = gold_trajectory(q, q.gold_plan(), db)
    stripped = gold.model_copy(update={"steps": [s for s in gold.steps if s.action != "Filter[accommodation, house rule]"]})
    memory = travel_memory(tmp_path / "m.db", build="script", embedder=HashingEmbedder(), k=1)
    memory.add(stripped)
    hits = memory.retrieve(task_for(q))
    assert Check("accommodation", "house rule") not in {parse_check(l) for l in procedure_lines(hits[0].procedure)}
    # Force the failure the missing check allows: the evaluator reports it, adjustment reads it.
    run = OfflineTravelPlanner().run(TravelEnv(q, db), hits)
    failed = run.model_copy(update={"success": False, "reward": 0.5, "metadata": {
        **run.metadata, "failures": [{"constraint": "Room Rule", "reason": "The house rule should be ..."}]}})
    report = memory.update(failed, hits)
    assert report.revised == [f"{hits[0].procedure.id}@v2"]
    head = memory.store.get(memory.namespace, hits[0].procedure.id)
    assert "Filter[accommodation, house rule]" in head.script
    memory.close()


@needs_data
def test_bench_preset_of_the_suite_runner(tmp_path):
    """`memp travelplanner bench`: one seed, no memory, each build, retrieval, online from expert memory."""
    from memp.cli.main import app

    args = ["travelplanner", "bench", "--seed", "3", "--n-train", "2", "--n-test", "2", "--n-validation", "2",
            "--embedder", "hashing"]
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        result = CliRunner().invoke(app, [*args, "--out", str(out)])
        assert result.exit_code == 0, result.output
    saved = json.loads((first / "results.json").read_text())
    for name in ("test_generated", "validation"):
        assert list(saved["table1_build"][name]) == ["no memory", "trajectory", "script", "proceduralization"]
        assert list(saved["table2_retrieve"][name]) == ["none", "random", "query", "avefact", "hybrid"]
        assert list(saved["figure3_from_expert"][name]) == ["vanilla", "validation", "adjustment"]
        assert all(row["n"] == 2 for row in saved["table1_build"][name].values())
    assert "figure3_update" not in saved and "figure5b_k" not in saved  # not in this preset
    assert saved["config"]["seeds"] == [3] and (first / "report.md").read_text().startswith("# The Memp")
    # Deterministic by seed.
    again = json.loads((second / "results.json").read_text())
    for key in ("table1_build", "table2_retrieve", "figure3_from_expert"):
        assert again[key] == saved[key], key
