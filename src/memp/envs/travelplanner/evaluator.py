"""Score TravelPlanner plans as the official evaluation does (EVALUATION.md), never crashing.

Two modes, reported under their own names:

- ``official``: agrees with the official code on every plan, quirks included. Where the official
  code would raise (and so abort the whole run), the plan's report carries ``crash`` with the
  reason and, as a local choice, the plan fails every constraint.
- ``strict`` (memp's fix of the quirks): trimmed names, exact venue names, attractions without
  a trailing ';', destination checked on 3-day trips, flight dates checked, case-insensitive
  transport rules; a malformed plan fails the affected constraint with the reason.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from memp.envs.travelplanner.constraints import (
    COMMONSENSE,
    HARD,
    LOCAL_KEY,
    PAPER_NAMES,
    MalformedPlan,
    _Ctx,
)
from memp.envs.travelplanner.data import Database, load_database
from memp.envs.travelplanner.queries import TravelQuery, load_queries, query_from_dict

Mode = Literal["official", "strict"]
# Official denominators are fixed per split, not taken from the file: (N, N + local constraints).
SPLITS: dict[str, tuple[int, int]] = {
    "train": (45, 105),
    "validation": (180, 420),
    "test": (1000, 2290),
}
METRIC_NAMES = {
    "delivery_rate": "Delivery Rate",
    "commonsense_micro": "Commonsense Constraint Micro Pass Rate",
    "commonsense_macro": "Commonsense Constraint Macro Pass Rate",
    "hard_micro": "Hard Constraint Micro Pass Rate",
    "hard_macro": "Hard Constraint Macro Pass Rate",
    "final_pass_rate": "Final Pass Rate",
}


class CheckResult(BaseModel):
    """One constraint's verdict on one plan; ``passed`` None means it does not apply."""

    key: str
    name: str
    passed: bool | None
    reason: str | None = None


class PlanReport(BaseModel):
    """Everything the evaluator found about one plan."""

    index: int | None = None
    mode: Mode = "official"
    delivered: bool
    crash: str | None = Field(
        default=None, description="Where and why the official code would raise on this plan."
    )
    commonsense: dict[str, CheckResult] | None = None
    hard: dict[str, CheckResult] | None = None

    @property
    def commonsense_pass(self) -> bool:
        """Counts toward commonsense macro: no False, and the hard record exists (official)."""
        return (
            self.commonsense is not None
            and self.hard is not None
            and all(r.passed is not False for r in self.commonsense.values())
        )

    @property
    def hard_pass(self) -> bool:
        return self.hard is not None and all(r.passed is not False for r in self.hard.values())

    @property
    def final_pass(self) -> bool:
        return self.commonsense_pass and self.hard_pass

    @property
    def commonsense_passed(self) -> int:
        return sum(1 for r in (self.commonsense or {}).values() if r.passed is True)

    @property
    def hard_passed(self) -> int:
        return sum(1 for r in (self.hard or {}).values() if r.passed is True)

    def failures(self) -> list[CheckResult]:
        """Every failed constraint, commonsense first, with its reason."""
        out = [r for r in (self.commonsense or {}).values() if r.passed is False]
        return out + [r for r in (self.hard or {}).values() if r.passed is False]

    def reward(self, query: TravelQuery) -> float:
        """1.0 for a final pass, else the share of applicable constraints passed.

        Applicable: the 8 commonsense checks plus budget and each local constraint the query sets;
        when the hard record is missing (sandbox or completeness failed) they count as failed.
        """
        if self.final_pass:
            return 1.0
        applicable = 8 + 1 + len(query.local_constraint.active())
        return (self.commonsense_passed + self.hard_passed) / applicable

    def summary(self) -> str:
        if not self.delivered:
            return "not delivered"
        if self.crash:
            return f"official evaluation would crash: {self.crash}"
        if self.final_pass:
            return "pass"
        return "; ".join(f"{r.name}: {r.reason}" for r in self.failures()) or "no hard record"


def _as_query(query: TravelQuery | dict[str, Any]) -> TravelQuery:
    return query if isinstance(query, TravelQuery) else query_from_dict(query)


def _record(names: dict, results: dict[str, tuple]) -> dict[str, CheckResult]:
    return {
        key: CheckResult(key=key, name=PAPER_NAMES[key], passed=results[key][0], reason=results[key][1])
        for key in names
    }


def _failed_all(reason: str) -> dict[str, CheckResult]:
    return {
        key: CheckResult(key=key, name=PAPER_NAMES[key], passed=False, reason=reason)
        for key in COMMONSENSE
    }


