"""Episodes played as Ray tasks on a local Ray instance give the same results as in-process."""

import pytest

pytest.importorskip("alfworld", reason="needs the ALFWorld engine: pip install -e '.[alfworld]'")
pytest.importorskip("ray", reason="needs the ray extra: pip install -e '.[ray]'")

from tests.conftest import SHARED  # noqa: E402

OFFICIAL = SHARED / "alfworld" / "json_2.1.1"


@pytest.mark.slow
@pytest.mark.skipif(not OFFICIAL.is_dir(), reason="needs ../shared/alfworld (official ALFWorld games)")
def test_ray_tasks_match_in_process_play(tmp_path):
    from memp.experiments.alfworld import AlfworldPlayer, episode_tasks
    from memp.experiments.workers import Players

    games = sorted(OFFICIAL.glob("valid_seen/pick_and_place_simple-*/*/"))[:3]
    batch = [(task, []) for task in episode_tasks(games, seed=0)]
    with Players(AlfworldPlayer(), workers=1) as local:
        expected = local(batch, 10)
    with Players(AlfworldPlayer(), workers=2, ray="local") as on_ray:
        got = on_ray(batch, 10)
    # Same episodes, same outcomes.
    assert [(t.success, [s.action for s in t.steps]) for t, _ in got] == [
        (t.success, [s.action for s in t.steps]) for t, _ in expected]
    assert all(len(t.steps) <= 10 for t, _ in got)
