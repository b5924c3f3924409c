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
    from memp.experiments.runner import Condition, run_condition

    games = sorted(OFFICIAL.glob("valid_seen/pick_and_place_simple-*/*/"))[:3]
    tasks = episode_tasks(games, seed=0)
    with AlfworldPlayer(workers=1, max_steps=10) as local:
        expected = run_condition(Condition("local"), tasks, local, tmp_path / "local")
    with AlfworldPlayer(workers=2, max_steps=10, ray_address="local") as on_ray:
        got = run_condition(Condition("ray"), tasks, on_ray, tmp_path / "ray")
    # Same episodes, same outcomes, gathered into the same kind of files.
    assert [(r.task_id, r.success, r.steps) for r in got] == [(r.task_id, r.success, r.steps) for r in expected]
    assert (tmp_path / "ray" / "episodes.jsonl").read_text().count('"condition": "ray"') == 3
    assert all(r.steps <= 10 for r in got)
