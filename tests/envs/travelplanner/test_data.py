"""Data path resolution, the query model and loader, and episodes as trajectories."""

from __future__ import annotations

import json

import pytest

from memp._errors import InvalidInputError
from memp.envs.travelplanner import (
    ENV_VAR,
    TravelPlannerDataError,
    TravelTools,
    load_queries,
    query_from_dict,
    resolve_data_dir,
    trajectory_from_episode,
)
from memp.types import Trajectory

from .conftest import DATA, needs_data


def test_missing_data_dir_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(TravelPlannerDataError) as err:
        resolve_data_dir()
    msg = str(err.value)
    assert isinstance(err.value, InvalidInputError)
    assert "clean_accommodations_2022.csv" in msg and "distance.csv" in msg
    assert "flights" in msg and ENV_VAR in msg


def test_partially_missing_data_lists_only_what_is_missing(tmp_path):
    (tmp_path / "database" / "background").mkdir(parents=True)
    (tmp_path / "database" / "background" / "citySet.txt").write_text("A\n")
    with pytest.raises(TravelPlannerDataError) as err:
        resolve_data_dir(tmp_path)
    assert "citySet.txt," not in str(err.value) and "citySet_with_states.txt" in str(err.value)


def test_query_from_official_strings():
    q = query_from_dict({
        "org": "A", "dest": "B", "days": 3, "visiting_city_number": 1,
        "date": "['2022-03-16', '2022-03-17', '2022-03-18']", "people_number": 2,
        "local_constraint": "{'house rule': 'pets', 'cuisine': ['French'], 'room type': None, "
                            "'transportation': None}",
        "budget": 900, "query": "q", "level": "medium",
    })
    assert q.date[0] == "2022-03-16"
    assert q.local_constraint.house_rule == "pets" and q.local_constraint.cuisine == ["French"]
    assert q.local_constraint.active() == ["house rule", "cuisine"]
    assert q.to_official()["local_constraint"]["house rule"] == "pets"
    with pytest.raises(InvalidInputError):
        query_from_dict({"org": "A"})


def test_load_queries_bad_file(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text("{oops\n")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        load_queries(bad)


@needs_data
def test_load_official_files_and_csv(tmp_path):
    train = load_queries(DATA / "queries" / "train.jsonl")
    val = load_queries(DATA / "queries" / "validation.jsonl")
    assert len(train) == 45 and len(val) == 120
    assert all(q.gold_plan() for q in train)
    # The same rows as CSV in the official columns.
    import csv

    path = tmp_path / "train.csv"
    rows = [json.loads(line) for line in (DATA / "queries" / "train.jsonl").read_text().splitlines()]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    again = load_queries(path)
    assert [q.model_dump() for q in again] == [q.model_dump() for q in train]


@needs_data
def test_trajectory_from_episode(db, train):
    q = train[0]
    tools = TravelTools(db)
    tools.run("FlightSearch[St. Petersburg, Rockford, 2022-03-16]")
    tools.run("NotebookWrite[Flights]")
    tools.run("Bogus")
    traj = trajectory_from_episode(q, tools.history, q.gold_plan(), db=db, agent="scripted")
    assert isinstance(traj, Trajectory)
    assert traj.task.text == q.query and traj.task.env == "travelplanner"
    assert traj.task.keywords == {"days": "3", "cities": "1", "constraints": "none"}
    assert [s.action for s in traj.steps][0] == "FlightSearch[St. Petersburg, Rockford, 2022-03-16]"
    assert "F3573659" in traj.steps[0].observation
    assert traj.reward == 1.0 and traj.success
    # A failing plan gets partial credit and its reasons.
    hard_q = next(x for x in train if x.level == "hard")
    bad = trajectory_from_episode(hard_q, [("CitySearch[Texas]", "...")], [], db=db)
    assert bad.reward == 0.0 and not bad.success
    kw = trajectory_from_episode(hard_q, [], hard_q.gold_plan(), db=db).task.keywords
    assert kw["constraints"] == ",".join(hard_q.local_constraint.active())
    partial = [dict(d) for d in train[0].gold_plan()]
    partial[1]["lunch"] = partial[1]["breakfast"]
    t = trajectory_from_episode(train[0], [], partial, db=db)
    assert 0 < t.reward < 1 and t.metadata["failures"][0]["constraint"] == "Diverse Restaurants"
    Trajectory.model_validate_json(t.model_dump_json())  # JSON round trip
