"""The string helpers the official evaluation reads plans with (EVALUATION.md §1.3).

They are reproduced with their quirks on purpose: an evaluator that claims to score as the
official one must read "Rockford (Illinois)" as "Rockford " (trailing space) just as it does.
Each helper takes ``strict=True`` for memp's stricter reading, which trims and tolerates case.
"""

from __future__ import annotations

import re
from typing import Any

# P1: text before the first "(...)" group; the lazy prefix means the earliest "(" that has a
# ")" somewhere after it starts the group.
_PAREN = re.compile(r"^(.*?)\([^)]*\)")
# P2: "name, city" split at the last comma (the lazy name stops at the comma after which only
# non-commas remain).
_NAME_CITY = re.compile(r"(.*?),\s*([^,]+)$")
# P3: "from A to B"; A as short as possible, B runs up to the next comma or the end.
_FROM_TO = re.compile(r"from\s+(.+?)\s+to\s+([^,]+)")
_FROM_TO_STRICT = re.compile(r"from\s+(.+?)\s+to\s+([^,]+)", re.IGNORECASE)

EMPTY = "-"


def strip_parenthesis(text: str, strict: bool = False) -> str:
    """P1. Raises TypeError on None, as the official helper does (that is one of its crashes)."""
    match = _PAREN.search(text)
    out = match.group(1) if match else text
    return out.strip() if strict else out


def name_and_city(text: str, strict: bool = False) -> tuple[str, str]:
    """P2: ("name", "city"), or ("-", "-") when the text has no usable comma."""
    match = _NAME_CITY.search(text)
    if not match:
        return EMPTY, EMPTY
    city = strip_parenthesis(match.group(2).strip(), strict).strip()
    return match.group(1).strip(), city


def from_to(text: str, strict: bool = False) -> tuple[str | None, str | None]:
    """P3: (A, B) of the first "from A to B", or (None, None)."""
    match = (_FROM_TO_STRICT if strict else _FROM_TO).search(text)
    if not match:
        return None, None
    if strict:
        return match.group(1).strip(), match.group(2).strip()
    return match.group(1), match.group(2)


def attraction_pieces(text: str, strict: bool = False) -> list[str]:
    """P4: the official split drops the last piece, so an attraction needs a trailing ';'."""
    if strict:
        return [p.strip() for p in text.split(";") if p.strip()]
    return text.split(";")[:-1]


def filled(value: Any) -> bool:
    """A plan value that holds something: truthy and not the '-' placeholder."""
    return bool(value) and value != EMPTY
