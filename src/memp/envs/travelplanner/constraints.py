"""The 8 commonsense and 5 hard constraints, one function each (EVALUATION.md §2-3).

Every check takes a ``_Ctx`` and returns ``(passed, reason)``; ``passed`` is None for a hard
constraint the query does not set. The functions are written in the shape of the official rules
so that they fail (raise) on exactly the inputs where the official code crashes; the caller
turns that into a flagged crash. With ``ctx.strict`` they apply memp's fixes of the quirks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from memp.envs.travelplanner.data import Database
from memp.envs.travelplanner.parsing import (
    attraction_pieces,
    filled,
    from_to,
    name_and_city,
    strip_parenthesis,
)
from memp.envs.travelplanner.queries import TravelQuery

MEALS = ("breakfast", "lunch", "dinner")
NOT_NEEDED = "You don't need to fill in the information for this or later days."
HOUSE_RULE_PHRASE = {
    "smoking": "No smoking",
    "parties": "No parties",
    "children under 10": "No children under 10",
    "visitors": "No visitors",
    "pets": "No pets",
}

Result = tuple[bool | None, str | None]


class MalformedPlan(Exception):
    """Raised in strict mode where the official code would crash; becomes a failed check."""


@dataclass
class _Ctx:
    query: TravelQuery
    plan: Any
    db: Database
    strict: bool = False

    @property
    def examined(self) -> range:
        return range(min(self.query.days, len(self.plan)))


# --- shared parsing --------------------------------------------------------------------------


def _travel(ctx: _Ctx, current_city: str) -> bool:
    if ctx.strict:
        return from_to(current_city, strict=True)[0] is not None
    return "from" in current_city


def _endpoints(ctx: _Ctx, text: str, day: int) -> tuple[str, str]:
    """P3 then P1 on a travel day's current_city (official: crashes when P3 finds nothing)."""
    a, b = from_to(text, ctx.strict)
    if ctx.strict and (a is None or b is None):
        raise MalformedPlan(f"day {day + 1} current_city {text!r} is not 'from A to B'")
    return strip_parenthesis(a, ctx.strict), strip_parenthesis(b, ctx.strict)  # type: ignore[arg-type]


def _route(ctx: _Ctx) -> tuple[list[str], str | None]:
    cities: list[str] = []
    for i in ctx.examined:
        current = ctx.plan[i]["current_city"]
        if ctx.strict and not isinstance(current, str):
            raise MalformedPlan(f"day {i + 1} current_city is {current!r}, not text")
        if _travel(ctx, current):
            a, b = _endpoints(ctx, current, i)
            if i == 0 and a != ctx.query.org:
                return cities, f"The first day's city should be {ctx.query.org}."
            cities += [a, b]
        else:
            cities.append(strip_parenthesis(current, ctx.strict))
    return cities, None


def _valid_sequence(cities: list[str]) -> bool:
    """No revisits of a city after leaving it, and no one-entry stop strictly inside."""
    if len(cities) < 3:
        return False
    seen: set[str] = set()
    i = 0
    while i < len(cities):
        city, start = cities[i], i
        if city in seen and start not in (0, len(cities) - 1):
            return False
        while i < len(cities) and cities[i] == city:
            i += 1
        if i - start == 1 and 0 < start < len(cities) - 1:
            return False
        seen.add(city)
    return True


def _venue(ctx: _Ctx, text: Any) -> tuple[str, str]:
    if ctx.strict and not isinstance(text, str):
        raise MalformedPlan(f"{text!r} is not 'Name, City' text")
    return name_and_city(text, ctx.strict)


def _first(rows: list) -> Any:
    return rows[0] if rows else None


def _norm(value: Any) -> Any:
    return " ".join(value.split()).casefold() if isinstance(value, str) else repr(value)


# --- commonsense ----------------------------------------------------------------------------


