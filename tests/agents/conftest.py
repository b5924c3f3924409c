"""Fixtures for the agent tests: the TravelPlanner data (skipped cleanly when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from memp.envs.travelplanner import TravelPlannerDataError, load_database, load_queries, resolve_data_dir

try:
    TRAVEL_DATA: Path | None = resolve_data_dir()
except TravelPlannerDataError:
    TRAVEL_DATA = None

SKIP_REASON = "needs ../shared/travelplanner (official TravelPlanner data; set MEMP_TRAVELPLANNER_DATA)"


@pytest.fixture(scope="session")
def travel_db():
    if TRAVEL_DATA is None:
        pytest.skip(SKIP_REASON)
    return load_database(TRAVEL_DATA)


@pytest.fixture(scope="session")
def travel_train(travel_db):
    return load_queries(TRAVEL_DATA / "queries" / "train.jsonl")


@pytest.fixture(scope="session")
def travel_validation(travel_db):
    return load_queries(TRAVEL_DATA / "queries" / "validation.jsonl")
