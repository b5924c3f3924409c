"""Expert tool-use trajectories from plans known to pass: the gold train plans, or generated ones.

An annotator who wrote a gold plan must have looked up what it uses. ``gold_trajectory`` replays
that: it calls the tools that return every flight, route, listing, restaurant and attraction of
the plan (through ``TravelEnv``, so the observations are the real ones), and after each search
it records the checks the plan's choices bear out, as steps of their own (see
``memp.envs.travelplanner.procedures``). A check is recorded only when the choice satisfies it and
it mattered: the search returned something the check would have ruled out (or the query asks
for it). The last step writes the plan. So the procedures memory builds from these runs say
which tools to call in which order and which checks to make before choosing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memp.envs.travelplanner.constraints import HOUSE_RULE_PHRASE, MEALS
from memp.envs.travelplanner.data import Accommodation, Database, load_database
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.generator import ROOM_TYPE_OK
from memp.envs.travelplanner.parsing import attraction_pieces, filled, from_to, name_and_city, strip_parenthesis
from memp.envs.travelplanner.procedures import Check
from memp.envs.travelplanner.queries import TravelQuery
from memp.types import Trajectory

PER_CAR = {"taxi": 4, "self-driving": 5}


class GoldPlanError(ValueError):
    """A plan that cannot be read as a route with stays (it cannot be a gold plan)."""


@dataclass(frozen=True)
class _Leg:
    day: int
    origin: str
    dest: str
    mode: str
    flight: str | None


def _city(text: str) -> str:
    return strip_parenthesis(text, strict=True)


def _mode(text: str) -> str:
    lowered = text.lower()
    if "flight number" in lowered:
        return "flight"
    if "self-driving" in lowered:
        return "self-driving"
    if "taxi" in lowered:
        return "taxi"
    raise GoldPlanError(f"transportation {text!r} is neither a flight, self-driving nor a taxi")


def _legs(query: TravelQuery, plan: Sequence[dict[str, Any]]) -> list[_Leg]:
    legs = []
    for i, unit in enumerate(plan[: query.days]):
        a, b = from_to(unit.get("current_city") or "", strict=True)
        if a is None or b is None:
            continue
        text = unit.get("transportation") or ""
        mode = _mode(text)
        flight = text.split("Flight Number:")[1].split(",")[0].strip() if mode == "flight" else None
        legs.append(_Leg(i, _city(a), _city(b), mode, flight))
    return legs


def _venue(value: Any) -> tuple[str, str] | None:
    if not filled(value):
        return None
    name, city = name_and_city(str(value), strict=True)
    return (name, city) if name != "-" else None


def gold_trajectory(query: TravelQuery, plan: Sequence[dict[str, Any]], db: Database | None = None,
                    *, agent: str = "gold") -> Trajectory:
    """The tool-use run behind ``plan``, scored by the official evaluator."""
    db = db or load_database()
    plan = [dict(u) for u in plan if u]
    env = TravelEnv(query, db)
    env.reset()
    legs = _legs(query, plan)
    if not legs:
        raise GoldPlanError("the plan has no travel day ('from A to B')")
    cities = list(dict.fromkeys(leg.dest for leg in legs[:-1]))
    if query.visiting_city_number > 1:
        env.step(f"CitySearch[{query.dest}]")
        listed = db.state_cities.get(query.dest, [])
        if any(not _venues(db, c) for c in listed):
            env.note(Check("city", "has venues").line,
                     f"kept {sum(_venues(db, c) for c in listed)} of {len(listed)} cities")
        env.note(Check("city", "reachable").line,
                 f"visiting {', '.join(cities)}: every leg has transport")
    _transport(env, query, legs, db)
    nights = _nights(plan, query)
    for city in cities:
        _stay(env, query, plan, city, nights.get(city, 1), db)
    _restaurants(env, query, plan, cities, db)
    _attractions(env, plan, cities)
    env.note(f"Planner[{query.query or query.dest}]",
             "; ".join(f"day {u.get('days')}: {u.get('current_city')}" for u in plan))
    return env.submit(plan, agent=agent)


def _venues(db: Database, city: str) -> bool:
    return bool(db.accommodations_by_city.get(city) and db.restaurants_by_city.get(city)
                and db.attractions_by_city.get(city))


def _transport(env: TravelEnv, q: TravelQuery, legs: list[_Leg], db: Database) -> None:
    people = q.people_number
    cheapest_flights = True
    cheapest_modes = True
    for leg in legs:
        date = q.date[leg.day] if leg.day < len(q.date) else q.date[-1]
        if leg.mode == "flight":
            env.step(f"FlightSearch[{leg.origin}, {leg.dest}, {date}]")
            rows = db.flights_by_route_date.get((leg.origin, leg.dest, date), [])
            chosen = [f for f in rows if f.number == leg.flight]
            if not chosen or chosen[0].price > min(f.price for f in rows):
                cheapest_flights = False
            cost = chosen[0].price * people if chosen else math.inf
        else:
            env.step(f"GoogleDistanceMatrix[{leg.origin}, {leg.dest}, {leg.mode}]")
            cost = _road(db, leg.origin, leg.dest, leg.mode, people)
        # Would another mode have been cheaper for this leg?
        others = [_road(db, leg.origin, leg.dest, m, people) for m in ("taxi", "self-driving")]
        flights = db.flights_by_route_date.get((leg.origin, leg.dest, date), [])
        others += [min(f.price for f in flights) * people] if flights else []
        if cost > min(others, default=math.inf):
            cheapest_modes = False
    if len(legs) > 1:
        modes = sorted({leg.mode for leg in legs})
        env.note(Check("transportation", "same mode").line, "every leg by " + "/".join(modes))
    rule = q.local_constraint.transportation
    if rule:
        env.note(Check("transportation", "rule").line, f"{rule}: legs by " + ", ".join(leg.mode for leg in legs))
    if cheapest_flights and any(leg.mode == "flight" for leg in legs):
        env.note(Check("flight", "cheapest").line, "took the cheapest flight of each search")
    if cheapest_modes:
        env.note(Check("transportation", "cheapest").line, "cheapest usable mode on every leg")


def _road(db: Database, a: str, b: str, mode: str, people: int) -> float:
    cost = db.distance_cost(a, b, mode)
    return math.inf if cost is None else cost * math.ceil(people / PER_CAR[mode])


def _nights(plan: Sequence[dict[str, Any]], q: TravelQuery) -> dict[str, int]:
    out: dict[str, int] = {}
    for unit in plan[: q.days]:
        venue = _venue(unit.get("accommodation"))
        if venue:
            out[_city(venue[1])] = out.get(_city(venue[1]), 0) + 1
    return out


def _party_cost(a: Accommodation, people: int) -> float:
    return a.price * math.ceil(people / a.maximum_occupancy)


def _stay(env: TravelEnv, q: TravelQuery, plan: Sequence[dict[str, Any]], city: str, nights: int,
          db: Database) -> None:
    env.step(f"AccommodationSearch[{city}]")
    rows = db.accommodations_by_city.get(city, [])
    names = {v[0] for u in plan if (v := _venue(u.get("accommodation"))) and _city(v[1]) == city}
    chosen = [a for a in rows if any(n and n in a.name for n in names)]
    if not chosen:
        return
    pick = chosen[0]
    lc = q.local_constraint
    people = q.people_number
    phrase = HOUSE_RULE_PHRASE.get(lc.house_rule or "")
    room_ok = ROOM_TYPE_OK.get(lc.room_type or "")
    pool = list(rows)
    # (check, test, whether the query asks for it): a check the query asks for is recorded when
    # the choice satisfies it; any other only when it also ruled something out.
    tests = [
        (Check("accommodation", "minimum nights"), lambda a: a.minimum_nights <= nights, False),
        (Check("accommodation", "house rule"), (lambda a: phrase not in a.house_rules) if phrase else None, True),
        (Check("accommodation", "room type"), (lambda a: room_ok(a.room_type)) if room_ok else None, True),
        (Check("accommodation", "occupancy"), lambda a: a.maximum_occupancy >= people, False),
    ]
    for check, keep, asked in tests:
        if keep is None or not keep(pick):
            continue
        kept = [a for a in pool if keep(a)]
        if asked or len(kept) < len(pool):
            env.note(check.line, f"{city}: kept {len(kept)} of {len(pool)} listings")
            pool = kept
    costs = sorted(_party_cost(a, people) for a in pool)
    if costs and _party_cost(pick, people) <= costs[max(0, len(costs) // 4 - 1)]:
        env.note(Check("accommodation", "cheapest").line, f"{city}: among the cheapest for {people}: {pick.name}")


def _restaurants(env: TravelEnv, q: TravelQuery, plan: Sequence[dict[str, Any]], cities: list[str],
                 db: Database) -> None:
    chosen: dict[str, list[str]] = {}
    meals = 0
    for unit in plan[: q.days]:
        for meal in MEALS:
            venue = _venue(unit.get(meal))
            if venue:
                meals += 1
                chosen.setdefault(_city(venue[1]), []).append(venue[0])
    cheap = True
    for city in cities:
        env.step(f"RestaurantSearch[{city}]")
        rows = db.restaurants_by_city.get(city, [])
        costs = [r.average_cost for r in rows]
        picked = [r.average_cost for n in chosen.get(city, [])
                  for r in [next((r for r in rows if n and n in r.name), None)] if r is not None]
        if costs and picked and statistics.mean(picked) > statistics.median(costs):
            cheap = False
    if meals > 1:
        env.note(Check("restaurant", "not visited").line, f"{meals} meals at different restaurants")
    if q.local_constraint.cuisine:
        env.note(Check("restaurant", "cuisine").line, "covered " + ", ".join(q.local_constraint.cuisine))
    if cheap and meals:
        env.note(Check("restaurant", "cheapest").line, "restaurants from the cheaper half")


def _attractions(env: TravelEnv, plan: Sequence[dict[str, Any]], cities: list[str]) -> None:
    seen = 0
    for unit in plan:
        if filled(unit.get("attraction")):
            seen += len(attraction_pieces(str(unit["attraction"]), strict=True))
    for city in cities:
        env.step(f"AttractionSearch[{city}]")
    if seen > 1:
        env.note(Check("attraction", "not visited").line, f"{seen} different attractions")


def gold_trajectories(queries: Sequence[TravelQuery], db: Database | None = None,
                      *, agent: str = "gold") -> list[Trajectory]:
    """Trajectories for every query that carries a plan (gold or generated) that passes."""
    db = db or load_database()
    out = []
    for q in queries:
        plan = q.gold_plan()
        if not plan:
            continue
        try:
            trajectory = gold_trajectory(q, plan, db, agent=agent)
        except GoldPlanError:
            continue
        if trajectory.success:
            out.append(trajectory)
    return out
