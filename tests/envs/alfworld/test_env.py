"""The adapter on the real engine: episodes, step limit, rejected actions, bad game files."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from memp._errors import InvalidInputError, MempError
from memp.envs.alfworld import (
    AlfworldEnv,
    EpisodeOverError,
    GameFileError,
    UnknownSplitError,
    official_games,
    parse_goal,
)
from tests.envs.alfworld.conftest import needs_engine

pytestmark = needs_engine


def test_reset_gives_task_goal_and_commands(generated: list[Path]) -> None:
    env = AlfworldEnv(generated[0], max_steps=30)
    obs, info = env.reset()
    assert "Your task is to:" in obs
    assert info["task"] and info["task"] in obs.lower()
    assert info["goal"] == parse_goal(info["task"]) and info["goal"]["object"]
    assert info["task_type"] == json.loads((generated[0] / "traj_data.json").read_text())["task_type"]
    assert any(c.startswith("go to ") for c in info["admissible_commands"])
    assert info["won"] is False and info["steps"] == 0
    assert "facts" not in info  # hidden state is not handed to agents


def test_walkthrough_wins_and_ends_the_episode(generated: list[Path]) -> None:
    env = AlfworldEnv(max_steps=100)
    for game in generated:
        walkthrough = json.loads((game / "game.tw-pddl").read_text())["walkthrough"]
        env.load(game)
        env.reset()
        for action in walkthrough:
            obs, reward, done, info = env.step(action)
            if done:
                break
        assert info["won"] and reward == 1.0 and done and not info["truncated"], game.name
        with pytest.raises(EpisodeOverError):
            env.step("look")


def test_rejected_action_is_nothing_happens_and_counts(generated: list[Path]) -> None:
    env = AlfworldEnv(generated[0], max_steps=3)
    env.reset()
    obs, reward, done, info = env.step("fly to the moon")
    assert obs == "Nothing happens." and reward == 0.0 and not done and info["steps"] == 1
    obs, *_ = env.step("take unicorn 1 from nowhere 1")
    assert obs == "Nothing happens."
    obs, reward, done, info = env.step("look")
    assert done and info["truncated"] and not info["won"]


def test_reset_restarts_the_same_game(generated: list[Path]) -> None:
    env = AlfworldEnv(generated[1], max_steps=30)
    first, info = env.reset()
    env.step(info["admissible_commands"][0])
    again, info2 = env.reset()
    assert again == first and info2["steps"] == 0


def test_command_cache_changes_nothing(generated: list[Path]) -> None:
    """The memoised command derivation gives the engine's own observations and commands."""
    traces = []
    for cache in (False, True):
        env = AlfworldEnv(generated[2], max_steps=25, cache_commands=cache)
        rng = random.Random(3)
        _, info = env.reset()
        trace, done = [], False
        while not done:
            obs, _, done, info = env.step(rng.choice(info["admissible_commands"]))
            trace.append((obs, info["admissible_commands"]))
        traces.append(trace)
    assert traces[0] == traces[1]


@pytest.mark.parametrize(
    "content",
    ['{"pddl_domain": "x"', '["not", "a", "game"]', '{"pddl_domain": "", "grammar": ""}', "\udcff"],
    ids=["truncated-json", "not-an-object", "missing-fields", "not-utf8"],
)
def test_corrupted_game_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    game = tmp_path / "game.tw-pddl"
    game.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(GameFileError) as err:
        AlfworldEnv(game)
    assert isinstance(err.value, InvalidInputError) and str(game) in str(err.value)


