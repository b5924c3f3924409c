"""Task texts of ALFWorld: read the six goal phrasings into slots.

ALFWorld's task texts come from two templates per task type (ALFRED's goal library), e.g.
"put a hot apple in fridge" or "heat some apple and put it in fridge". Reading them is surface
parsing, not task knowledge: the slots are what the sentence names.
"""

from __future__ import annotations

import re

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

# The two templates of each task type in ALFRED's goal library (alfworld.gen.goal_library),
# written as patterns. Order matters: the more specific phrasings come first.
_W = r"([a-z]+)"
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("look_at_obj_in_light", re.compile(rf"^look at (?:a |the |some )?{_W} under the {_W}$")),
    ("look_at_obj_in_light", re.compile(rf"^examine the {_W} with the {_W}$")),
    ("pick_two_obj_and_place", re.compile(rf"^put two {_W} (?:in|on|in/on) {_W}$")),
    ("pick_two_obj_and_place", re.compile(rf"^find two {_W} and put them (?:in|on) {_W}$")),
    ("pick_clean_then_place_in_recep", re.compile(rf"^put a clean {_W} (?:in|on) {_W}$")),
    ("pick_clean_then_place_in_recep", re.compile(rf"^clean (?:a |some )?{_W} and put it (?:in|on) {_W}$")),
    ("pick_heat_then_place_in_recep", re.compile(rf"^put a hot {_W} (?:in|on) {_W}$")),
    ("pick_heat_then_place_in_recep", re.compile(rf"^heat (?:a |some )?{_W} and put it (?:in|on) {_W}$")),
    ("pick_cool_then_place_in_recep", re.compile(rf"^put a (?:cool|cold) {_W} (?:in|on) {_W}$")),
    ("pick_cool_then_place_in_recep", re.compile(rf"^cool (?:a |some )?{_W} and put it (?:in|on) {_W}$")),
    ("pick_and_place_simple", re.compile(rf"^put (?:a |an |some |the )?{_W} (?:in|on|in/on) {_W}$")),
]

# What each task type's sentence says besides object and target (verb and state word).
_SLOTS: dict[str, dict[str, str]] = {
    "pick_and_place_simple": {"action": "put"},
    "pick_two_obj_and_place": {"action": "put", "modifier": "two"},
    "pick_clean_then_place_in_recep": {"action": "clean", "modifier": "clean"},
    "pick_heat_then_place_in_recep": {"action": "heat", "modifier": "hot"},
    "pick_cool_then_place_in_recep": {"action": "cool", "modifier": "cool"},
    "look_at_obj_in_light": {"action": "look"},
}


def normalise_task_text(text: str) -> str:
    """Lower case, single spaces, without the "Your task is to:" lead and the final period."""
    text = " ".join(text.lower().split())
    text = re.sub(r"^.*your task is to:\s*", "", text)
    return text.rstrip(" .")


def classify_goal(text: str) -> str | None:
    """The ALFWorld task type a task text was written from, or None for free-form text."""
    goal = normalise_task_text(text)
    for task_type, pattern in _PATTERNS:
        if pattern.match(goal):
            return task_type
    return None


def parse_goal(text: str) -> dict[str, str]:
    """Slots of a task text, usable as memp ``Task.keywords``.

    "put a hot apple in fridge" -> {action: heat, object: apple, target: fridge, modifier: hot};
    "look at bowl under the desklamp" -> {action: look, object: bowl, tool: desklamp}.
    Free-form text (a human annotation) gives {} rather than a guess.
    """
    goal = normalise_task_text(text)
    for task_type, pattern in _PATTERNS:
        m = pattern.match(goal)
        if not m:
            continue
        out = dict(_SLOTS[task_type])
        out["object"] = m.group(1)
        if task_type == "look_at_obj_in_light":
            out["tool"] = m.group(2)
        else:
            out["target"] = m.group(2)
        return out
    return {}