def reasonable_city_route(ctx: _Ctx) -> Result:
    cities, error = _route(ctx)
    if error:
        return False, error
    if cities[0] != cities[-1]:
        return False, "The trip should be a closed circle."
    if not _valid_sequence(cities):
        return False, "The city sequence is invalid."
    q = ctx.query
    for idx, city in enumerate(cities):
        if city not in ctx.db.city_state:
            return False, f"{city} is not a valid city."
        inner = idx not in (0, len(cities) - 1)
        if inner and q.days > 3 and ctx.db.city_state[city] != q.dest:
            return False, f"{city} is not in {q.dest}."
        # Official quirk: a 3-day trip is never compared with its destination city.
        if ctx.strict and inner and q.days <= 3 and city != q.dest:
            return False, f"{city} is not the destination {q.dest}."
    return True, None


def diverse_restaurants(ctx: _Ctx) -> Result:
    seen: list[Any] = []
    for i in ctx.examined:
        unit = ctx.plan[i]
        for meal in MEALS:
            if meal in unit and filled(unit[meal]):
                key = _norm(unit[meal]) if ctx.strict else unit[meal]
                if key in seen:
                    return False, f"The restaurant in day {i + 1} {meal} is repeated."
                seen.append(key)
    return True, None


def diverse_attractions(ctx: _Ctx) -> Result:
    seen: list[str] = []
    for i in ctx.examined:
        unit = ctx.plan[i]
        if "attraction" in unit and filled(unit["attraction"]):
            for piece in attraction_pieces(unit["attraction"], ctx.strict):
                key = _norm(piece) if ctx.strict else piece
                if key in seen:
                    return False, f"The attraction '{piece}' in day {i + 1} is repeated."
                seen.append(key)
    return True, None


def minimum_nights(ctx: _Ctx) -> Result:
    stays: list[Any] = []
    for i in ctx.examined:
        unit = ctx.plan[i]
        if "accommodation" not in unit:
            return False, "No Accommodation Info."
        stays.append(unit["accommodation"])
    runs: list[list[Any]] = []
    for value in stays:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    for value, length in runs:
        if value in ("-", ""):
            continue
        if ctx.strict and not filled(value):
            continue
        name, city = _venue(ctx, value)
        rows = ctx.db.match_accommodations(name, city, exact=ctx.strict)
        # Official quirk: only a unique match is checked.
        judged = rows[:1] if ctx.strict else (rows if len(rows) == 1 else [])
        if judged and length < judged[0].minimum_nights:
            return False, (
                f"The accommodation {value} do not obey the minumum nights rule "
                f"({length} < {judged[0].minimum_nights:g})."
            )
    return True, None


def _transport_kind(text: str) -> str | None:
    lowered = text.lower()
    if "taxi" in lowered:
        return "Taxi"
    if "self-driving" in lowered:
        return "Self-driving"
    if "flight" in lowered:
        return "Flight"
    return None


def non_conflicting_transportation(ctx: _Ctx) -> Result:
    first = ctx.plan[0]["transportation"]
    if not filled(first):
        return False, "The transportation in day 1 should not be empty."
    kinds = [_transport_kind(first)]
    for i in ctx.examined:
        value = ctx.plan[i]["transportation"]
        if filled(value):
            kinds.append(_transport_kind(value))
    if "Self-driving" in kinds and ("Flight" in kinds or "Taxi" in kinds):
        return False, "The transportation is conflicting."
    return True, None


def within_current_city(ctx: _Ctx) -> Result:
    for i in ctx.examined:
        unit = ctx.plan[i]
        current = unit["current_city"]
        names: Any
        if _travel(ctx, current):
            names = list(_endpoints(ctx, current, i))
        else:
            # Official quirk: a bare string, so the loops below run over its characters.
            stay = strip_parenthesis(current, ctx.strict)
            names = [stay] if ctx.strict else stay
        # Officially every key but current_city is tested with `key in unit`: a day without
        # lunch or attraction is skipped here (completeness fails it), it does not crash.
        transport = unit.get("transportation")
        if filled(transport):
            for name in names:
                if name not in transport:
                    return False, f"The transportation in day {i + 1} is invalid city choice."
        for meal in MEALS:
            value = unit.get(meal)
            if filled(value) and not any(name in value for name in names):
                return False, f"The {meal} in day {i + 1} is invalid city choice."
        if filled(unit.get("attraction")):
            for piece in attraction_pieces(unit["attraction"], ctx.strict):
                if not any(name in piece for name in names):
                    return False, f"The attraction in day {i + 1} is invalid city choice."
        if filled(unit.get("accommodation")) and names[-1] not in unit["accommodation"]:
            return False, f"The accommodation in day {i + 1} is invalid city choice."
    return True, None


