"""New TravelPlanner queries over the database, each with a feasible plan behind its budget.

In the spirit of the official generator: origin and destination reachable; 3/5/7 days visiting
1/2/3 cities (5- and 7-day trips tour a state); levels easy/medium/hard with 0/1/3 local
constraints; the budget is derived from a plan that ``construct_plan`` builds and the evaluator
passes. Legs fly only where the flight rows have a flight on that route and date, otherwise they
go by car (taxi or self-driving), so every generated query is solvable with the data at hand.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date as Date
from datetime import timedelta
from typing import Any

from memp.envs.travelplanner.constraints import HOUSE_RULE_PHRASE, _Ctx, total_cost
from memp.envs.travelplanner.data import Accommodation, Database, Flight, Restaurant, load_database
from memp.envs.travelplanner.evaluator import evaluate_plan
from memp.envs.travelplanner.queries import LocalConstraint, TravelQuery

DAYS_CITIES = {3: 1, 5: 2, 7: 3}
LEVEL_CONSTRAINTS = {"easy": 0, "medium": 1, "hard": 3}
ROOM_TYPE_OK = {
    "entire room": lambda rt: rt == "Entire home/apt",
    "private room": lambda rt: rt == "Private room",
    "shared room": lambda rt: rt == "Shared room",
    "not shared room": lambda rt: rt != "Shared room",
}
MAX_SEQUENCES = 24  # city orders tried per query before giving up


@dataclass(frozen=True)
class _Leg:
    day: int
    origin: str
    dest: str
    mode: str  # "flight" | "taxi" | "self-driving"
    text: str


def _clean_venues(db: Database, rows: Sequence[Any], match) -> list[Any]:
    # Only venues that rule M resolves to themselves (no other name in the city contains theirs):
    # then the official, strict and cost lookups all read the row we chose.
    return [r for r in rows if match(r.name, r.city) == [r] and ";" not in r.name and r.name.strip() == r.name]


class _Venues:
    """Per-city venues the constructor may use, cached per database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[tuple[str, str], list[Any]] = {}

    def get(self, kind: str, city: str) -> list[Any]:
        key = (kind, city)
        if key not in self._cache:
            db = self.db
            if kind == "stay":
                rows = _clean_venues(db, db.accommodations_by_city.get(city, []), db.match_accommodations)
            elif kind == "food":
                rows = _clean_venues(db, db.restaurants_by_city.get(city, []), db.match_restaurants)
            else:
                rows = _clean_venues(db, db.attractions_by_city.get(city, []), db.match_attractions)
            self._cache[key] = rows
        return self._cache[key]


_VENUES: dict[int, _Venues] = {}


def _venues(db: Database) -> _Venues:
    if id(db) not in _VENUES:
        _VENUES[id(db)] = _Venues(db)
    return _VENUES[id(db)]


def _nights(days: int, cities: int) -> list[int]:
    """Nights per city, split evenly over days-1 nights (earlier cities take the remainder)."""
    base, extra = divmod(days - 1, cities)
    return [base + (1 if j < extra else 0) for j in range(cities)]


def _leg(db: Database, day: int, a: str, b: str, when: str | None, people: int,
         allowed: set[str]) -> list[tuple[float, _Leg]]:
    """Every way to make one leg, with its cost for the party."""
    options: list[tuple[float, _Leg]] = []
    if "flight" in allowed and when:
        flights: list[Flight] = db.flights_by_route_date.get((a, b, when), [])
        if flights:
            f = min(flights, key=lambda x: (x.price, x.dep_time))
            text = (f"Flight Number: {f.number}, from {a} to {b}, "
                    f"Departure Time: {f.dep_time}, Arrival Time: {f.arr_time}")
            options.append((f.price * people, _Leg(day, a, b, "flight", text)))
    route = db.route(a, b)
    for mode, per_car, label in (("taxi", 4, "Taxi"), ("self-driving", 5, "Self-driving")):
        if mode not in allowed or route is None:
            continue
        cost = route.cost(mode)
        if cost is None:
            continue
        text = (f"{label}, from {a} to {b}, duration: {route.duration}, "
                f"distance: {route.distance}, cost: {cost}")
        options.append((cost * math.ceil(people / per_car), _Leg(day, a, b, mode, text)))
    return options


