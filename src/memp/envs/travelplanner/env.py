"""One TravelPlanner episode as an environment: tool calls as steps, then a submitted plan.

``TravelEnv`` satisfies ``memp.agents.base.Environment`` (``reset``/``step``): each step runs one
official tool call and returns its observation. An agent also records its own non-tool steps
(checks, thoughts) with ``note``, and ends the episode with ``submit(plan)``, which scores the
plan with the official evaluator and returns the ``Trajectory``.
"""

from __future__ import annotations

from typing import Any

from memp.envs.travelplanner.data import Database, load_database
from memp.envs.travelplanner.episode import trajectory_from_episode
from memp.envs.travelplanner.queries import TravelQuery
from memp.envs.travelplanner.tools import TOOL_NAMES, TravelTools, parse_action
from memp.types import Step, Trajectory

# Stored observations are capped: a city's restaurant table can run to tens of kilobytes, and
# memory only ever shows the first line or two of an observation.
MAX_STORED_OBSERVATION = 4000


def _cap(text: str) -> str:
    if len(text) <= MAX_STORED_OBSERVATION:
        return text
    rows = text.count("\n")
    return text[:MAX_STORED_OBSERVATION] + f"\n... ({rows} lines in all)"


class TravelEnv:
    """A query, the tools over the database, and the steps taken so far."""

    def __init__(self, query: TravelQuery, db: Database | None = None, *, strict: bool = False) -> None:
        self.query = query
        self.db = db or load_database()
        self.strict = strict
        self.tools = TravelTools(self.db)
        self.steps: list[Step] = []
        self.tool_calls = 0

    def reset(self) -> tuple[str, dict[str, Any]]:
        self.tools.reset()
        self.steps.clear()
        self.tool_calls = 0
        return self.query.query, {"query": self.query}

    def step(self, action: str, thought: str | None = None) -> tuple[str, float, bool, dict[str, Any]]:
        """Run one tool call (official syntax); never raises for what the agent wrote."""
        observation = self.tools.run(action)
        parsed = parse_action(action)
        if parsed is not None and parsed.tool in TOOL_NAMES:
            self.tool_calls += 1
        self.steps.append(Step(action=action, observation=_cap(observation), thought=thought))
        return observation, 0.0, False, {}

    def note(self, action: str, observation: str, thought: str | None = None) -> None:
        """Record a step that is not a tool call (a check the agent made, a planning step)."""
        self.steps.append(Step(action=action, observation=_cap(observation), thought=thought))

    def submit(self, plan: Any, *, agent: str | None = None, model: str | None = None,
               error: str | None = None, metadata: dict[str, Any] | None = None) -> Trajectory:
        """Score the plan and return the episode as a Trajectory (evaluator verdicts in metadata)."""
        trajectory = trajectory_from_episode(
            self.query, list(self.steps), plan, db=self.db, strict=self.strict,
            agent=agent, model=model, error=error,
        )
        extra = {"tool_calls": self.tool_calls, **(metadata or {})}
        return trajectory.model_copy(update={"metadata": {**trajectory.metadata, **extra}})
