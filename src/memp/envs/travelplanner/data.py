"""The TravelPlanner sandbox database, loaded once and indexed.

Data layout (the official release's, which ``MEMP_TRAVELPLANNER_DATA`` points at)::

    <root>/database/accommodations/clean_accommodations_2022.csv
    <root>/database/restaurants/clean_restaurant_2022.csv
    <root>/database/attractions/attractions.csv
    <root>/database/googleDistanceMatrix/distance.csv
    <root>/database/background/citySet.txt, citySet_with_states.txt
    <root>/database/flights/clean_Flights_2022.csv   (or flights_subset_2022.csv)
    <root>/queries/train.jsonl, validation.jsonl     (optional for the database itself)

The official tools read these with pandas and ``dropna()``: a row with any empty cell (or any of
pandas' default missing-value tokens such as "NA" or "null") is invisible to the tools and to the
evaluator. We mirror that here so lookups agree; only the distance table is kept whole.
"""

from __future__ import annotations

import csv
import functools
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from memp._errors import InvalidInputError

ENV_VAR = "MEMP_TRAVELPLANNER_DATA"

ACCOMMODATIONS = "database/accommodations/clean_accommodations_2022.csv"
RESTAURANTS = "database/restaurants/clean_restaurant_2022.csv"
ATTRACTIONS = "database/attractions/attractions.csv"
DISTANCES = "database/googleDistanceMatrix/distance.csv"
CITIES = "database/background/citySet.txt"
CITY_STATES = "database/background/citySet_with_states.txt"
FLIGHT_FILES = ("database/flights/clean_Flights_2022.csv", "database/flights/flights_subset_2022.csv")
REQUIRED = (ACCOMMODATIONS, RESTAURANTS, ATTRACTIONS, DISTANCES, CITIES, CITY_STATES)

# pandas.read_csv's default missing-value tokens: cells equal to one of these become NaN and
# make dropna() discard the row.
_NA_TOKENS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)


class TravelPlannerDataError(InvalidInputError):
    """The TravelPlanner data directory is missing or lacks expected files."""


def _default_root() -> Path:
    # src/memp/envs/travelplanner/data.py -> the repository root is four levels up.
    return Path(__file__).resolve().parents[4].parent / "shared" / "travelplanner"