def _flight_number(ctx: _Ctx, text: str) -> str:
    if ctx.strict:
        import re

        match = re.search(r"flight number:\s*([^,\s]+)", text, re.IGNORECASE)
        if not match:
            raise MalformedPlan(f"no flight number in {text!r}")
        return match.group(1)
    # Official: the text after the exact literal up to the next comma (IndexError if absent).
    return text.split("Flight Number: ")[1].split(",")[0]


def _legs(ctx: _Ctx, unit: dict, text: str) -> tuple[str | None, str | None]:
    a, b = from_to(text, ctx.strict)
    if a is None or b is None:
        a, b = from_to(unit["current_city"], ctx.strict)
    return a, b


def within_sandbox(ctx: _Ctx) -> Result:
    db, strict = ctx.db, ctx.strict
    for i in ctx.examined:
        unit = ctx.plan[i]
        value = unit["transportation"]
        if filled(value):
            a, b = _legs(ctx, unit, value)
            lowered = value.lower()
            if "flight number" in lowered:
                if a is None or b is None:
                    if strict:
                        return False, f"The transportation {value} in day {i + 1} can not be parsed."
                    raise ValueError(f"The transportation {value} in day {i + 1} can not be parsed.")
                a, b = strip_parenthesis(a, strict), strip_parenthesis(b, strict)
                number = _flight_number(ctx, value)
                rows = [f for f in db.flights_by_number.get(number, ()) if f.origin == a and f.dest == b]
                if strict and i < len(ctx.query.date):
                    # Official quirk: the date is never checked; a flight must fly that day.
                    rows = [f for f in rows if f.date == ctx.query.date[i]]
                if not rows:
                    return False, f"The flight number in day {i + 1} is invalid in the sandbox."
            elif "self-driving" in lowered or "taxi" in lowered:
                if a is None or b is None:
                    a, b = "-", "-"
                else:
                    a, b = strip_parenthesis(a, strict), strip_parenthesis(b, strict)
                mode = "self-driving" if "self-driving" in lowered else "taxi"
                if db.distance_cost(strip_parenthesis(a), strip_parenthesis(b), mode) is None:
                    return False, f"The {mode} in day {i + 1} is invalid in the sandbox."
            elif strict:
                return False, f"The transportation in day {i + 1} is not a flight, self-driving or taxi."
        for meal in MEALS:
            if meal in unit and filled(unit[meal]):
                name, city = _venue(ctx, unit[meal])
                if not db.match_restaurants(name, city, exact=strict):
                    return False, f"The {meal} in day {i + 1} is invalid in the sandbox."
        if "attraction" in unit and filled(unit["attraction"]):
            for piece in attraction_pieces(unit["attraction"], strict):
                name, city = _venue(ctx, piece)
                if not db.match_attractions(name, city, exact=strict):
                    return False, f"The attraction {piece} in day {i + 1} is invalid in the sandbox."
        if "accommodation" in unit and filled(unit["accommodation"]):
            name, city = _venue(ctx, unit["accommodation"])
            if not db.match_accommodations(name, city, exact=strict):
                return False, f"The accommodation in day {i + 1} is invalid in the sandbox."
    return True, None


def _city_count_ok(ctx: _Ctx) -> bool:
    cities, error = _route(ctx)
    if error:
        return False
    visited = set(cities)
    visited.discard(ctx.query.org)
    return len(visited) == ctx.query.visiting_city_number


