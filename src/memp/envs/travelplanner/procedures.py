"""What a TravelPlanner procedure says, as data: tool calls and the checks made before choosing.

A procedure's script (or its trajectory steps) is a list of lines. Tool calls are in the official
syntax (``AccommodationSearch[Houston]``); checks are lines of their own::

    Filter[accommodation, minimum nights]     drop listings whose minimum stay is too long
    Prefer[restaurant, cheapest]              among what is left, take the cheapest first
    Skip[accommodation, occupancy]            do not make this check, whichever procedure names it

Gold and agent trajectories record a check as a step right after the search it applies to, so
every build strategy keeps it: the script builder sees an effective step (its observation says
what the check kept), and the trajectory builder keeps the step itself. ``read_procedures`` turns
retrieved procedures back into ``Instructions`` for the LLM-free planner. Nothing here knows
*which* checks a task needs; that is what memory is for.

A ``Skip`` line withdraws a check of the same vocabulary: only a lesson from a failed run writes
one (``memp.experiments.travel_adjust``), and it wins over the procedures that name the check,
since the planner makes the union of what its k procedures name and one of them would otherwise
bring the check back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from memp.build import NOOP_PATTERNS, Abstraction
from memp.types import Procedure

# Observations of the official tools that mean the call found nothing to use.
TRAVEL_NOOP_PATTERNS = NOOP_PATTERNS + (
    r"no valid information",
    r"^invalid state",
    r"is not valid city",
    r"^illegal\b",
    r"^no planner is attached",
)


def travel_abstraction() -> Abstraction:
    """The LLM-free script builder's settings for TravelPlanner.

    Numbers are part of the facts here (dates, flight numbers), never instance suffixes, and a
    search that found nothing is not an effective step.
    """
    return Abstraction(noop_patterns=TRAVEL_NOOP_PATTERNS, strip_instance_numbers=False)


@dataclass(frozen=True, order=True)
class Check:
    """One check the planner can make before choosing something of ``kind``."""

    kind: str
    criterion: str

    @property
    def verb(self) -> str:
        return "Prefer" if self.criterion == "cheapest" else "Filter"

    @property
    def line(self) -> str:
        return f"{self.verb}[{self.kind}, {self.criterion}]"

    def __str__(self) -> str:
        return self.line


# The vocabulary, with what each check means; the planner knows how to apply each one, but
# applies only those its procedures name.
CHECKS: dict[Check, str] = {
    Check("city", "reachable"): "visit only cities every leg of the route can reach",
    Check("city", "has venues"): "visit only cities whose searches list stays, restaurants and attractions",
    Check("transportation", "same mode"): "self-driving for every leg, or flights and taxis only",
    Check("transportation", "rule"): "respect the query's transportation rule (no flight / no self-driving)",
    Check("transportation", "cheapest"): "for each leg, the cheapest usable mode for the party",
    Check("flight", "cheapest"): "the cheapest flight of the search, not the first",
    Check("accommodation", "minimum nights"): "minimum nights no longer than the stay in that city",
    Check("accommodation", "house rule"): "house rules must not forbid what the query asks for",
    Check("accommodation", "room type"): "the room type the query asks for",
    Check("accommodation", "occupancy"): "maximum occupancy at least the number of people",
    Check("accommodation", "cheapest"): "the cheapest listing for the party (units x price)",
    Check("restaurant", "not visited"): "never the same restaurant twice in the trip",
    Check("restaurant", "cuisine"): "cover every cuisine the query asks for",
    Check("restaurant", "cheapest"): "the cheapest restaurants first",
    Check("attraction", "not visited"): "never the same attraction twice in the trip",
}
KIND_TOOL = {
    "city": "CitySearch",
    "transportation": "GoogleDistanceMatrix",
    "flight": "FlightSearch",
    "accommodation": "AccommodationSearch",
    "restaurant": "RestaurantSearch",
    "attraction": "AttractionSearch",
}
# The tools whose results a check of each kind reads (for placing a new check in a script).
KIND_TOOLS = {
    "city": ("CitySearch",),
    "transportation": ("FlightSearch", "GoogleDistanceMatrix"),
    "flight": ("FlightSearch",),
    "accommodation": ("AccommodationSearch",),
    "restaurant": ("RestaurantSearch",),
    "attraction": ("AttractionSearch",),
}

# A check line: Filter or Prefer makes the check, Skip withdraws it.
_CHECK = re.compile(r"^\s*(Filter|Prefer|Skip)\[\s*([a-z]+)\s*,\s*([a-z ]+?)\s*\]\s*$", re.IGNORECASE)
_TOOL = re.compile(r"^\s*(\w+)\[(.*)\]\s*$", re.DOTALL)
MODES = ("flight", "self-driving", "taxi")


def _parse(line: str, skip: bool) -> Check | None:
    """The Check a line makes (skip=False) or withdraws (skip=True), or None."""
    match = _CHECK.match(line)
    if not match or (match.group(1).lower() == "skip") != skip:
        return None
    check = Check(match.group(2).lower(), match.group(3).lower())
    return check if check in CHECKS else None


def parse_check(line: str) -> Check | None:
    """``Filter[accommodation, house rule]`` -> Check, or None for any other line."""
    return _parse(line, skip=False)


def parse_skip(line: str) -> Check | None:
    """``Skip[accommodation, occupancy]`` -> the withdrawn Check, or None for any other line."""
    return _parse(line, skip=True)


def skip_line(check: Check) -> str:
    return f"Skip[{check.kind}, {check.criterion}]"


def tool_of(line: str) -> str | None:
    match = _TOOL.match(line)
    return match.group(1) if match and parse_check(line) is None and parse_skip(line) is None else None


def mode_of(line: str) -> str | None:
    """The transport mode a tool call explores: flight, self-driving or taxi."""
    match = _TOOL.match(line)
    if not match:
        return None
    if match.group(1) == "FlightSearch":
        return "flight"
    if match.group(1) == "GoogleDistanceMatrix":
        mode = match.group(2).rsplit(",", 1)[-1].strip().lower()
        return mode if mode in ("self-driving", "taxi") else None
    return None


@dataclass
class Instructions:
    """What the planner follows: the checks to make, the checks withdrawn (never made, not even
    to explore), and the order to try transport modes in."""

    checks: frozenset[Check] = frozenset()
    skipped: frozenset[Check] = frozenset()
    modes: tuple[str, ...] = MODES
    followed: list[str] = field(default_factory=list)

    def has(self, kind: str, criterion: str) -> bool:
        return Check(kind, criterion) in self.checks


def procedure_lines(procedure: Procedure, abstraction: Abstraction | None = None) -> list[str]:
    """The lines a procedure teaches: its script, then the effective actions of its steps."""
    ab = abstraction or travel_abstraction()
    lines = list(procedure.script)
    lines += [s.action for s in procedure.steps if not ab.is_noop(s)]
    return lines


def read_procedures(procedures: Iterable[Procedure]) -> Instructions:
    """Instructions from the procedures retrieved for a task: the union of their checks, less
    the union of the checks they withdraw.

    The transport modes are tried in the order the first procedure used them; modes it never
    used follow in the default order, so a trip the procedure's mode cannot make still gets one.
    """
    checks: set[Check] = set()
    skipped: set[Check] = set()
    modes: list[str] = []
    followed: list[str] = []
    for procedure in procedures:
        followed.append(procedure.ref)
        for line in procedure_lines(procedure):
            check = parse_check(line)
            if check is not None:
                checks.add(check)
            withdrawn = parse_skip(line)
            if withdrawn is not None:
                skipped.add(withdrawn)
            mode = mode_of(line)
            if mode and mode not in modes:
                modes.append(mode)
    modes += [m for m in MODES if m not in modes]
    return Instructions(checks=frozenset(checks - skipped), skipped=frozenset(skipped), modes=tuple(modes),
                        followed=followed)