def _run_strict(fn, ctx: _Ctx) -> tuple[bool | None, str | None]:
    try:
        return fn(ctx)
    except MalformedPlan as err:
        return False, f"malformed plan: {err}"
    except Exception as err:  # noqa: BLE001 - any shape error in a plan is the plan's fault
        return False, f"malformed plan: {type(err).__name__}: {err}"


def evaluate_plan(
    query: TravelQuery | dict[str, Any],
    plan: Any,
    db: Database | None = None,
    *,
    strict: bool = False,
    index: int | None = None,
) -> PlanReport:
    """Score one plan (the list of day dicts) against its query."""
    q = _as_query(query)
    db = db or load_database()
    mode: Mode = "strict" if strict else "official"
    if strict:
        delivered = isinstance(plan, list) and bool(plan)
    else:
        delivered = bool(plan) if _truthable(plan) else True
    if not delivered:
        return PlanReport(index=index, mode=mode, delivered=False)
    ctx = _Ctx(query=q, plan=plan, db=db, strict=strict)
    if strict:
        cs = {key: _run_strict(fn, ctx) for key, fn in COMMONSENSE.items()}
        hard = None
        if cs["is_not_absent"][0] and cs["is_valid_information_in_sandbox"][0]:
            hard = {key: _run_strict(fn, ctx) for key, fn in HARD.items()}
        return PlanReport(
            index=index, mode=mode, delivered=True, commonsense=_record(COMMONSENSE, cs),
            hard=None if hard is None else _record(HARD, hard),
        )
    stage = "commonsense"
    key = ""
    try:
        cs = {}
        for key, fn in COMMONSENSE.items():
            cs[key] = fn(ctx)
        hard = None
        if cs["is_not_absent"][0] and cs["is_valid_information_in_sandbox"][0]:
            stage = "hard"
            hard = {}
            for key, fn in HARD.items():
                hard[key] = fn(ctx)
    except Exception as err:  # noqa: BLE001 - mirror the official crash, do not propagate it
        crash = f"{PAPER_NAMES.get(key, key)} ({stage}) raises {type(err).__name__}: {err}"
        return PlanReport(
            index=index, mode=mode, delivered=True, crash=crash, commonsense=_failed_all(crash)
        )
    return PlanReport(
        index=index, mode=mode, delivered=True, commonsense=_record(COMMONSENSE, cs),
        hard=None if hard is None else _record(HARD, hard),
    )


def _truthable(value: Any) -> bool:
    try:
        bool(value)
    except Exception:  # noqa: BLE001 - e.g. objects whose __bool__ raises
        return False
    return True


# --- aggregation -----------------------------------------------------------------------------