def complete_information(ctx: _Ctx) -> Result:
    q = ctx.query
    real_days = sum(
        1
        for i in ctx.examined
        if ctx.plan[i] != {} and ctx.plan[i]["current_city"] != NOT_NEEDED
    )
    if real_days != q.days:
        return False, "Invalid Days"
    if not _city_count_ok(ctx):
        return False, "Invalid City Number"
    filled_count = 0
    for i in ctx.examined:
        unit = ctx.plan[i]
        for key in ("transportation", "breakfast", "lunch", "dinner", "attraction", "accommodation"):
            if key not in unit:
                return False, f"No {key.capitalize()} Info."
        current = unit["current_city"]

        def empty(value: Any) -> bool:
            # Official: only "" and "-" are empty here, so null counts as present.
            return not filled(value) if ctx.strict else value in ("", "-")

        if ("from " in current or "to " in current) and empty(unit["transportation"]):
            return False, f"No transportation in day {i + 1} is not allowed."
        if "from " not in current and " to " not in current and empty(unit["attraction"]):
            return False, f"No attaction in day {i + 1} is not allowed."
        if i != q.days - 1 and empty(unit["accommodation"]):
            return False, f"No accommodation in day {i + 1} is not allowed."
        if any(empty(unit[m]) for m in MEALS) and "from " not in current:
            return False, f"No meal in day {i + 1} is not allowed."
        filled_count += sum(1 for key in unit if filled(unit[key]))
    if filled_count / (6 * q.days) < 0.5:
        return False, "The absent information is more than 50%."
    return True, None


# --- hard -----------------------------------------------------------------------------------


def cuisine(ctx: _Ctx) -> Result:
    wanted = ctx.query.local_constraint.cuisine
    if not wanted:
        return None, None
    if ctx.strict:
        wanted = list(dict.fromkeys(wanted))
    covered: set[str] = set()
    for i in ctx.examined:
        unit = ctx.plan[i]
        for meal in MEALS:
            if not filled(unit[meal]):
                continue
            name, city = _venue(ctx, unit[meal])
            if city == ctx.query.org:
                # Official quirk: a meal at home skips the rest of that day's meals too.
                if ctx.strict:
                    continue
                break
            row = _first(ctx.db.match_restaurants(name, city, exact=ctx.strict))
            if row is not None:
                covered.update(c for c in wanted if c in row.cuisines)
    if len(covered) == len(wanted):
        return True, None
    for c in wanted:
        if c not in covered:
            return False, f"The cuisine {c} is not satisfied."
    # Official: with a repeated cuisine in the request, nothing is returned and the caller's
    # tuple unpacking crashes.
    raise TypeError("cannot unpack non-iterable NoneType object (duplicate cuisine in query)")


def _chosen_stays(ctx: _Ctx):
    for i in ctx.examined:
        value = ctx.plan[i]["accommodation"]
        if filled(value):
            name, city = _venue(ctx, value)
            row = _first(ctx.db.match_accommodations(name, city, exact=ctx.strict))
            if row is not None:
                yield i, value, row


def room_rule(ctx: _Ctx) -> Result:
    rule = ctx.query.local_constraint.house_rule
    if rule is None:
        return None, None
    phrase = HOUSE_RULE_PHRASE.get(rule)
    for i, value, row in _chosen_stays(ctx):
        if phrase and phrase in str(row.house_rules):
            return False, f"The house rule should be {rule}: {value} says '{row.house_rules}'."
    return True, None


def room_type(ctx: _Ctx) -> Result:
    wanted = ctx.query.local_constraint.room_type
    if wanted is None:
        return None, None
    for i, value, row in _chosen_stays(ctx):
        rt = row.room_type
        bad = (
            (wanted == "not shared room" and rt == "Shared room")
            or (wanted == "shared room" and rt != "Shared room")
            or (wanted == "private room" and rt != "Private room")
            or (wanted == "entire room" and rt != "Entire home/apt")
        )
        if bad:
            return False, f"The room type should be {wanted}: {value} is '{rt}'."
    return True, None


