"""Turn a TravelPlanner tool-use episode into a memp Trajectory."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from memp.envs.travelplanner.data import Database
from memp.envs.travelplanner.evaluator import PlanReport, evaluate_plan
from memp.envs.travelplanner.queries import TravelQuery, query_from_dict
from memp.types import Step, Task, Trajectory

ENV_NAME = "travelplanner"


def task_keywords(query: TravelQuery) -> dict[str, str]:
    """AveFact keywords: trip length, number of cities, kinds of local constraint."""
    kinds = query.local_constraint.active()
    return {
        "days": str(query.days),
        "cities": str(query.visiting_city_number),
        "constraints": ",".join(kinds) if kinds else "none",
    }


def task_for(query: TravelQuery) -> Task:
    text = query.query.strip()
    if not text:
        from memp.envs.travelplanner.generator import query_text

        try:
            text = query_text(query)
        except ValueError:
            text = f"Plan a {query.days}-day trip from {query.org} to {query.dest}."
    return Task(
        text=text,
        type=f"travel-{query.days}d-{query.visiting_city_number}c",
        keywords=task_keywords(query),
        env=ENV_NAME,
    )


def _step(item: Any) -> Step:
    if isinstance(item, Step):
        return item
    if isinstance(item, Mapping):
        return Step(
            action=str(item["action"]),
            observation=str(item.get("observation", "")),
            thought=item.get("thought"),
        )
    action, observation = item[0], item[1]
    thought = item[2] if len(item) > 2 else None
    return Step(action=str(action), observation=str(observation), thought=thought)


def trajectory_from_episode(
    query: TravelQuery | dict[str, Any],
    steps: Iterable[Step | tuple[str, str] | tuple[str, str, str | None] | Mapping[str, Any]],
    plan: Any,
    *,
    db: Database | None = None,
    report: PlanReport | None = None,
    strict: bool = False,
    agent: str | None = None,
    model: str | None = None,
    error: str | None = None,
) -> Trajectory:
    """A Trajectory whose steps are the tool calls and whose reward comes from the evaluator.

    ``steps`` may be ``TravelTools.history`` ((action, observation) pairs), Step objects or dicts.
    The reward is 1.0 for a final pass, else the share of applicable constraints passed; the
    per-constraint verdicts and the plan are kept in ``metadata`` for adjustment.
    """
    q = query if isinstance(query, TravelQuery) else query_from_dict(query)
    report = report or evaluate_plan(q, plan, db, strict=strict)
    failures = [{"constraint": r.name, "reason": r.reason} for r in report.failures()]
    return Trajectory(
        task=task_for(q),
        steps=[_step(s) for s in steps],
        reward=report.reward(q),
        success=report.final_pass,
        agent=agent,
        model=model,
        error=error,
        metadata={
            "env": ENV_NAME,
            "query": q.to_official(),
            "plan": plan,
            "evaluation": report.mode,
            "delivered": report.delivered,
            "commonsense_passed": report.commonsense_passed,
            "hard_passed": report.hard_passed,
            "final_pass": report.final_pass,
            "failures": failures,
            "crash": report.crash,
        },
    )