def _transport(db: Database, stops: list[str], leg_days: list[int], dates: list[str],
               people: int, rule: str | None, rng: random.Random | None = None) -> list[_Leg] | None:
    """Conflict-free legs: flights with taxis, or self-driving throughout.

    The cheaper of the two, or (with ``rng``) either, so generated trips do not all drive.
    """
    plans = []
    for allowed in ({"flight", "taxi"}, {"self-driving"}):
        if rule == "no flight":
            allowed = allowed - {"flight"}
        if rule == "no self-driving":
            allowed = allowed - {"self-driving"}
        if not allowed:
            continue
        legs, total = [], 0.0
        for day, a, b in zip(leg_days, stops, stops[1:]):
            when = dates[day] if day < len(dates) else None
            options = _leg(db, day, a, b, when, people, allowed)
            if not options:
                break
            cost, leg = min(options, key=lambda o: o[0])
            legs.append(leg)
            total += cost
        else:
            plans.append((total, legs))
    if not plans:
        return None
    return rng.choice(plans)[1] if rng else min(plans, key=lambda p: p[0])[1]


def _stay(venues: _Venues, city: str, nights: int, people: int, lc: LocalConstraint,
          rng: random.Random | None) -> Accommodation | None:
    phrase = HOUSE_RULE_PHRASE.get(lc.house_rule or "")
    fits = ROOM_TYPE_OK.get(lc.room_type or "", lambda rt: True)
    ok = [
        a for a in venues.get("stay", city)
        if a.minimum_nights <= nights and fits(a.room_type)
        and not (phrase and phrase in a.house_rules)
    ]
    if not ok:
        return None
    ok.sort(key=lambda a: (a.price * math.ceil(people / a.maximum_occupancy), a.name))
    return rng.choice(ok[:3]) if rng else ok[0]


def _meals(venues: _Venues, slots: list[tuple[int, str, str]], cuisines: Sequence[str],
           rng: random.Random | None) -> dict[tuple[int, str], Restaurant] | None:
    """Fill meal slots with distinct restaurants, covering every requested cuisine."""
    chosen: dict[tuple[int, str], Restaurant] = {}
    used: set[str] = set()
    missing = list(cuisines)
    for day, meal, city in slots:
        pool = [r for r in venues.get("food", city) if r.name not in used]
        if not pool:
            return None
        covering = [r for r in pool if any(c in r.cuisines for c in missing)]
        if covering:
            pick = min(covering, key=lambda r: (-sum(c in r.cuisines for c in missing), r.average_cost, r.name))
        else:
            cheap = sorted(pool, key=lambda r: (r.average_cost, r.name))[:4]
            pick = rng.choice(cheap) if rng else cheap[0]
        chosen[(day, meal)] = pick
        used.add(pick.name)
        missing = [c for c in missing if c not in pick.cuisines]
    return None if missing else chosen


def _fmt_venue(name: str, city: str) -> str:
    return f"{name}, {city}"


