"""Read the official tools' observation text back into rows, as an agent has to.

The search tools print fixed-width tables (pandas ``to_string``): every cell is right-aligned to
its column's width and cells are joined by one space, so a column ends where its header ends.
Knowing the documented column names is enough to cut each line back into cells, even when names
contain spaces.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

ACCOMMODATION_COLUMNS = ("NAME", "price", "room type", "house_rules", "minimum nights",
                         "maximum occupancy", "review rate number", "city")
RESTAURANT_COLUMNS = ("Name", "Average Cost", "Cuisines", "Aggregate Rating", "City")
ATTRACTION_COLUMNS = ("Name", "Latitude", "Longitude", "Address", "Phone", "Website", "City")
FLIGHT_COLUMNS = ("Flight Number", "Price", "DepTime", "ArrTime", "ActualElapsedTime", "FlightDate",
                  "OriginCityName", "DestCityName", "Distance")
_DISTANCE = re.compile(
    r"^(?P<mode>[\w-]+), from (?P<a>.+?) to (?P<b>.+?), duration: (?P<duration>[^,]+), "
    r"distance: (?P<distance>.+?), cost: (?P<cost>\d+|None)\s*$"
)


def parse_table(text: str, columns: Sequence[str], indexed: bool = False) -> list[dict[str, str]]:
    """Rows of a printed table as dicts keyed by column; [] when the text is not that table."""
    lines = text.split("\n")
    if len(lines) < 2 or not lines[0].strip():
        return []
    header = lines[0]
    width = max(len(line) for line in lines)
    # The tools strip the printed table, which eats the header's leading blanks; every row is
    # printed exactly ``width`` wide, so the difference is what was eaten.
    shift = max(0, width - len(header))
    ends: list[int] = []
    pos = 0
    for name in columns:
        at = header.find(name, pos)
        if at < 0:
            return []
        pos = at + len(name)
        ends.append(pos + shift)
    rows = []
    for line in _rows(lines[1:], width):
        cells: dict[str, str] = {}
        start = 0
        for name, end in zip(columns, ends):
            cells[name] = line[start:end].strip()
            start = end + 1
        if indexed:
            # The row index is printed left-aligned before the first column.
            parts = cells[columns[0]].split(None, 1)
            cells[columns[0]] = parts[1] if len(parts) == 2 else ""
        rows.append(cells)
    return rows


def _rows(lines: list[str], width: int) -> list[str]:
    """Printed rows; a cell holding a newline splits its row over several lines, rejoined here."""
    out: list[str] = []
    buffer: str | None = None
    for line in lines:
        buffer = line if buffer is None else buffer + "\n" + line
        if len(buffer) >= width:
            out.append(buffer)
            buffer = None
    if buffer is not None and buffer.strip():
        out.append(buffer)
    return out


def parse_cities(text: str) -> list[str]:
    """CitySearch's answer (a printed Python list) -> city names; [] for 'Invalid State'."""
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return []
    return [str(c) for c in value] if isinstance(value, list) else []


def parse_distance(text: str) -> dict[str, str] | None:
    """GoogleDistanceMatrix's answer -> mode, duration, distance, cost; None without a route."""
    match = _DISTANCE.match(text.strip())
    if not match or match.group("cost") == "None":
        return None
    return match.groupdict()


def number(text: str, default: float = float("inf")) -> float:
    try:
        return float(text.replace(",", ""))
    except (AttributeError, ValueError):
        return default