def transportation_rule(ctx: _Ctx) -> Result:
    rule = ctx.query.local_constraint.transportation
    if rule is None:
        return None, None
    for i in ctx.examined:
        value = ctx.plan[i]["transportation"]
        if not filled(value):
            continue
        text = value.lower() if ctx.strict else value
        flight, drive = ("flight", "self-driving") if ctx.strict else ("Flight", "Self-driving")
        if (rule == "no flight" and flight in text) or (rule == "no self-driving" and drive in text):
            return False, f"The transportation should not be {rule} (day {i + 1})."
    return True, None


def total_cost(ctx: _Ctx) -> float:
    """The budget's total as the official evaluation computes it; costs in the plan are ignored."""
    q, db, strict = ctx.query, ctx.db, ctx.strict
    people = q.people_number
    total: float = 0
    for i in ctx.examined:
        unit = ctx.plan[i]
        value = unit["transportation"]
        if filled(value):
            a, b = _legs(ctx, unit, value)
            lowered = value.lower()
            if a is None or b is None:
                pass
            elif "flight number" in lowered:
                rows = db.flights_by_number.get(_flight_number(ctx, value), [])
                if strict:
                    a, b = strip_parenthesis(a, True), strip_parenthesis(b, True)
                    rows = [f for f in rows if f.origin == a and f.dest == b] or rows
                if rows:
                    total += rows[0].price * people
            elif "self-driving" in lowered or "taxi" in lowered:
                mode, per_car = ("self-driving", 5) if "self-driving" in lowered else ("taxi", 4)
                cost = db.distance_cost(
                    strip_parenthesis(a, strict), strip_parenthesis(b, strict), mode
                )
                total += cost * math.ceil(people / per_car)  # type: ignore[operator]
        for meal in MEALS:
            if filled(unit[meal]):
                name, city = _venue(ctx, unit[meal])
                row = _first(db.match_restaurants(name, city, exact=strict))
                if row is not None:
                    total += row.average_cost * people
        if filled(unit["accommodation"]):
            name, city = _venue(ctx, unit["accommodation"])
            row = _first(db.match_accommodations(name, city, exact=strict))
            if row is not None:
                total += row.price * math.ceil(people / row.maximum_occupancy)
    return total


def budget(ctx: _Ctx) -> Result:
    total = total_cost(ctx)
    if ctx.query.budget < total:
        return False, f"The total cost exceeds the budget ({total:g} > {ctx.query.budget})."
    return True, None


# Official keys, in the order the official code runs them (which decides which crash fires).
COMMONSENSE: dict[str, Callable[[_Ctx], Result]] = {
    "is_reasonable_visiting_city": reasonable_city_route,
    "is_valid_restaurants": diverse_restaurants,
    "is_valid_attractions": diverse_attractions,
    "is_valid_accommodation": minimum_nights,
    "is_valid_transportation": non_conflicting_transportation,
    "is_valid_information_in_current_city": within_current_city,
    "is_valid_information_in_sandbox": within_sandbox,
    "is_not_absent": complete_information,
}
HARD: dict[str, Callable[[_Ctx], Result]] = {
    "valid_cuisine": cuisine,
    "valid_room_rule": room_rule,
    "valid_transportation": transportation_rule,
    "valid_room_type": room_type,
    "valid_cost": budget,
}
PAPER_NAMES = {
    "is_reasonable_visiting_city": "Reasonable City Route",
    "is_valid_restaurants": "Diverse Restaurants",
    "is_valid_attractions": "Diverse Attractions",
    "is_valid_accommodation": "Minimum Nights Stay",
    "is_valid_transportation": "Non-conf. Transportation",
    "is_valid_information_in_current_city": "Within Current City",
    "is_valid_information_in_sandbox": "Within Sandbox",
    "is_not_absent": "Complete Information",
    "valid_cost": "Budget",
    "valid_room_rule": "Room Rule",
    "valid_cuisine": "Cuisine",
    "valid_room_type": "Room Type",
    "valid_transportation": "Transportation",
}
# Which query constraint each local hard check reads.
LOCAL_KEY = {
    "valid_room_rule": "house rule",
    "valid_cuisine": "cuisine",
    "valid_room_type": "room type",
    "valid_transportation": "transportation",
}