def _build(db: Database, query: TravelQuery, cities: list[str], rng: random.Random,
           randomize: bool = True, travel_meals: bool = True) -> list[dict] | None:
    """One plan over ``cities``; without ``randomize`` every choice is the cheapest."""
    pick_rng = rng if randomize else None
    venues = _venues(db)
    lc = query.local_constraint
    days, people = query.days, query.people_number
    nights = _nights(days, len(cities))
    # Day index on which the traveller leaves each stop; the last leg is on the final day.
    leg_days = [0] + list(itertools.accumulate(nights))
    stops = [query.org, *cities, query.org]
    legs = _transport(db, stops, leg_days, query.date, people, lc.transportation, pick_rng)
    if legs is None:
        return None
    stays = []
    for city, n in zip(cities, nights):
        stay = _stay(venues, city, n, people, lc, pick_rng)
        if stay is None:
            return None
        stays.append(stay)
    # Where the traveller is (and sleeps) on each day.
    where, sleep = [], []
    for j, (city, n) in enumerate(zip(cities, nights)):
        for _ in range(n):
            where.append(j)
            sleep.append(j)
    leg_by_day = {leg.day: leg for leg in legs}
    slots: list[tuple[int, str, str]] = []
    for day in range(days):
        leg = leg_by_day.get(day)
        if leg is None:
            city = cities[where[day]]
            slots += [(day, m, city) for m in ("breakfast", "lunch", "dinner")]
            continue
        # Meals are optional on travel days; the cheapest plan skips them.
        if travel_meals and leg.origin != query.org:
            slots += [(day, "breakfast", leg.origin), (day, "lunch", leg.origin)]
        if travel_meals and leg.dest != query.org:
            slots.append((day, "dinner", leg.dest))
    meals = _meals(venues, slots, lc.cuisine or [], pick_rng)
    if meals is None:
        return None
    used_sights: set[str] = set()
    plan = []
    for day in range(days):
        leg = leg_by_day.get(day)
        entry: dict[str, Any] = {"days": day + 1}
        if leg is None:
            city = cities[where[day]]
            entry["current_city"] = city
            entry["transportation"] = "-"
            pool = [a for a in venues.get("sight", city) if a.name not in used_sights]
            if not pool:
                return None
            picks = rng.sample(pool, k=min(2, len(pool)))
            used_sights.update(a.name for a in picks)
            entry_sights = "".join(f"{_fmt_venue(a.name, city)};" for a in picks)
        else:
            entry["current_city"] = f"from {leg.origin} to {leg.dest}"
            entry["transportation"] = leg.text
            entry_sights = "-"
        for meal in ("breakfast", "lunch", "dinner"):
            r = meals.get((day, meal))
            entry[meal] = _fmt_venue(r.name, r.city) if r else "-"
        entry["attraction"] = entry_sights
        if day < days - 1:
            j = sleep[day]
            entry["accommodation"] = _fmt_venue(stays[j].name, stays[j].city)
        else:
            entry["accommodation"] = "-"
        plan.append({k: entry[k] for k in ("days", "current_city", "transportation", "breakfast",
                                            "attraction", "lunch", "dinner", "accommodation")})
    return plan


def _reachable(db: Database, a: str, b: str, when: str | None) -> bool:
    return bool(_leg(db, 0, a, b, when, 1, {"flight", "taxi", "self-driving"}))


def _candidate_sequences(db: Database, query: TravelQuery, rng: random.Random,
                         first: str | None = None) -> list[list[str]]:
    """City orders worth trying: first and last stops reachable from and to the origin."""
    k = query.visiting_city_number
    if query.dest in db.city_set and k == 1:
        return [[query.dest]]
    pool = [c for c in db.state_cities.get(query.dest, []) if c != query.org]
    if len(pool) < k or k < 1:
        return []
    legs = [0] + list(itertools.accumulate(_nights(query.days, k)))
    dates = list(query.date) + [None] * query.days

    def ok(a: str, b: str, leg: int) -> bool:
        return _reachable(db, a, b, dates[legs[leg]])

    firsts = [c for c in pool if ok(query.org, c, 0)]
    lasts = [c for c in pool if ok(c, query.org, k)]
    rng.shuffle(firsts)
    rng.shuffle(lasts)
    if first in firsts:
        firsts.remove(first)
        firsts.insert(0, first)
    seqs: list[list[str]] = []
    for f in firsts:
        if k == 1:
            seqs.append([f])
            continue
        for last in lasts:
            if last == f:
                continue
            if k == 2 and ok(f, last, 1):
                seqs.append([f, last])
            elif k > 2:
                middles = [m for m in pool if m not in (f, last) and ok(f, m, 1) and ok(m, last, 2)]
                if middles:
                    seqs.append([f, rng.choice(middles), last])
            if len(seqs) >= MAX_SEQUENCES:
                return seqs
    return seqs