def test_broken_pddl_problem_is_a_clear_error(generated: list[Path], tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(generated[0], folder)
    data = json.loads((folder / "game.tw-pddl").read_text())
    data["pddl_problem"] = data["pddl_problem"][: len(data["pddl_problem"]) // 2]
    (folder / "game.tw-pddl").write_text(json.dumps(data))
    with pytest.raises(GameFileError, match="cannot load"):
        AlfworldEnv(folder)


def test_missing_game_and_no_game_loaded(tmp_path: Path) -> None:
    with pytest.raises(GameFileError, match="no game file"):
        AlfworldEnv(tmp_path / "nope")
    with pytest.raises(GameFileError, match="no game loaded"):
        AlfworldEnv().reset()
    with pytest.raises(ValueError):
        AlfworldEnv(max_steps=0)


def test_official_games_discovery(official_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALFWORLD_DATA", str(official_root))
    games = official_games("valid_seen")
    assert len(games) == 140 and all((g / "game.tw-pddl").exists() for g in games)
    assert len(official_games("train")) == 200
    with pytest.raises(GameFileError, match="valid_unseen"):
        official_games("valid_unseen")  # not in the sample: a clear error, not an empty list
    with pytest.raises(UnknownSplitError):
        official_games("test")
    monkeypatch.delenv("ALFWORLD_DATA")
    with pytest.raises(MempError, match="ALFWORLD_DATA"):
        official_games("train")


def test_official_game_accepts_both_spellings(official_root: Path) -> None:
    """An official (put-grammar) game, won by the planner's plan written in move-grammar."""
    from memp.envs.alfworld.expert import run_planner

    game = next(g for g in sorted((official_root / "json_2.1.1" / "valid_seen").glob("pick_and_place_simple*/*")))
    env = AlfworldEnv(max_steps=30)
    plan = [a for a, _ in run_planner(env, game).steps]
    assert any(a.startswith("put ") and " in/on " in a for a in plan)
    env.load(game)
    env.reset()
    for action in plan:
        obs, reward, done, info = env.step(action.replace(" in/on ", " to ").replace("put ", "move ", 1))
    assert info["won"] and reward == 1.0


def test_reset_after_play_is_the_engines_fresh_start(generated: list[Path]) -> None:
    """reset() restores the saved initial state; it must match a fresh load, step for step."""
    game = generated[3]
    reused = AlfworldEnv(game, max_steps=100)
    first = _walkthrough_trace(reused, game)
    assert _walkthrough_trace(reused, game) == first and _walkthrough_trace(reused, game) == first
    assert _walkthrough_trace(AlfworldEnv(game, max_steps=100), game) == first


def _walkthrough_trace(env: AlfworldEnv, game: Path) -> list[tuple[str, list[str]]]:
    """Every observation and command list of the game's walkthrough, from a reset; it must win."""
    walkthrough = json.loads((game / "game.tw-pddl").read_text())["walkthrough"]
    obs, info = env.reset()
    trace = [(obs, info["admissible_commands"])]
    for action in walkthrough:
        obs, _, _, info = env.step(action)
        trace.append((obs, info["admissible_commands"]))
    assert info["won"]
    return trace


def test_importing_the_engine_leaves_alfworld_data_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from memp.envs.alfworld.env import import_alfworld

    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    import_alfworld()
    AlfworldEnv()
    assert "ALFWORLD_DATA" not in __import__("os").environ


def test_restored_reset_matches_the_engines_own_reset(generated: list[Path]) -> None:
    game = generated[4]
    traces = []
    for restore in (True, False):
        env = AlfworldEnv(game, max_steps=12, restore_reset=restore)
        rng = random.Random(5)
        trace = []
        for _ in range(2):  # the second episode starts from a reset after play
            obs, info = env.reset()
            trace.append(obs)
            done = False
            while not done:
                obs, _, done, info = env.step(rng.choice(info["admissible_commands"]))
                trace.append((obs, info["admissible_commands"]))
        traces.append(trace)
    assert traces[0] == traces[1]


def test_kept_games_reload_to_the_same_start(generated: list[Path]) -> None:
    """A game loaded again from memory plays exactly as one parsed from its file."""
    games = generated[:3]
    fresh = _walkthrough_trace(AlfworldEnv(games[0], max_steps=100), games[0])
    kept = AlfworldEnv(max_steps=100, keep_games=2)
    kept.load(games[0])
    assert _walkthrough_trace(kept, games[0]) == fresh
    kept.load(games[1])  # another game in between, played to the end, changes nothing
    _walkthrough_trace(kept, games[1])
    kept.load(games[0])
    assert _walkthrough_trace(kept, games[0]) == fresh
    assert len(kept._games) == 2
    kept.load(games[2])  # a third game pushes out the least recently used one (games[1])
    assert {p.parent.name for p in kept._games} == {games[0].name, games[2].name}


def test_keep_games_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="keep_games"):
        AlfworldEnv(keep_games=-1)