def resolve_data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Find the data directory: the argument, else $MEMP_TRAVELPLANNER_DATA, else ../shared."""
    if path is not None:
        root, source = Path(path), "the path given"
    elif os.environ.get(ENV_VAR):
        root, source = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        root, source = _default_root(), "the default location"
        if not root.is_dir():
            raise TravelPlannerDataError(
                f"no TravelPlanner data: {ENV_VAR} is not set and {root} does not exist; "
                f"set {ENV_VAR} to the directory holding the official database/ and queries/ "
                "folders (e.g. export MEMP_TRAVELPLANNER_DATA=../shared/travelplanner)"
            )
    missing = [rel for rel in REQUIRED if not (root / rel).is_file()]
    if not any((root / rel).is_file() for rel in FLIGHT_FILES):
        missing.append(" or ".join(FLIGHT_FILES))
    if missing:
        raise TravelPlannerDataError(
            f"TravelPlanner data at {root} ({source}) is incomplete; missing: "
            + ", ".join(missing)
            + f". Point {ENV_VAR} at the official release's directory (with database/ and queries/)."
        )
    return root


def _read_rows(path: Path, drop_empty: bool = True) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if drop_empty:
        rows = [r for r in rows if not any(v is None or v in _NA_TOKENS for v in r.values())]
    return rows


def _num(text: str) -> float:
    return float(text)


@dataclass(frozen=True, slots=True)
class Accommodation:
    name: str
    price: float
    room_type: str
    house_rules: str
    minimum_nights: float
    maximum_occupancy: int
    review_rate: float
    city: str


@dataclass(frozen=True, slots=True)
class Restaurant:
    name: str
    average_cost: float
    cuisines: str
    rating: float
    city: str
    row: int  # position in the CSV, which the official RestaurantSearch prints as its index


@dataclass(frozen=True, slots=True)
class Attraction:
    name: str
    latitude: str
    longitude: str
    address: str
    phone: str
    website: str
    city: str


@dataclass(frozen=True, slots=True)
class Flight:
    number: str
    price: float
    dep_time: str
    arr_time: str
    elapsed: str
    date: str
    origin: str
    dest: str
    distance: str


@dataclass(frozen=True, slots=True)
class Route:
    """One row of the distance matrix; duration/distance are None when the cell was empty."""

    origin: str
    destination: str
    duration: str | None
    distance: str | None

    def cost(self, mode: str) -> int | None:
        """Per-car cost with the official rule (None when there is no usable distance)."""
        if self.duration is None or self.distance is None or "day" in self.duration:
            return None
        km = float(self.distance.replace("km", "").replace(",", ""))
        if mode == "self-driving":
            return int(km * 0.05)
        if mode == "taxi":
            return int(km)
        return None


def _intlike(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


class Database:
    """All sandbox tables, with the indexes the tools and the evaluator need."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = resolve_data_dir(root)
        self._load()

    def _load(self) -> None:
        root = self.root
        self.accommodations = [
            Accommodation(
                name=r["NAME"], price=_num(r["price"]), room_type=r["room type"],
                house_rules=r["house_rules"], minimum_nights=_num(r["minimum nights"]),
                maximum_occupancy=_intlike(r["maximum occupancy"]),
                review_rate=_num(r["review rate number"]), city=r["city"],
            )
            for r in _read_rows(root / ACCOMMODATIONS)
        ]
        self.restaurants = []
        with (root / RESTAURANTS).open(newline="", encoding="utf-8") as fh:
            for pos, r in enumerate(csv.DictReader(fh)):
                if any(v is None or v in _NA_TOKENS for v in r.values()):
                    continue
                self.restaurants.append(Restaurant(
                    name=r["Name"], average_cost=_intlike(r["Average Cost"]),
                    cuisines=r["Cuisines"], rating=_num(r["Aggregate Rating"]),
                    city=r["City"], row=pos,
                ))
        self.attractions = [
            Attraction(
                name=r["Name"], latitude=r["Latitude"], longitude=r["Longitude"],
                address=r["Address"], phone=r["Phone"], website=r["Website"], city=r["City"],
            )
            for r in _read_rows(root / ATTRACTIONS)
        ]
        flights_path = next(root / f for f in FLIGHT_FILES if (root / f).is_file())
        self.flights = [
            Flight(
                number=r["Flight Number"], price=_intlike(r["Price"]), dep_time=r["DepTime"],
                arr_time=r["ArrTime"], elapsed=r["ActualElapsedTime"], date=r["FlightDate"],
                origin=r["OriginCityName"], dest=r["DestCityName"], distance=r["Distance"],
            )
            for r in _read_rows(flights_path)
        ]
        self.routes: dict[tuple[str, str], Route] = {}
        for r in _read_rows(root / DISTANCES, drop_empty=False):
            key = (r["origin"], r["destination"])
            # Duplicate pairs exist with different values; the official lookup takes the first.
            if key not in self.routes:
                self.routes[key] = Route(
                    origin=r["origin"], destination=r["destination"],
                    duration=None if r["duration"] in _NA_TOKENS else r["duration"],
                    distance=None if r["distance"] in _NA_TOKENS else r["distance"],
                )
        self.cities: list[str] = [
            line for line in (root / CITIES).read_text(encoding="utf-8").strip().split("\n")
        ]
        self.city_state: dict[str, str] = {}
        self.state_cities: dict[str, list[str]] = defaultdict(list)
        for line in (root / CITY_STATES).read_text(encoding="utf-8").strip().split("\n"):
            city, state = line.split("\t")
            self.city_state[city] = state
            self.state_cities[state].append(city)
        self._index()

    def _index(self) -> None:
        self.accommodations_by_city = _group(self.accommodations, lambda a: a.city)
        self.restaurants_by_city = _group(self.restaurants, lambda r: r.city)
        self.attractions_by_city = _group(self.attractions, lambda a: a.city)
        self.flights_by_number = _group(self.flights, lambda f: f.number)
        self.flights_by_route_date = _group(self.flights, lambda f: (f.origin, f.dest, f.date))
        self.city_set = frozenset(self.cities)

    # --- rule M lookups (EVALUATION.md §1.4): literal, case-sensitive substring of the name,
    # exact city, candidates in file order.

    def match_restaurants(self, name: str, city: str, exact: bool = False) -> list[Restaurant]:
        return _match(self.restaurants_by_city.get(city, ()), name, exact)

    def match_attractions(self, name: str, city: str, exact: bool = False) -> list[Attraction]:
        return _match(self.attractions_by_city.get(city, ()), name, exact)

    def match_accommodations(
        self, name: str, city: str, exact: bool = False
    ) -> list[Accommodation]:
        return _match(self.accommodations_by_city.get(city, ()), name, exact)

    def route(self, origin: str, destination: str) -> Route | None:
        return self.routes.get((origin, destination))

    def distance_cost(self, origin: str, destination: str, mode: str) -> int | None:
        """Official evaluation cost per car: None without a usable distance row."""
        route = self.routes.get((origin, destination))
        return None if route is None else route.cost(mode)


def _group(items, key) -> dict:
    out: dict = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return dict(out)


def _match(candidates, name: str, exact: bool) -> list:
    if exact:
        folded = name.casefold()
        return [c for c in candidates if c.name.strip().casefold() == folded]
    return [c for c in candidates if name in c.name]


@functools.lru_cache(maxsize=4)
def _cached(root: str) -> Database:
    return Database(root)


def load_database(root: str | os.PathLike[str] | None = None) -> Database:
    """The database at ``root`` (see ``resolve_data_dir``), loaded once per process."""
    return _cached(str(resolve_data_dir(root)))
