"""A batch of writes through the library is stored whole or not at all, on both stores."""

from __future__ import annotations

import pytest

from memp import TrajectoryConflictError
from memp.embed import HashingEmbedder
from memp.memory import Memory
from memp.store import open_store
from tests.conftest import clean_apple_trajectory


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "memp.db")
    return request.getfixturevalue("pg_url")


def test_add_many_stores_every_run_or_none(location):
    with Memory.open(location, embedder=HashingEmbedder(), update="vanilla") as mem:
        mem.add(clean_apple_trajectory("egg", "microwave", traj_id="taken"))
        before = (mem.store.generation(), mem.store.count("default"), mem.store.count_events("default"))
        batch = [clean_apple_trajectory("mug", "cabinet", traj_id="new-1"),
                 clean_apple_trajectory("apple", "fridge", traj_id="new-2"),
                 clean_apple_trajectory("cup", "shelf", traj_id="taken")]  # another run under a stored id
        with pytest.raises(TrajectoryConflictError, match="taken"):
            mem.add_many(batch)
        assert (mem.store.generation(), mem.store.count("default"), mem.store.count_events("default")) == before
        assert mem.store.get_trajectory("default", "taken").task.text == "put a clean egg in microwave."
        assert [h.procedure.key for h in mem.retrieve("put a clean mug in cabinet.", k=3)] == [
            "put a clean egg in microwave."]
        reports = mem.add_many(batch[:2] + [clean_apple_trajectory("egg", "microwave", traj_id="taken")])
        assert [len(r.added) for r in reports] == [1, 1, 0] and reports[2].merged == []
        assert "already recorded" in reports[2].skipped  # the same run again adds nothing
    with open_store(location, read_only=True) as store:
        assert store.count("default") == 3
