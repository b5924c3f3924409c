"""An LLM-free TravelPlanner agent that acts only on tool results.

It calls the official tools through ``TravelEnv.step``, reads their printed answers back into
rows (``memp.envs.travelplanner.observe``) and writes a plan in the official format. What it
knows without memory is the plan format and the tools: it visits the first cities CitySearch
lists, takes the first flight (else drives, else a taxi) on each leg, and fills every day from
the top of each search result: the first listing, the first restaurants, the first attractions.
It checks nothing.

The checks it makes come from memory. Retrieved procedures are read as ``Instructions``
(``memp.envs.travelplanner.procedures``): lines such as ``Filter[accommodation, minimum nights]``
or ``Prefer[restaurant, cheapest]`` switch on the corresponding check, and the order in which a
procedure used FlightSearch and GoogleDistanceMatrix sets the order in which modes are tried.
Every check it applies is recorded as a step of the trajectory (with what it kept), so a
successful run teaches the same checks to memory in turn. A check memory withdraws
(``Skip[kind, criterion]``, a lesson from a failed run) is not made even if another procedure
names it, and the withdrawal is recorded as a step too, so a success passes the lesson on.

On training queries it may also explore (``Exploration``): besides the checks memory names, it
tries some of its repertoire's other checks, chosen at random (seeded), and records which ones in
``metadata['explored']``. That is how memory can learn from the planner's own runs at all: without
a check it passes nothing, so its own runs would never show memory what works. Memory alone
decides what it keeps of those trials (the updater), and exploration is off at test time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from memp._errors import InvalidInputError
from memp.envs.travelplanner.constraints import HOUSE_RULE_PHRASE
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.generator import ROOM_TYPE_OK
from memp.envs.travelplanner.observe import (
    ACCOMMODATION_COLUMNS,
    ATTRACTION_COLUMNS,
    FLIGHT_COLUMNS,
    RESTAURANT_COLUMNS,
    number,
    parse_cities,
    parse_distance,
    parse_table,
)
from memp.envs.travelplanner.procedures import CHECKS, Check, Instructions, read_procedures, skip_line
from memp.envs.travelplanner.queries import TravelQuery
from memp.types import RetrievalHit, Trajectory

FAMILIES = (("flight", "taxi"), ("self-driving",))  # modes that may share one trip
PER_CAR = {"taxi": 4, "self-driving": 5}
MAX_ROUTE_PROBES = 60  # tool calls spent looking for a reachable city sequence
MEALS = ("breakfast", "lunch", "dinner")


def nights_per_city(days: int, cities: int) -> list[int]:
    """Nights in each city: days - 1 nights split evenly, earlier cities taking the remainder."""
    base, extra = divmod(days - 1, cities)
    return [base + (1 if j < extra else 0) for j in range(cities)]


@dataclass(frozen=True)
class LegOption:
    mode: str
    cost: float  # for the whole party
    text: str  # the plan's transportation value


@dataclass
class _Day:
    """Where the traveller is on one day of the plan."""

    index: int
    city: str | None = None  # set on a stay day
    leg: tuple[str, str] | None = None  # (from, to) on a travel day
    sleep: int | None = None  # index of the city slept in, None on the last day


@dataclass
class _Episode:
    env: TravelEnv
    query: TravelQuery
    ins: Instructions
    legs_cache: dict[tuple[str, str, str, str], LegOption | None] = field(default_factory=dict)
    flights_cache: dict[tuple[str, str, str], list[dict[str, str]]] = field(default_factory=dict)
    tables: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    no_venues: list[str] = field(default_factory=list)  # cities a venue search found empty

    def has(self, kind: str, criterion: str) -> bool:
        return self.ins.has(kind, criterion)

    def note(self, check: Check, observation: str) -> None:
        self.env.note(check.line, observation)


@dataclass
class Exploration:
    """Training-time trials: each check of the repertoire that memory does not name is tried with
    probability ``rate``. One seeded stream of draws per planner, so a replay is identical."""

    rate: float = 0.5
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise InvalidInputError(f"exploration rate must be between 0 and 1, got {self.rate!r}")
        self._rng = random.Random(self.seed)

    def trials(self, ins: Instructions) -> frozenset[Check]:
        """The checks to try on top of ``ins`` (drawn in the repertoire's fixed order); a check
        memory withdrew is not tried (one draw per check all the same, so the stream stays aligned)."""
        return frozenset(c for c in CHECKS if c not in ins.checks and self._rng.random() < self.rate
                         and c not in ins.skipped)


class OfflineTravelPlanner:
    """Plans a TravelPlanner query with the tools; memory decides which checks it makes."""

    name = "offline-travel"

    def __init__(self, explore: Exploration | None = None) -> None:
        self.explore = explore

    def run(self, env: TravelEnv, memory: list[RetrievalHit] | None = None) -> Trajectory:
        _, info = env.reset()
        query: TravelQuery = info["query"]
        ins = read_procedures(h.procedure for h in memory) if memory else Instructions()
        explored = self.explore.trials(ins) if self.explore else frozenset()
        ep = _Episode(env, query, replace(ins, checks=ins.checks | explored))
        for check in sorted(ins.skipped):
            env.note(skip_line(check), f"not made: withdrawn by memory ({CHECKS[check]})")
        cities, legs = self._route(ep)
        plan = self._plan(ep, cities, legs)
        env.note(f"Planner[{query.query or query.dest}]", _plan_summary(plan))
        return env.submit(plan, agent=self.name, metadata={
            "followed": ins.followed,
            "checks": sorted(c.line for c in ep.ins.checks),
            "explored": sorted(c.line for c in explored),
            "skipped": sorted(c.line for c in ins.skipped),
        })

    # --- where to go and how -------------------------------------------------------------

    def _route(self, ep: _Episode) -> tuple[list[str], list[LegOption | None]]:
        q = ep.query
        k = q.visiting_city_number
        if k == 1:
            cities = [q.dest]
        else:
            observation, *_ = ep.env.step(f"CitySearch[{q.dest}]")
            candidates = [c for c in parse_cities(observation) if c != q.org]
            cities = candidates[:k]
            if ep.has("city", "has venues") and not ep.has("city", "reachable"):
                # In list order, only until k cities pass (the reachable search checks lazily).
                kept: list[str] = []
                for city in candidates:
                    if len(kept) < k and self._has_venues(ep, city):
                        kept.append(city)
                cities = kept or cities
            if ep.has("city", "reachable"):
                found = self._reachable_sequence(ep, candidates, k)
                if found:
                    cities = found
                ep.note(Check("city", "reachable"),
                        f"visiting {', '.join(cities)}: every leg has transport" if found
                        else "no sequence of cities with transport on every leg was found")
            if ep.has("city", "has venues"):
                # Recorded whenever it was made, not only when it ruled a city out: a passing
                # run that made it then teaches it.
                skipped = [c for c in ep.no_venues if c not in cities]
                ep.note(Check("city", "has venues"), f"visiting {', '.join(cities)}: each lists stays, "
                        "restaurants and attractions" + (f"; skipped {', '.join(skipped)}" if skipped else ""))
        stops = [q.org, *cities, q.org]
        days = self._leg_days(q, len(cities))
        return cities, self._transport(ep, stops, days)

    def _has_venues(self, ep: _Episode, city: str) -> bool:
        found = all(self._search(ep, tool, city)
                    for tool in ("AttractionSearch", "AccommodationSearch", "RestaurantSearch"))
        if not found and city not in ep.no_venues:
            ep.no_venues.append(city)
        return found

    def _venues_ok(self, ep: _Episode, city: str) -> bool:
        return not ep.has("city", "has venues") or self._has_venues(ep, city)

    @staticmethod
    def _leg_days(q: TravelQuery, k: int) -> list[int]:
        out = [0]
        for n in nights_per_city(q.days, max(k, 1))[:-1]:
            out.append(out[-1] + n)
        return out + [q.days - 1]

    def _date(self, ep: _Episode, day: int) -> str:
        dates = ep.query.date
        return dates[day] if day < len(dates) else dates[-1]

    def _allowed(self, ep: _Episode) -> list[str]:
        modes = list(ep.ins.modes)
        rule = ep.query.local_constraint.transportation
        if ep.has("transportation", "rule") and rule:
            banned = {"no flight": "flight", "no self-driving": "self-driving"}.get(rule)
            modes = [m for m in modes if m != banned]
        return modes

    def _option(self, ep: _Episode, mode: str, a: str, b: str, day: int) -> LegOption | None:
        """One mode for one leg, looked up with the tools (each lookup done once)."""
        date = self._date(ep, day)
        key = (mode, a, b, date if mode == "flight" else "")
        if key in ep.legs_cache:
            return ep.legs_cache[key]
        people = ep.query.people_number
        option = None
        if mode == "flight":
            rows = self._flights(ep, a, b, date)
            if rows:
                row = rows[0]
                if ep.has("flight", "cheapest"):
                    row = min(rows, key=lambda r: number(r["Price"]))
                option = LegOption("flight", number(row["Price"]) * people,
                                   f"Flight Number: {row['Flight Number']}, from {a} to {b}, "
                                   f"Departure Time: {row['DepTime']}, Arrival Time: {row['ArrTime']}")
        else:
            observation, *_ = ep.env.step(f"GoogleDistanceMatrix[{a}, {b}, {mode}]")
            found = parse_distance(observation)
            if found:
                label = "Self-driving" if mode == "self-driving" else "Taxi"
                cost = number(found["cost"]) * math.ceil(people / PER_CAR[mode])
                option = LegOption(mode, cost, f"{label}, from {a} to {b}, duration: {found['duration']}, "
                                               f"distance: {found['distance']}, cost: {found['cost']}")
        ep.legs_cache[key] = option
        return option

    def _flights(self, ep: _Episode, a: str, b: str, date: str) -> list[dict[str, str]]:
        key = (a, b, date)
        if key not in ep.flights_cache:
            observation, *_ = ep.env.step(f"FlightSearch[{a}, {b}, {date}]")
            ep.flights_cache[key] = parse_table(observation, FLIGHT_COLUMNS)
        return ep.flights_cache[key]

    def _leg(self, ep: _Episode, a: str, b: str, day: int, modes: list[str]) -> LegOption | None:
        """The leg by the first mode that works, or (Prefer cheapest) the cheapest that works."""
        if ep.has("transportation", "cheapest"):
            options = [o for m in modes if (o := self._option(ep, m, a, b, day))]
            return min(options, key=lambda o: o.cost) if options else None
        for mode in modes:
            option = self._option(ep, mode, a, b, day)
            if option:
                return option
        return None

    def _families(self, ep: _Episode) -> list[list[str]]:
        allowed = self._allowed(ep)
        families = [[m for m in allowed if m in fam] for fam in FAMILIES]
        families = [f for f in families if f]
        # The family of the mode the procedure tried first goes first.
        families.sort(key=lambda f: min(allowed.index(m) for m in f))
        return families

    def _transport(self, ep: _Episode, stops: list[str], days: list[int]) -> list[LegOption | None]:
        pairs = list(zip(stops, stops[1:], days))
        if ep.has("transportation", "same mode"):
            plans = []
            for family in self._families(ep):
                legs = [self._leg(ep, a, b, d, family) for a, b, d in pairs]
                if all(legs):
                    plans.append(legs)
                    if not ep.has("transportation", "cheapest"):
                        break
            if plans:
                best = min(plans, key=lambda legs: sum(o.cost for o in legs))  # type: ignore[union-attr]
                ep.note(Check("transportation", "same mode"),
                        "every leg by " + "/".join(sorted({o.mode for o in best})))  # type: ignore[union-attr]
                self._note_transport(ep, best)
                return best
            ep.note(Check("transportation", "same mode"), "no single mode family covers every leg")
        legs = [self._leg(ep, a, b, d, self._allowed(ep)) for a, b, d in pairs]
        self._note_transport(ep, legs)
        return legs

    def _note_transport(self, ep: _Episode, legs: list[LegOption | None]) -> None:
        modes = ", ".join(o.mode if o else "none" for o in legs)
        if ep.has("transportation", "rule") and ep.query.local_constraint.transportation:
            ep.note(Check("transportation", "rule"),
                    f"{ep.query.local_constraint.transportation}: legs by {modes}")
        if ep.has("transportation", "cheapest"):
            ep.note(Check("transportation", "cheapest"), f"cheapest usable mode per leg: {modes}")
        if ep.has("flight", "cheapest") and any(o and o.mode == "flight" for o in legs):
            ep.note(Check("flight", "cheapest"), "took the cheapest flight of each search")

    def _reachable_sequence(self, ep: _Episode, candidates: list[str], k: int) -> list[str] | None:
        """The first city order (depth first, in CitySearch order) with transport on every leg."""
        q = ep.query
        days = self._leg_days(q, k)
        families = self._families(ep) if ep.has("transportation", "same mode") else [self._allowed(ep)]
        budget = ep.env.tool_calls + MAX_ROUTE_PROBES

        def extend(seq: list[str], modes: list[str]) -> Iterator[list[str]]:
            if ep.env.tool_calls > budget:
                return
            here = seq[-1] if seq else q.org
            if len(seq) == k:
                if self._leg(ep, here, q.org, days[k], modes):
                    yield seq
                return
            for city in candidates:
                if city in seq or not self._venues_ok(ep, city):
                    continue
                if self._leg(ep, here, city, days[len(seq)], modes):
                    yield from extend([*seq, city], modes)
                if ep.env.tool_calls > budget:
                    return

        for modes in families:
            for seq in extend([], modes):
                return seq
        return None

    # --- the days ------------------------------------------------------------------------

    def _days(self, q: TravelQuery, cities: list[str]) -> list[_Day]:
        leg_days = self._leg_days(q, len(cities))
        stops = [q.org, *cities, q.org]
        out = []
        j = 0  # index of the city the traveller is in (or heading to)
        for d in range(q.days):
            if d in leg_days:
                i = leg_days.index(d)
                out.append(_Day(d, leg=(stops[i], stops[i + 1])))
                j = min(i, len(cities) - 1)
            else:
                out.append(_Day(d, city=cities[j]))
            out[-1].sleep = j if d < q.days - 1 else None
        return out

    def _search(self, ep: _Episode, tool: str, city: str) -> list[dict[str, str]]:
        key = (tool, city)
        if key not in ep.tables:
            observation, *_ = ep.env.step(f"{tool}[{city}]")
            columns = {"AccommodationSearch": ACCOMMODATION_COLUMNS, "RestaurantSearch": RESTAURANT_COLUMNS,
                       "AttractionSearch": ATTRACTION_COLUMNS}[tool]
            ep.tables[key] = parse_table(observation, columns, indexed=tool == "RestaurantSearch")
        return ep.tables[key]

    def _plan(self, ep: _Episode, cities: list[str], legs: list[LegOption | None]) -> list[dict[str, Any]]:
        q = ep.query
        days = self._days(q, cities)
        nights = nights_per_city(q.days, len(cities))
        stays = [self._stay(ep, city, n) for city, n in zip(cities, nights)]
        meals = self._meals(ep, days)
        sights = self._sights(ep, days)
        plan = []
        leg_iter = iter(legs)
        for day in days:
            entry: dict[str, Any] = {"days": day.index + 1}
            if day.leg:
                a, b = day.leg
                leg = next(leg_iter, None)
                entry["current_city"] = f"from {a} to {b}"
                entry["transportation"] = leg.text if leg else "-"
            else:
                entry["current_city"] = day.city
                entry["transportation"] = "-"
            for meal in MEALS:
                entry[meal] = meals.get((day.index, meal), "-")
            entry["attraction"] = sights.get(day.index, "-")
            stay = stays[day.sleep] if day.sleep is not None and day.sleep < len(stays) else None
            entry["accommodation"] = stay or "-"
            plan.append({key: entry[key] for key in ("days", "current_city", "transportation", "breakfast",
                                                     "attraction", "lunch", "dinner", "accommodation")})
        return plan

    def _stay(self, ep: _Episode, city: str, nights: int) -> str | None:
        rows = self._search(ep, "AccommodationSearch", city)
        if not rows:
            return None
        q = ep.query
        lc = q.local_constraint
        people = q.people_number
        phrase = HOUSE_RULE_PHRASE.get(lc.house_rule or "")
        room_ok = ROOM_TYPE_OK.get(lc.room_type or "")
        filters: list[tuple[Check, Callable[[dict[str, str]], bool] | None]] = [
            (Check("accommodation", "minimum nights"), lambda r: number(r["minimum nights"]) <= nights),
            (Check("accommodation", "house rule"),
             (lambda r: phrase not in r["house_rules"]) if phrase else None),
            (Check("accommodation", "room type"), (lambda r: room_ok(r["room type"])) if room_ok else None),
            (Check("accommodation", "occupancy"), lambda r: number(r["maximum occupancy"], 0) >= people),
        ]
        pool = rows
        for check, keep in filters:
            if keep is None or not ep.has(check.kind, check.criterion):
                continue
            kept = [r for r in pool if keep(r)]
            ep.note(check, f"{city}: kept {len(kept)} of {len(pool)} listings"
                    + ("" if kept else "; none left, check relaxed"))
            pool = kept or pool
        if ep.has("accommodation", "cheapest"):
            pool = sorted(pool, key=lambda r: number(r["price"]) * math.ceil(
                people / max(1.0, number(r["maximum occupancy"], 1))))
            ep.note(Check("accommodation", "cheapest"), f"{city}: cheapest for {people}: {pool[0]['NAME']}")
        return f"{pool[0]['NAME']}, {city}"

    def _meal_slots(self, q: TravelQuery, days: list[_Day]) -> list[tuple[int, str, str]]:
        slots = []
        for day in days:
            if day.city:
                slots += [(day.index, m, day.city) for m in MEALS]
                continue
            a, b = day.leg  # type: ignore[misc]
            if a != q.org:
                slots += [(day.index, "breakfast", a), (day.index, "lunch", a)]
            if b != q.org:
                slots.append((day.index, "dinner", b))
        return slots

    def _meals(self, ep: _Episode, days: list[_Day]) -> dict[tuple[int, str], str]:
        q = ep.query
        slots = self._meal_slots(q, days)
        cheapest = ep.has("restaurant", "cheapest")
        diverse = ep.has("restaurant", "not visited")
        wanted = list(q.local_constraint.cuisine or []) if ep.has("restaurant", "cuisine") else []
        missing = list(wanted)
        used: set[str] = set()
        today: tuple[int, set[str]] = (-1, set())
        out: dict[tuple[int, str], str] = {}
        for day, meal, city in slots:
            rows = self._search(ep, "RestaurantSearch", city)
            if cheapest:
                rows = sorted(rows, key=lambda r: number(r["Average Cost"]))
            if today[0] != day:
                today = (day, set())
            pool = [r for r in rows if r["Name"] not in today[1] and not (diverse and r["Name"] in used)]
            if not pool:
                continue
            covering = [r for r in pool if any(c in r["Cuisines"] for c in missing)]
            pick = (covering or pool)[0]
            out[(day, meal)] = f"{pick['Name']}, {city}"
            used.add(pick["Name"])
            today[1].add(pick["Name"])
            missing = [c for c in missing if c not in pick["Cuisines"]]
        if diverse:
            ep.note(Check("restaurant", "not visited"), f"{len(out)} meals at {len(used)} different restaurants")
        if wanted:
            ep.note(Check("restaurant", "cuisine"),
                    "covered " + ", ".join(c for c in wanted if c not in missing)
                    + (f"; not found: {', '.join(missing)}" if missing else ""))
        if cheapest:
            ep.note(Check("restaurant", "cheapest"), "restaurants taken cheapest first")
        return out

    def _sights(self, ep: _Episode, days: list[_Day]) -> dict[int, str]:
        diverse = ep.has("attraction", "not visited")
        used: set[str] = set()
        out: dict[int, str] = {}
        for day in days:
            if not day.city:
                continue
            rows = self._search(ep, "AttractionSearch", day.city)
            pool = [r for r in rows if not (diverse and r["Name"] in used)][:2]
            if pool:
                out[day.index] = "".join(f"{r['Name']}, {day.city};" for r in pool)
                used.update(r["Name"] for r in pool)
        if diverse:
            ep.note(Check("attraction", "not visited"), f"{len(used)} different attractions")
        return out


def _plan_summary(plan: list[dict[str, Any]]) -> str:
    return "; ".join(f"day {d['days']}: {d['current_city']}" for d in plan)
