"""The two spellings of placing an object, and translation between them.

Games of the json_2.1.1 era spell it ``put X in/on Y``; the grammar shipped in alfworld 0.4.2 (and
games made from it, like memp's generator) spells it ``move X to Y``. The engine accepts only its
own spelling, so an action is translated by looking at what the game currently admits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

_PUT = re.compile(r"^put (?P<obj>.+?) (?:in/on|in|on|into) (?P<recep>.+)$")
_MOVE = re.compile(r"^move (?P<obj>.+?) to (?P<recep>.+)$")


def _parts(action: str) -> tuple[str, str] | None:
    m = _PUT.match(action) or _MOVE.match(action)
    return (m.group("obj"), m.group("recep")) if m else None


def canonical_action(action: str) -> str:
    """One spelling for comparing actions across games: placing becomes ``move X to Y``."""
    action = " ".join(action.strip().lower().split())
    parts = _parts(action)
    return f"move {parts[0]} to {parts[1]}" if parts else action


def put_spelling(action: str) -> str:
    """The json_2.1.1 spelling ``put X in/on Y`` of a placing action; other actions unchanged."""
    action = " ".join(action.strip().lower().split())
    parts = _parts(action)
    return f"put {parts[0]} in/on {parts[1]}" if parts else action


def grammar_style(grammar_text: str) -> Literal["put", "move"]:
    """Which spelling a game's grammar (the ``grammar`` field of game.tw-pddl) uses."""
    return "put" if 'template :: "put {o} in/on {r}"' in grammar_text else "move"


def to_game_spelling(
    action: str, admissible: Sequence[str], style: Literal["put", "move"] | None = None
) -> str:
    """``action`` as the game spells it, judged from its admissible commands.

    An action the game already admits is returned as is. A placing action is rewritten into the
    admissible command that means the same thing; anything else comes back normalised, so the
    engine can answer it with its own "Nothing happens.".
    """
    action = " ".join(action.strip().split())
    if action in admissible:
        return action
    wanted = canonical_action(action)
    for command in admissible:
        if canonical_action(command) == wanted:
            return command
    if not _parts(wanted):
        return action
    # No admissible match (e.g. not holding the object): still answer in the game's grammar,
    # taken from ``style`` or, failing that, from how the admissible commands are spelled.
    if style is None:
        style = "put" if any(_PUT.match(c) for c in admissible) else "move"
    return put_spelling(wanted) if style == "put" else wanted
