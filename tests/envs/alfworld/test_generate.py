"""The game generator: format, splits, determinism, and every game won by the expert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memp.envs.alfworld import TASK_TYPES, UnknownSplitError, classify_goal, generate_games, parse_goal
from memp.envs.alfworld.generate import draft_game, split_scenes
from tests.envs.alfworld.conftest import needs_engine

pytestmark = needs_engine


def test_one_game_per_task_type_in_the_official_layout(generated: list[Path]) -> None:
    assert len(generated) == 6
    types = []
    for game in generated:
        assert {p.name for p in game.iterdir()} >= {"game.tw-pddl", "initial_state.pddl", "traj_data.json"}
        traj = json.loads((game / "traj_data.json").read_text())
        data = json.loads((game / "game.tw-pddl").read_text())
        assert data["solvable"] is True and data["walkthrough"]
        assert data["pddl_problem"] == (game / "initial_state.pddl").read_text()
        params = traj["pddl_params"]
        assert set(params) == {"mrecep_target", "object_sliced", "object_target", "parent_target", "toggle_target"}
        # The folder is named like ALFWorld's: <type>-<Object>-None-<Target>-<scene>.
        task_type, obj, _, target, scene = game.parent.name.split("-")
        assert task_type == traj["task_type"] and obj == params["object_target"]
        assert int(scene) == traj["scene"]["scene_num"] and int(scene) in split_scenes("train")
        text = data["grammar"].split("Your task is to: ")[1].split('."')[0]
        assert classify_goal(text) == task_type
        assert parse_goal(text)["object"] == obj.lower()
        assert target.lower() in (parse_goal(text).get("target"), parse_goal(text).get("tool"))
        types.append(task_type)
    assert sorted(types) == sorted(TASK_TYPES)


def test_same_seed_same_games_other_seed_other_games(tmp_path: Path) -> None:
    a = [draft_game("seen", 11, i) for i in range(4)]
    b = [draft_game("seen", 11, i) for i in range(4)]
    c = [draft_game("seen", 12, i) for i in range(4)]
    assert [d.problem for d in a] == [d.problem for d in b]
    assert [d.task_text for d in a] == [d.task_text for d in b]
    assert [d.problem for d in a] != [d.problem for d in c]
    # Written and checked games too, byte for byte.
    one = generate_games("unseen", 2, 5, tmp_path / "one")
    two = generate_games("unseen", 2, 5, tmp_path / "two")
    for x, y in zip(one, two, strict=True):
        for name in ("game.tw-pddl", "initial_state.pddl", "traj_data.json"):
            assert (x / name).read_bytes() == (y / name).read_bytes()


def test_unseen_floor_plans_are_never_used_for_train() -> None:
    train, seen, unseen = split_scenes("train"), split_scenes("seen"), split_scenes("unseen")
    assert train == seen and not set(train) & set(unseen)
    assert len(unseen) == 24 and len(train) == 96
    for i in range(12):
        assert draft_game("unseen", 0, i).scene in unseen
        assert draft_game("train", 0, i).scene in train


def test_seen_games_differ_from_train_games() -> None:
    train = {draft_game("train", 0, i).problem for i in range(6)}
    seen = {draft_game("seen", 0, i).problem for i in range(6)}
    assert not train & seen


def test_unknown_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownSplitError, match="unseen"):
        generate_games("validation", 1, 0, tmp_path)
    with pytest.raises(UnknownSplitError):
        split_scenes("dev")


def test_parallel_generation_gives_the_same_games(tmp_path: Path) -> None:
    serial = generate_games("seen", 2, 9, tmp_path / "serial")
    parallel = generate_games("seen", 2, 9, tmp_path / "parallel", workers=2)
    assert [p.relative_to(tmp_path / "serial") for p in serial] == [
        p.relative_to(tmp_path / "parallel") for p in parallel
    ]
    for x, y in zip(serial, parallel, strict=True):
        assert (x / "game.tw-pddl").read_bytes() == (y / "game.tw-pddl").read_bytes()
