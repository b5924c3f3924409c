"""Fixtures over the official TravelPlanner data; tests that need it skip when it is absent."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from memp.envs.travelplanner import TravelPlannerDataError, load_database, load_queries, resolve_data_dir

try:
    DATA: Path | None = resolve_data_dir()
except TravelPlannerDataError:
    DATA = None

needs_data = pytest.mark.skipif(
    DATA is None, reason="needs ../shared/travelplanner (official TravelPlanner data)"
)


@pytest.fixture(scope="session")
def db():
    if DATA is None:
        pytest.skip("needs ../shared/travelplanner (official TravelPlanner data)")
    return load_database(DATA)


@pytest.fixture(scope="session")
def train(db):
    return load_queries(DATA / "queries" / "train.jsonl")


@pytest.fixture()
def gold(train):
    """Fresh deep copies of the gold plans, safe to mutate."""
    return [copy.deepcopy(q.gold_plan()) for q in train]
