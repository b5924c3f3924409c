"""The two spellings of placing an object: `put X in/on Y` and `move X to Y`."""

from __future__ import annotations

from memp.envs.alfworld.grammar import canonical_action, grammar_style, put_spelling, to_game_spelling

OLD = ["go to fridge 1", "put apple 1 in/on fridge 1", "examine apple 1"]
NEW = ["go to fridge 1", "move apple 1 to fridge 1", "examine apple 1"]


def test_both_spellings_are_one_action() -> None:
    assert canonical_action("put apple 1 in/on fridge 1") == "move apple 1 to fridge 1"
    assert canonical_action("put apple 1 in fridge 1") == "move apple 1 to fridge 1"
    assert canonical_action("Move  apple 1 to fridge 1 ") == "move apple 1 to fridge 1"
    assert put_spelling("move apple 1 to fridge 1") == "put apple 1 in/on fridge 1"
    # Other actions are left alone, multi-word names included.
    assert canonical_action("take apple 1 from countertop 2") == "take apple 1 from countertop 2"
    assert canonical_action("move soapbar 1 to sinkbasin 1") == "move soapbar 1 to sinkbasin 1"


def test_translation_follows_the_admissible_commands() -> None:
    assert to_game_spelling("move apple 1 to fridge 1", OLD) == "put apple 1 in/on fridge 1"
    assert to_game_spelling("put apple 1 in/on fridge 1", NEW) == "move apple 1 to fridge 1"
    assert to_game_spelling("put apple 1 on fridge 1", NEW) == "move apple 1 to fridge 1"
    assert to_game_spelling("go to fridge 1", OLD) == "go to fridge 1"


def test_an_impossible_placement_keeps_the_games_grammar() -> None:
    # Not admissible now (say, not holding it): spelled as the game would, so the engine answers.
    assert to_game_spelling("move mug 1 to fridge 1", OLD) == "put mug 1 in/on fridge 1"
    assert to_game_spelling("put mug 1 in/on fridge 1", ["look"], style="move") == "move mug 1 to fridge 1"
    assert to_game_spelling("move mug 1 to fridge 1", ["look"], style="put") == "put mug 1 in/on fridge 1"
    assert to_game_spelling("dance wildly", NEW) == "dance wildly"


def test_grammar_style_is_read_from_the_grammar_text() -> None:
    assert grammar_style('template :: "put {o} in/on {r}";') == "put"
    assert grammar_style('template :: "move {o} to {r}";') == "move"
