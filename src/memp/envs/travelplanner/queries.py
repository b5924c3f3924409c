"""TravelPlanner queries: the structured model and a loader for the official files.

The official files hold some fields as Python-literal strings (``date``, ``local_constraint``,
``annotated_plan``: single quotes, ``None``); the loader reads those with ``ast.literal_eval``,
never ``eval``. JSON Lines and CSV in the official columns are accepted.
"""

from __future__ import annotations

import ast
import csv
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from memp._errors import InvalidInputError

Level = Literal["easy", "medium", "hard"]
HOUSE_RULES = ("smoking", "parties", "children under 10", "visitors", "pets")
ROOM_TYPES = ("entire room", "private room", "shared room", "not shared room")
TRANSPORT_RULES = ("no flight", "no self-driving")
CONSTRAINT_KEYS = ("house rule", "cuisine", "room type", "transportation")


class QueryError(InvalidInputError):
    """A query row or file that cannot be read as a TravelPlanner query."""


def _literal(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


class LocalConstraint(BaseModel):
    """The user's local constraints; ``None`` means the query does not set that one."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    house_rule: str | None = Field(default=None, alias="house rule")
    cuisine: list[str] | None = None
    room_type: str | None = Field(default=None, alias="room type")
    transportation: str | None = None

    def to_official(self) -> dict[str, Any]:
        """The dict shape of the official files (keys with spaces)."""
        return self.model_dump(by_alias=True)

    def active(self) -> list[str]:
        """Official names of the constraints that are set (not None), in the official order."""
        return [k for k, v in self.to_official().items() if v is not None]


class TravelQuery(BaseModel):
    """One TravelPlanner query in the official columns."""

    model_config = ConfigDict(extra="ignore")

    org: str
    dest: str
    days: int
    visiting_city_number: int
    date: list[str]
    people_number: int
    local_constraint: LocalConstraint = Field(default_factory=LocalConstraint)
    budget: int
    query: str = ""
    level: Level = "easy"
    idx: int | None = None
    reference_information: Any = None
    annotated_plan: Any = None

    @field_validator("date", "local_constraint", "annotated_plan", mode="before")
    @classmethod
    def _python_literal(cls, value: Any) -> Any:
        return _literal(value)

    @field_validator("reference_information", mode="before")
    @classmethod
    def _reference(cls, value: Any) -> Any:
        return _literal(value) if isinstance(value, str) else value

    def gold_plan(self) -> list[dict[str, Any]] | None:
        """The annotated plan's day list (official files store [query, days])."""
        ap = self.annotated_plan
        if isinstance(ap, list) and len(ap) == 2 and isinstance(ap[1], list):
            return ap[1]
        if isinstance(ap, list) and ap and isinstance(ap[0], dict) and "current_city" in ap[0]:
            return ap
        return None

    def to_official(self) -> dict[str, Any]:
        """The query as a plain dict in the official columns (no plan, no references)."""
        return {
            "org": self.org, "dest": self.dest, "days": self.days,
            "visiting_city_number": self.visiting_city_number, "date": list(self.date),
            "people_number": self.people_number,
            "local_constraint": self.local_constraint.to_official(),
            "budget": self.budget, "query": self.query, "level": self.level,
        }


def query_from_dict(row: Any) -> TravelQuery:
    """Validate one row (dict, or its Python-literal string form) as a TravelQuery."""
    row = _literal(row)
    if not isinstance(row, dict):
        raise QueryError(f"a query must be an object with the official columns, got {row!r:.80}")
    try:
        return TravelQuery.model_validate(row)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise QueryError(f"invalid TravelPlanner query: {loc}: {first['msg']}") from None


def load_queries(path: str | os.PathLike[str]) -> list[TravelQuery]:
    """Read queries from a .jsonl/.json or .csv file in the official columns, in file order."""
    path = Path(path)
    if not path.is_file():
        raise QueryError(f"query file {path} does not exist")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            rows: list[Any] = list(csv.DictReader(fh))
        for row in rows:
            for key in ("days", "visiting_city_number", "people_number", "budget", "idx"):
                if row.get(key) not in (None, ""):
                    row[key] = int(float(row[key]))
                elif key in row:
                    row.pop(key)
    else:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = []
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise QueryError(f"{path}:{n}: not valid JSON ({err.msg})") from None
    return [query_from_dict(r) for r in rows]
