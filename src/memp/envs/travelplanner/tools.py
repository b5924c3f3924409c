"""The two-stage mode's tools, with the official call syntax and answers.

An agent acts with strings like ``FlightSearch[Seattle, Dallas, 2022-03-16]``; ``TravelTools.run``
parses one, runs the tool and returns the observation text. It never raises for anything the
agent wrote: malformed actions and bad arguments come back as the official error observations.

Tables are printed in the fixed-width layout of pandas' ``to_string`` that the official agent
shows the model (restaurants with their row index, the others without).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from memp.envs.travelplanner.data import Database, load_database
from memp.envs.travelplanner.parsing import strip_parenthesis

TOOL_NAMES = (
    "CitySearch", "FlightSearch", "AccommodationSearch", "RestaurantSearch", "AttractionSearch",
    "GoogleDistanceMatrix", "NotebookWrite", "Planner",
)
INVALID_ACTION = (
    "Invalid Action. Valid Actions are  FlightSearch[Departure City, Destination City, Date] / "
    "AccommodationSearch[City] /  RestaurantSearch[City] / NotebookWrite[Short Description] / "
    "AttractionSearch[City] / CitySearch[State] / GoogleDistanceMatrix[Origin, Destination, Mode] "
    "and Planner[Query]."
)
_ACTION = re.compile(r"^(\w+)\[(.+)\]$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# (notebook text, query) -> plan text; the Planner tool is whatever the agent plugs in.
PlannerFn = Callable[[str, str], str]


@dataclass(frozen=True)
class Action:
    tool: str
    argument: str


def parse_action(text: str) -> Action | None:
    """``Tool[args]`` -> Action, or None when the text is not in that shape.

    Like the official agent, newlines are dropped and surrounding blanks stripped first.
    """
    if not isinstance(text, str):
        return None
    cleaned = text.strip("\n").strip().replace("\n", "")
    match = _ACTION.match(cleaned)
    return Action(match.group(1), match.group(2)) if match else None


@dataclass
class Table:
    """A search result: column names and rows of display strings (what NotebookWrite stores)."""

    columns: list[str]
    rows: list[list[str]]
    index: list[int] | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def to_string(self) -> str:
        cols = list(self.columns)
        body = [list(r) for r in self.rows]
        if self.index is not None:
            cols = [""] + cols
            body = [[str(i)] + r for i, r in zip(self.index, body)]
        widths = [max([len(c)] + [len(r[j]) for r in body]) for j, c in enumerate(cols)]
        lines = []
        header = [c.rjust(w) for c, w in zip(cols, widths)]
        if self.index is not None:
            header[0] = " " * widths[0]
        lines.append(" ".join(header))
        for r in body:
            cells = [v.rjust(w) for v, w in zip(r, widths)]
            if self.index is not None:
                cells[0] = r[0].ljust(widths[0])
            lines.append(" ".join(cells))
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass
class NotebookEntry:
    description: str
    content: Any


@dataclass
class TravelTools:
    """The tools over one database, with the episode state (last result and notebook)."""

    db: Database = field(default_factory=load_database)
    planner: PlannerFn | None = None
    notebook: list[NotebookEntry] = field(default_factory=list)
    current_data: Any = None
    # (action, observation) of every ``run`` call, for trajectory_from_episode.
    history: list[tuple[str, str]] = field(default_factory=list)

    def reset(self) -> None:
        self.notebook.clear()
        self.history.clear()
        self.current_data = None

    # --- the tools, callable directly ---------------------------------------------------

    def city_search(self, state: str) -> list[str] | str:
        cities = self.db.state_cities.get(state)
        return list(cities) if cities else "Invalid State"

    def flight_search(self, origin: str, destination: str, date: str) -> Table | str:
        rows = self.db.flights_by_route_date.get((origin, destination, date), [])
        if not rows:
            return f"There is no flight from {origin} to {destination} on {date}."
        return Table(
            ["Flight Number", "Price", "DepTime", "ArrTime", "ActualElapsedTime", "FlightDate",
             "OriginCityName", "DestCityName", "Distance"],
            [[f.number, _fmt(f.price), f.dep_time, f.arr_time, f.elapsed, f.date, f.origin,
              f.dest, f.distance] for f in rows],
        )

    def accommodation_search(self, city: str) -> Table | str:
        rows = self.db.accommodations_by_city.get(city, [])
        if not rows:
            # Sic: the official tool answers with the attraction message here.
            return "There is no attraction in this city."
        return Table(
            ["NAME", "price", "room type", "house_rules", "minimum nights", "maximum occupancy",
             "review rate number", "city"],
            [[a.name, _fmt(a.price), a.room_type, a.house_rules, _fmt(a.minimum_nights),
              _fmt(a.maximum_occupancy), _fmt(a.review_rate), a.city] for a in rows],
        )

    def restaurant_search(self, city: str) -> Table | str:
        rows = self.db.restaurants_by_city.get(city, [])
        if not rows:
            return "There is no restaurant in this city."
        return Table(
            ["Name", "Average Cost", "Cuisines", "Aggregate Rating", "City"],
            [[r.name, _fmt(r.average_cost), r.cuisines, _fmt(r.rating), r.city] for r in rows],
            index=[r.row for r in rows],
        )

    def attraction_search(self, city: str) -> Table | str:
        rows = self.db.attractions_by_city.get(city, [])
        if not rows:
            return "There is no attraction in this city."
        return Table(
            ["Name", "Latitude", "Longitude", "Address", "Phone", "Website", "City"],
            [[a.name, a.latitude, a.longitude, a.address, a.phone, a.website, a.city] for a in rows],
        )

    def distance_matrix(self, origin: str, destination: str, mode: str) -> str:
        """The official answer line; the cost is per car (self-driving 0.05/km, taxi 1/km)."""
        origin, destination = strip_parenthesis(origin), strip_parenthesis(destination)
        route = self.db.route(origin, destination)
        if route is None:
            return f"{mode}, from {origin} to {destination}, no valid information."
        if route.duration is None or route.distance is None or "day" in route.duration:
            return "No valid information."
        km = float(route.distance.replace("km", "").replace(",", ""))
        cost: int | None = None
        if "driving" in mode:
            cost = int(km * 0.05)
        elif mode == "taxi":
            cost = int(km)
        return (
            f"{mode}, from {origin} to {destination}, duration: {route.duration}, "
            f"distance: {route.distance}, cost: {cost}"
        )

    def notebook_write(self, description: str) -> str:
        self.notebook.append(NotebookEntry(description, self.current_data))
        return f"The information has been recorded in Notebook, and its index is {len(self.notebook) - 1}."

    def notebook_text(self) -> str:
        """The notebook as the Planner receives it."""
        entries = [
            {"index": i, "Short Description": e.description, "Content": _text(e.content)}
            for i, e in enumerate(self.notebook)
        ]
        return str(entries)

    # --- the action interface ----------------------------------------------------------

    def run(self, action: str) -> str:
        """Execute one ``Tool[args]`` action and return the observation; never raises."""
        observation = self._run(action)
        self.history.append((str(action), observation))
        return observation

    def _run(self, action: str) -> str:
        parsed = parse_action(action)
        if parsed is None or parsed.tool not in TOOL_NAMES:
            return INVALID_ACTION
        try:
            return self._dispatch(parsed)
        except Exception as err:  # noqa: BLE001 - a tool error must reach the agent as text
            return f"Illegal {parsed.tool}: {type(err).__name__}: {err}. Please try again."

    def _city_error(self, *cities: str) -> str | None:
        for city in cities:
            if city not in self.db.city_set:
                # The official message lists all 312 cities; that much noise helps no model.
                return f"{city} is not valid city in the city list. Use CitySearch[State] to find valid cities."
        return None

    def _dispatch(self, act: Action) -> str:
        arg = act.argument
        if act.tool == "FlightSearch":
            parts = arg.split(", ")
            if len(parts) < 3:
                return "Illegal Flight Search. Please try again."
            if not _DATE.match(parts[2]):
                return f"'{parts[2]}' is not in the format YYYY-MM-DD"
            error = self._city_error(parts[0], parts[1])
            if error:
                return error
            self.current_data = self.flight_search(parts[0], parts[1], parts[2])
            return _text(self.current_data)
        if act.tool in ("AccommodationSearch", "RestaurantSearch", "AttractionSearch"):
            error = self._city_error(arg)
            if error:
                return error
            search = {
                "AccommodationSearch": self.accommodation_search,
                "RestaurantSearch": self.restaurant_search,
                "AttractionSearch": self.attraction_search,
            }[act.tool]
            self.current_data = search(arg)
            return _text(self.current_data).strip()
        if act.tool == "CitySearch":
            self.current_data = self.city_search(arg)
            return _text(self.current_data).strip()
        if act.tool == "GoogleDistanceMatrix":
            parts = arg.split(", ")
            if len(parts) < 3:
                return "Illegal GoogleDistanceMatrix. Please try again."
            self.current_data = self.distance_matrix(parts[0], parts[1], parts[2])
            return self.current_data
        if act.tool == "NotebookWrite":
            return self.notebook_write(arg)
        # Planner
        if self.planner is None:
            return "No planner is attached to these tools; the agent must write the plan itself."
        return str(self.planner(self.notebook_text(), arg))


def _text(data: Any) -> str:
    if isinstance(data, Table):
        return data.to_string()
    return str(data)
