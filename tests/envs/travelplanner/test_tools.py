"""Tool semantics on real rows, and the action parser."""

from __future__ import annotations

import pytest

from memp.envs.travelplanner import TravelTools, parse_action
from memp.envs.travelplanner.tools import INVALID_ACTION

from .conftest import needs_data

pytestmark = needs_data


@pytest.fixture()
def tools(db):
    return TravelTools(db)


def test_parse_action_shapes():
    assert parse_action("FlightSearch[A, B, 2022-03-01]").tool == "FlightSearch"
    assert parse_action("  CitySearch[Texas]\n").argument == "Texas"
    assert parse_action("CitySearch Texas") is None
    assert parse_action("CitySearch[]") is None
    assert parse_action(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "action", ["", "Finish[plan]", "FlightSearch(A, B)", "[x]", "flightsearch", "Planner"]
)
def test_malformed_actions_answer_invalid_action(tools, action):
    assert tools.run(action) == INVALID_ACTION


def test_flight_search_returns_exact_route_and_date(tools):
    out = tools.run("FlightSearch[Memphis, Minneapolis, 2022-03-01]")
    assert "F3836157" in out and "F3849516" in out
    assert "2022-03-02" not in out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["Flight", "Number"]
    assert len(lines) == 1 + sum(
        1 for f in tools.db.flights
        if (f.origin, f.dest, f.date) == ("Memphis", "Minneapolis", "2022-03-01")
    )


def test_flight_search_errors(tools):
    assert tools.run("FlightSearch[Memphis, Minneapolis, March 1]") == (
        "'March 1' is not in the format YYYY-MM-DD"
    )
    assert "not valid city" in tools.run("FlightSearch[Atlantis, Minneapolis, 2022-03-01]")
    assert tools.run("FlightSearch[Memphis]") == "Illegal Flight Search. Please try again."
    assert tools.run("FlightSearch[Rockford, Pellston, 2022-03-05]") == (
        "There is no flight from Rockford to Pellston on 2022-03-05."
    )


def test_distance_matrix_official_costs(tools):
    drive = tools.run("GoogleDistanceMatrix[Detroit, Norfolk, self-driving]")
    assert drive == "self-driving, from Detroit to Norfolk, duration: 10 hours 55 mins, distance: 1,144 km, cost: 57"
    taxi = tools.run("GoogleDistanceMatrix[Detroit, Norfolk, taxi]")
    assert taxi.endswith("cost: 1144")
    assert tools.run("GoogleDistanceMatrix[Detroit(Michigan), Norfolk, walking]").endswith("cost: None")
    # Empty duration/distance in the row -> the official "No valid information."
    assert tools.run("GoogleDistanceMatrix[Killeen, Mission, taxi]") == "No valid information."
    assert tools.run("GoogleDistanceMatrix[Detroit, Atlantis, taxi]") == (
        "taxi, from Detroit to Atlantis, no valid information."
    )
    assert tools.run("GoogleDistanceMatrix[Detroit, Norfolk]") == (
        "Illegal GoogleDistanceMatrix. Please try again."
    )


def test_over_a_day_is_no_valid_information(tools):
    route = next(r for r in tools.db.routes.values() if r.duration and "day" in r.duration)
    assert tools.distance_matrix(route.origin, route.destination, "taxi") == "No valid information."


def test_city_searches_and_dropped_rows(tools, db):
    out = tools.run("AccommodationSearch[Rockford]")
    names = [a.name for a in db.accommodations_by_city["Rockford"]]
    assert all(n in out for n in names)
    # Rows with an empty cell are invisible, as after the official dropna().
    assert len(db.accommodations) == 5047 - 762
    assert "Coco Bambu" in tools.run("RestaurantSearch[Rockford]")
    assert "Burpee Museum of Natural History" in tools.run("AttractionSearch[Rockford]")
    assert tools.run("CitySearch[Texas]").startswith("['")
    assert "Dallas" in tools.run("CitySearch[Texas]")
    assert tools.run("CitySearch[Atlantis]") == "Invalid State"
    assert "not valid city" in tools.run("RestaurantSearch[Atlantis]")


def test_no_match_answers(tools):
    # A valid city without rows answers as the official tools do (sic for accommodations).
    assert tools.accommodation_search("Atlantis") == "There is no attraction in this city."
    assert tools.restaurant_search("Atlantis") == "There is no restaurant in this city."
    assert tools.attraction_search("Atlantis") == "There is no attraction in this city."


def test_notebook_and_planner_hook(db):
    seen = {}

    def planner(notebook: str, query: str) -> str:
        seen["notebook"], seen["query"] = notebook, query
        return "PLAN"

    tools = TravelTools(db, planner=planner)
    tools.run("RestaurantSearch[Rockford]")
    assert tools.run("NotebookWrite[Restaurants in Rockford]") == (
        "The information has been recorded in Notebook, and its index is 0."
    )
    assert tools.run("Planner[a 3-day trip]") == "PLAN"
    assert "Restaurants in Rockford" in seen["notebook"] and "Coco Bambu" in seen["notebook"]
    assert seen["query"] == "a 3-day trip"
    assert [a for a, _ in tools.history][0] == "RestaurantSearch[Rockford]"
    assert "No planner" in TravelTools(db).run("Planner[x]")