def construct_plan(
    query: TravelQuery,
    db: Database | None = None,
    *,
    seed: int = 0,
    first_city: str | None = None,
    check_budget: bool = True,
    randomize: bool = False,
) -> list[dict[str, Any]] | None:
    """A plan for ``query`` that passes every official and strict check, or None if none found.

    Cheap choices throughout (cheapest legs and stays, cheap restaurants, cuisines covered
    first), so the plan is close to the cheapest feasible one; ``randomize`` varies the stays
    and restaurants (by ``seed``) and adds meals on travel days, as the generator does. With
    ``check_budget`` the plan must also fit the query's budget; the cheapest of the first few
    passing plans is returned.
    """
    db = db or load_database()
    rng = random.Random(seed)
    probe = query if check_budget else query.model_copy(update={"budget": 10**9})
    best: tuple[float, list[dict[str, Any]]] | None = None
    tried = 0
    for cities in _candidate_sequences(db, query, rng, first_city):
        for travel_meals in ((True,) if randomize else (False, True)):
            plan = _build(db, query, cities, rng, randomize=randomize, travel_meals=travel_meals)
            if plan is None:
                continue
            official = evaluate_plan(probe, plan, db)
            if official.final_pass and evaluate_plan(probe, plan, db, strict=True).final_pass:
                if randomize:
                    return plan
                cost = plan_cost(query, plan, db)
                if best is None or cost < best[0]:
                    best = (cost, plan)
                break
        tried += best is not None
        if tried >= 4:
            break
    return None if best is None else best[1]


def plan_cost(query: TravelQuery, plan: list[dict[str, Any]], db: Database | None = None) -> float:
    """The plan's total as the official budget check computes it."""
    return total_cost(_Ctx(query=query, plan=plan, db=db or load_database()))


# --- query generation ------------------------------------------------------------------------

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _say_date(d: Date) -> str:
    return f"{_MONTHS[d.month - 1]} {_ordinal(d.day)}"


def query_text(q: TravelQuery) -> str:
    """A natural-language query in the official style."""
    start, end = Date.fromisoformat(q.date[0]), Date.fromisoformat(q.date[-1])
    where = q.dest if q.visiting_city_number == 1 else f"{q.visiting_city_number} cities in {q.dest}"
    who = "a single person" if q.people_number == 1 else f"a group of {q.people_number} people"
    text = (f"Please help me plan a trip from {q.org} to {where} spanning {q.days} days from "
            f"{_say_date(start)} to {_say_date(end)}, {end.year}. The travel should be planned "
            f"for {who} with a budget of ${q.budget:,}.")
    lc = q.local_constraint
    extra = []
    if lc.house_rule:
        extra.append(f"our accommodations must allow {lc.house_rule}")
    if lc.room_type:
        extra.append(f"we would like {'an' if lc.room_type[0] in 'aeiou' else 'a'} {lc.room_type}")
    if lc.cuisine:
        extra.append("we want to try " + ", ".join(lc.cuisine[:-1]) + f" and {lc.cuisine[-1]} cuisines"
                     if len(lc.cuisine) > 1 else f"we want to try {lc.cuisine[0]} cuisine")
    if lc.transportation:
        extra.append(f"we prefer {lc.transportation} during the trip")
    if extra:
        text += " Also, " + "; ".join(extra) + "."
    return text


def _dates(start: str, days: int) -> list[str]:
    d0 = Date.fromisoformat(start)
    return [(d0 + timedelta(days=i)).isoformat() for i in range(days)]


