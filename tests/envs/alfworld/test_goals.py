"""Reading task texts into slots: every phrasing of the six task types."""

from __future__ import annotations

import json
import re

import pytest

from memp.envs.alfworld.goals import TASK_TYPES, classify_goal, normalise_task_text, parse_goal
from memp.types import Task

CASES = [
    ("put a apple in fridge", "pick_and_place_simple", {"action": "put", "object": "apple", "target": "fridge"}),
    ("put some keychain on sofa", "pick_and_place_simple", {"action": "put", "object": "keychain", "target": "sofa"}),
    ("look at bowl under the desklamp", "look_at_obj_in_light", {"action": "look", "object": "bowl", "tool": "desklamp"}),
    ("examine the pen with the desklamp", "look_at_obj_in_light", {"action": "look", "object": "pen", "tool": "desklamp"}),
    ("put a clean ladle in countertop", "pick_clean_then_place_in_recep",
     {"action": "clean", "object": "ladle", "target": "countertop", "modifier": "clean"}),
    ("clean some cloth and put it in drawer", "pick_clean_then_place_in_recep",
     {"action": "clean", "object": "cloth", "target": "drawer", "modifier": "clean"}),
    ("put a hot apple in fridge", "pick_heat_then_place_in_recep",
     {"action": "heat", "object": "apple", "target": "fridge", "modifier": "hot"}),
    ("heat some egg and put it in countertop", "pick_heat_then_place_in_recep",
     {"action": "heat", "object": "egg", "target": "countertop", "modifier": "hot"}),
    ("put a cool pan in diningtable", "pick_cool_then_place_in_recep",
     {"action": "cool", "object": "pan", "target": "diningtable", "modifier": "cool"}),
    ("cool some pot and put it in diningtable", "pick_cool_then_place_in_recep",
     {"action": "cool", "object": "pot", "target": "diningtable", "modifier": "cool"}),
    ("put two cd in dresser", "pick_two_obj_and_place",
     {"action": "put", "object": "cd", "target": "dresser", "modifier": "two"}),
    ("find two box and put them in coffeetable", "pick_two_obj_and_place",
     {"action": "put", "object": "box", "target": "coffeetable", "modifier": "two"}),
]


@pytest.mark.parametrize(("text", "task_type", "slots"), CASES)
def test_parse_goal_reads_every_phrasing(text: str, task_type: str, slots: dict[str, str]) -> None:
    assert parse_goal(text) == slots
    assert classify_goal(text) == task_type
    # The slots are valid memp keywords.
    assert Task(text=text, type=task_type, keywords=parse_goal(text), env="alfworld").keywords == slots


def test_every_task_type_has_two_phrasings() -> None:
    assert sorted({t for _, t, _ in CASES}) == sorted(TASK_TYPES)
    for task_type in TASK_TYPES:
        assert sum(t == task_type for _, t, _ in CASES) == 2


def test_task_text_is_found_in_the_intro_and_cleaned() -> None:
    intro = "-= Welcome to TextWorld, ALFRED! =-\n\nYou see a fridge 1.\n\nYour task is to: Put a HOT apple in fridge."
    assert normalise_task_text(intro) == "put a hot apple in fridge"
    assert parse_goal(intro)["modifier"] == "hot"


def test_free_text_gives_no_slots_rather_than_a_guess() -> None:
    assert parse_goal("Pick up a book to look at under a lit lamp.") == {}
    assert classify_goal("") is None


def test_official_task_texts_all_parse(official_root) -> None:
    """Every task text of the official sample is read, and matches the folder's task type."""
    seen = 0
    for game in official_root.glob("json_2.1.1/*/*/*/game.tw-pddl"):
        grammar = json.loads(game.read_text())["grammar"]
        text = re.search(r"Your task is to: (.*?)\"", grammar).group(1)
        task_type = game.parent.parent.name.split("-")[0]
        slots = parse_goal(text)
        assert classify_goal(text) == task_type, text
        assert slots["object"] == game.parent.parent.name.split("-")[1].lower(), text
        seen += 1
    assert seen >= 300
