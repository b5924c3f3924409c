"""Gold trajectories from the engine's experts."""

from __future__ import annotations

from pathlib import Path

from memp.envs.alfworld import AlfworldEnv, expert_trajectories
from memp.envs.alfworld.expert import run_handcoded
from memp.types import Trajectory
from tests.envs.alfworld.conftest import needs_engine

pytestmark = needs_engine


def test_expert_wins_every_generated_game(generated: list[Path]) -> None:
    gold = expert_trajectories(generated, max_steps=60)
    assert len(gold) == len(generated)
    for t in gold:
        assert isinstance(t, Trajectory)
        assert t.reward == 1.0 and t.success and t.task.env == "alfworld"
        assert t.task.type and t.task.keywords["object"] and t.steps
        assert Trajectory.model_validate_json(t.model_dump_json()) == t


def test_handcoded_expert_is_reproducible(generated: list[Path]) -> None:
    env = AlfworldEnv(max_steps=60, facts=True)
    a = run_handcoded(env, generated[0], seed=1)
    b = run_handcoded(env, generated[0], seed=1)
    assert a.steps == b.steps and a.won


def test_losing_runs_are_not_gold(generated: list[Path]) -> None:
    # Two steps are too few for any task: nothing is kept.
    assert expert_trajectories(generated[:2], max_steps=2) == []


def test_expert_on_official_games_uses_the_games_grammar(official_root: Path) -> None:
    games = sorted((official_root / "json_2.1.1" / "valid_seen").glob("pick_two_obj_and_place*/*"))[:2]
    gold = expert_trajectories(games, max_steps=50)
    assert len(gold) == 2
    puts = [s.action for t in gold for s in t.steps if s.action.startswith(("put ", "move "))]
    assert puts and all(" in/on " in a for a in puts)