def _constraints(level: str, rng: random.Random, cities: list[str], db: Database) -> LocalConstraint:
    n = LEVEL_CONSTRAINTS[level]
    if n == 0:
        return LocalConstraint()
    # Medium never restricts transportation; hard sets three of the four (as the official data).
    keys = ["house rule", "cuisine", "room type"] if level == "medium" else \
        ["house rule", "cuisine", "room type", "transportation"]
    chosen = rng.sample(keys, n)
    values: dict[str, Any] = {}
    for key in chosen:
        if key == "house rule":
            values[key] = rng.choice(list(HOUSE_RULE_PHRASE))
        elif key == "room type":
            values[key] = rng.choice(list(ROOM_TYPE_OK))
        elif key == "transportation":
            values[key] = rng.choice(["no flight", "no self-driving"])
        else:
            offered = sorted({c.strip() for city in cities for r in _venues(db).get("food", city)
                              for c in r.cuisines.split(",")})
            common = [c for c in ("American", "Chinese", "French", "Indian", "Italian",
                                  "Mediterranean", "Mexican") if c in offered]
            values[key] = rng.sample(common, min(len(common), 2 if level == "medium" else 4))
    return LocalConstraint.model_validate(values)


def _skeleton(db: Database, rng: random.Random, days: int) -> tuple[str, str, str, str] | None:
    """(origin, destination, first city, start date), anchored on a real flight or a road."""
    k = DAYS_CITIES[days]
    if rng.random() < 0.7:
        f = rng.choice(db.flights)
        org, first, start = f.origin, f.dest, f.date
    else:
        org, first = rng.sample(db.cities, 2)
        if db.route(org, first) is None or db.route(org, first).cost("taxi") is None:
            return None
        month_days = 31 - (days - 1)
        start = f"2022-03-{rng.randint(1, month_days):02d}"
    if Date.fromisoformat(start) + timedelta(days=days - 1) > Date(2022, 3, 31):
        return None
    state = db.city_state.get(first)
    if state is None or first not in db.city_state or org not in db.city_state:
        return None
    if k == 1:
        return org, first, first, start
    if db.city_state[org] == state or len(db.state_cities[state]) <= k:
        return None
    return org, state, first, start


def generate_queries(
    n: int,
    db: Database | None = None,
    *,
    seed: int = 0,
    days: Sequence[int] = (3, 5, 7),
    levels: Sequence[str] = ("easy", "medium", "hard"),
    max_attempts: int = 200,
) -> list[TravelQuery]:
    """``n`` solvable queries, cycling through trip lengths and levels; deterministic by seed.

    Each query's ``annotated_plan`` holds the feasible plan its budget was derived from.
    """
    db = db or load_database()
    rng = random.Random(seed)
    out: list[TravelQuery] = []
    combos = [(d, lv) for lv in levels for d in days]
    for i in range(n):
        d, level = combos[i % len(combos)]
        for _ in range(max_attempts):
            q = _attempt(db, rng, d, level, idx=i)
            if q is not None:
                out.append(q)
                break
        else:
            raise RuntimeError(f"could not generate a feasible {d}-day {level} query in {max_attempts} tries")
    return out


def _attempt(db: Database, rng: random.Random, days: int, level: str, idx: int) -> TravelQuery | None:
    sk = _skeleton(db, rng, days)
    if sk is None:
        return None
    org, dest, first, start = sk
    k = DAYS_CITIES[days]
    people = 1 if level == "easy" else rng.randint(2, 8)
    candidates = [first] if k == 1 else db.state_cities[dest]
    lc = _constraints(level, rng, candidates, db)
    draft = TravelQuery(
        org=org, dest=dest, days=days, visiting_city_number=k, date=_dates(start, days),
        people_number=people, local_constraint=lc, budget=10**9, level=level, idx=idx,
    )
    plan = construct_plan(draft, db, seed=rng.randrange(2**31), first_city=first,
                          check_budget=False, randomize=True)
    if plan is None:
        return None
    cost = plan_cost(draft, plan, db)
    # Headroom over the constructed plan, rounded up to $100, as a human-set budget would be.
    budget = int(math.ceil(cost * rng.uniform(1.15, 1.6) / 100.0) * 100)
    q = draft.model_copy(update={"budget": budget})
    q = q.model_copy(update={"query": query_text(q)})
    return q.model_copy(update={"annotated_plan": [q.to_official(), plan]})