def aggregate(
    queries: Sequence[TravelQuery], reports: Sequence[PlanReport], split: str | None = None
) -> dict[str, Any]:
    """The official metrics over a split, plus per-level/per-length breakdowns and crashes."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLITS)} or None")
    local_count = sum(len(q.local_constraint.active()) for q in queries)
    n, hard_total = SPLITS[split] if split else (len(queries), len(queries) + local_count)
    mode = reports[0].mode if reports else "official"
    delivered = [r for r in reports if r.delivered]
    cs_pass = sum(r.commonsense_passed for r in delivered)
    hard_pass = sum(r.hard_passed for r in reports)
    metrics = {
        "delivery_rate": len(delivered) / n if n else 0.0,
        "commonsense_micro": cs_pass / (8 * n) if n else 0.0,
        "commonsense_macro": sum(r.commonsense_pass for r in reports) / n if n else 0.0,
        "hard_micro": hard_pass / hard_total if hard_total else 0.0,
        "hard_macro": sum(r.hard_pass for r in reports) / n if n else 0.0,
        "final_pass_rate": sum(r.final_pass for r in reports) / n if n else 0.0,
    }
    return {
        "evaluation": "TravelPlanner official" if mode == "official" else "TravelPlanner memp-strict",
        "mode": mode,
        "split": split,
        "n": n,
        "plans_scored": len(reports),
        **metrics,
        "official_names": {METRIC_NAMES[k]: v for k, v in metrics.items()},
        "counts": {
            "delivered": len(delivered),
            "commonsense_passed": cs_pass,
            "commonsense_total": 8 * n,
            "hard_passed": hard_pass,
            "hard_total": hard_total,
            "commonsense_macro": sum(r.commonsense_pass for r in reports),
            "hard_macro": sum(r.hard_pass for r in reports),
            "final_pass": sum(r.final_pass for r in reports),
        },
        "crashes": [{"index": r.index, "reason": r.crash} for r in reports if r.crash],
        "breakdown": _breakdown(queries, reports),
    }


def _breakdown(queries: Sequence[TravelQuery], reports: Sequence[PlanReport]) -> dict:
    """Per level and trip length, per constraint: true/false counts and the official total."""
    out: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
    for q, r in zip(queries, reports):
        cell = out.setdefault(q.level, {}).setdefault(str(q.days), {})
        for record in (r.commonsense, r.hard):
            for res in (record or {}).values():
                stat = cell.setdefault(res.name, {"true": 0, "false": 0, "total": 0})
                stat["true" if res.passed is True else "false"] += 1
    for q in queries:
        cell = out.setdefault(q.level, {}).setdefault(str(q.days), {})
        active = set(q.local_constraint.active())
        for key, name in PAPER_NAMES.items():
            stat = cell.setdefault(name, {"true": 0, "false": 0, "total": 0})
            local = LOCAL_KEY.get(key)
            # Official totals: a local constraint counts the queries carrying it at the hard
            # level (and at medium, except transportation); everything else counts queries.
            counts_carriers = local is not None and (
                q.level == "hard" or (q.level == "medium" and local != "transportation")
            )
            if not counts_carriers or local in active:
                stat["total"] += 1
    return out


def evaluate(
    queries: Sequence[TravelQuery | dict[str, Any]],
    plans: Sequence[Any],
    db: Database | None = None,
    *,
    split: str | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Score plans (each a list of day dicts, or None) matched to queries by position."""
    qs = [_as_query(q) for q in queries]
    db = db or load_database()
    reports = []
    for i, q in enumerate(qs):
        if i < len(plans):
            reports.append(evaluate_plan(q, plans[i], db, strict=strict, index=i))
        else:
            reports.append(_missing(i, strict, "no plan for this query"))
    result = aggregate(qs, reports, split)
    result["plans"] = [_report_dict(r) for r in reports]
    return result


def _missing(index: int, strict: bool, reason: str) -> PlanReport:
    # The official run aborts on these; we flag them and count the plan as not delivered.
    return PlanReport(
        index=index, mode="strict" if strict else "official", delivered=False,
        crash=None if strict else reason,
    )


def _report_dict(r: PlanReport) -> dict[str, Any]:
    data = r.model_dump()
    data.update(
        commonsense_pass=r.commonsense_pass, hard_pass=r.hard_pass, final_pass=r.final_pass,
        summary=r.summary(),
    )
    return data


def read_submission(path: str | os.PathLike[str]) -> list[tuple[Any, str | None]]:
    """Read a JSON Lines submission: per line (plan, problem), problem set when unreadable.

    Lines are matched to queries by position, as officially; a line that is not JSON, or an
    object without ``plan``, is where the official run would raise.
    """
    text = Path(path).read_text(encoding="utf-8")
    out: list[tuple[Any, str | None]] = []
    for n, line in enumerate(text.strip().split("\n"), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            out.append((None, f"line {n} is not JSON ({err.msg})"))
            continue
        if isinstance(row, str):
            # The official loader evaluates a string row as a Python literal.
            try:
                row = ast.literal_eval(row)
            except (ValueError, SyntaxError):
                out.append((None, f"line {n} is a string that is not a Python literal"))
                continue
        if not isinstance(row, dict) or "plan" not in row:
            out.append((None, f"line {n} has no 'plan' key"))
            continue
        out.append((row["plan"], None))
    return out


def evaluate_file(
    queries_path: str | os.PathLike[str],
    plans_path: str | os.PathLike[str],
    *,
    db: Database | None = None,
    split: str | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Score a JSON Lines submission (one ``{"plan": [...]}`` per query line) against queries.

    ``split`` ("train", "validation", "test") uses the official fixed denominators; without it,
    N is the number of queries given (identical to official for the complete train file).
    """
    queries = load_queries(queries_path)
    rows = read_submission(plans_path)
    db = db or load_database()
    reports = []
    for i, q in enumerate(queries):
        if i >= len(rows):
            reports.append(_missing(i, strict, "the submission has fewer lines than queries"))
            continue
        plan, problem = rows[i]
        if problem:
            reports.append(_missing(i, strict, problem))
        else:
            reports.append(evaluate_plan(q, plan, db, strict=strict, index=i))
    result = aggregate(queries, reports, split)
    result["plans"] = [_report_dict(r) for r in reports]
    return result
