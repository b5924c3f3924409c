"""LLM agents for TravelPlanner, through the ``LLM`` protocol.

- ``ReactTravelAgent``: the two-stage mode. A ReAct loop (``Thought:``/``Action:`` turns with the
  official tool syntax) gathers information until the model calls ``Planner[...]`` or runs out of
  steps; then a planning call writes the plan from the notebook (or from what was observed, when
  the model never wrote to the notebook).
- ``SolePlanningAgent``: the sole-planning mode. The query's reference information (or, when a
  query has none, what the search tools return for its cities) goes straight to the planning call.

Retrieved procedures go in both prompts inside a ``<procedures>`` block. Replies are parsed
tolerantly (``parse_react``); a reply without a usable action is recorded and the model is asked
again, and a plan that is not a JSON array of days is submitted as no plan (not delivered), so
every episode ends in a scored trajectory. Model failures (``LLMError``) are not the model's
answer and propagate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from memp import prompts
from memp._errors import LLMOutputError
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.queries import TravelQuery
from memp.envs.travelplanner.tools import TOOL_NAMES, TravelTools
from memp.llm import LLM
from memp.llm.parse import complete_json
from memp.llm.schemas import TravelPlan
from memp.types import RetrievalHit, Trajectory

_TOOLS = {name.lower(): name for name in TOOL_NAMES}
_ACTION = re.compile(r"^[\s>*_`#-]*action(?:\s*\d+)?[\s*_`]*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_THOUGHT = re.compile(r"^[\s>*_`#-]*thought(?:\s*\d+)?[\s*_`]*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_CALL = re.compile(r"([A-Za-z]+)\s*\[(.*?)\](?!.*\])", re.DOTALL)
_ANY_CALL = re.compile(r"\b(" + "|".join(TOOL_NAMES) + r")\s*\[([^\]]*)\]", re.IGNORECASE)
_OBSERVATION = re.compile(r"^\s*observation(?:\s*\d+)?\s*:", re.IGNORECASE | re.MULTILINE)


def _canonical(tool: str, argument: str) -> str | None:
    name = _TOOLS.get(tool.strip().lower())
    if name is None:
        return None
    argument = " ".join(argument.replace("\n", " ").split()).strip().strip("'\"")
    if name not in ("NotebookWrite", "Planner"):
        # The official tools split arguments on ", " exactly.
        argument = ", ".join(part.strip().strip("'\"") for part in argument.split(","))
    return f"{name}[{argument}]"


def parse_react(reply: str) -> tuple[str | None, str | None]:
    """(thought, action) from one model reply; action None when there is no usable tool call.

    Tolerates numbered ("Action 3:") and decorated ("**Action:**") labels, code fences and
    quotes around the call, tool names in any case, arguments without the space after the
    comma, and a reply that runs on into an invented "Observation:" (cut there). Without an
    ``Action:`` line, the first well-formed tool call anywhere in the reply is taken.
    """
    text = reply or ""
    cut = _OBSERVATION.search(text)
    if cut:
        text = text[: cut.start()]
    thought_match = _THOUGHT.search(text)
    thought = thought_match.group(1).strip(" *_`\t") or None if thought_match else None
    action = None
    line = _ACTION.search(text)
    start = line.start() if line else len(text)
    if line:
        call = _CALL.search(text[line.start(1):].strip().strip("`'\""))
        if call:
            action = _canonical(call.group(1), call.group(2))
    if action is None:
        bare = _ANY_CALL.search(text)
        if bare:
            action = _canonical(bare.group(1), bare.group(2))
            start = min(start, bare.start())
    if thought is None:
        thought = text[:start].strip() or None
    return thought, action


def render_procedures(memory: Sequence[RetrievalHit] | None) -> str:
    return "\n\n".join(hit.procedure.render() for hit in memory or [])


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters)"


def _validate_plan(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        # Some models wrap the days: {"plan": [...]}.
        value = value.get("plan", value.get("days", value))
    if not isinstance(value, list) or not value or not all(isinstance(d, dict) for d in value):
        raise ValueError("expected a JSON array with one object per day")
    return value


class _Planning:
    """The planning call shared by both agents."""

    llm: LLM
    max_reference_chars: int
    plan_max_tokens: int | None = 2048
    plan_reasks: int = 1

    def _write_plan(self, query: TravelQuery, reference: str, procedures: str) -> tuple[Any, str | None]:
        messages = prompts.render("travel_plan", reference=_cut(reference, self.max_reference_chars),
                                  query=query.query, procedures=procedures)
        try:
            plan = complete_json(self.llm, messages, validate=_validate_plan, schema=TravelPlan,
                                 max_tokens=self.plan_max_tokens, reasks=self.plan_reasks)
            return plan, None
        except LLMOutputError as err:
            return None, f"no plan: {err}"


class ReactTravelAgent(_Planning):
    """Two-stage TravelPlanner agent: ReAct tool use, then a planning call."""

    name = "react-travel"

    def __init__(self, llm: LLM, *, max_steps: int = 30, max_bad_replies: int = 3,
                 max_observation_chars: int = 2000, max_reference_chars: int = 24000,
                 max_tokens: int | None = 256) -> None:
        self.llm = llm
        self.max_steps = max_steps
        self.max_bad_replies = max_bad_replies
        self.max_observation_chars = max_observation_chars
        self.max_reference_chars = max_reference_chars
        self.max_tokens = max_tokens

    def run(self, env: TravelEnv, memory: list[RetrievalHit] | None = None) -> Trajectory:
        _, info = env.reset()
        query: TravelQuery = info["query"]
        procedures = render_procedures(memory)
        shown: list[dict[str, str | None]] = []
        bad = 0
        error: str | None = None
        for _ in range(self.max_steps):
            messages = prompts.render("travel_react", procedures=procedures, query=query.query,
                                      steps=shown, error=error)
            reply = self.llm.complete(messages, max_tokens=self.max_tokens, stop=["Observation"])
            thought, action = parse_react(reply)
            if action is None:
                bad += 1
                error = "expected 'Action: Tool[arguments]' with one of " + ", ".join(TOOL_NAMES)
                env.note("(no action)", f"unusable reply: {reply.strip()[:200]}", thought)
                if bad >= self.max_bad_replies:
                    break
                continue
            error = None
            if action.startswith("Planner["):
                env.note(action, "planning from the notebook", thought)
                break
            observation, *_ = env.step(action, thought)
            shown.append({"thought": thought, "action": action,
                          "observation": _cut(observation, self.max_observation_chars)})
        plan, problem = self._write_plan(query, self._reference(env), procedures)
        return env.submit(plan, agent=self.name, model=getattr(self.llm, "model", None), error=problem,
                          metadata={"followed": [h.procedure.ref for h in memory or []],
                                    "bad_replies": bad})

    @staticmethod
    def _reference(env: TravelEnv) -> str:
        if env.tools.notebook:
            return env.tools.notebook_text()
        # The model never wrote to the notebook: give the planner what it saw.
        return "\n\n".join(f"{s.action}\n{s.observation}" for s in env.steps
                           if s.action.split("[", 1)[0] in TOOL_NAMES)


def reference_information(query: TravelQuery, tools: TravelTools) -> list[dict[str, str]]:
    """What the official reference information holds, from the tools: cities, transport, venues."""
    out: list[dict[str, str]] = []
    cities = [query.dest]
    if query.visiting_city_number > 1:
        found = tools.city_search(query.dest)
        cities = found if isinstance(found, list) else []
        out.append({"Description": f"Cities in {query.dest}", "Content": str(cities)})
    start, end = query.date[0], query.date[-1]
    for city in cities:
        for a, b, day in ((query.org, city, start), (city, query.org, end)):
            flights = tools.flight_search(a, b, day)
            out.append({"Description": f"Flight from {a} to {b} on {day}",
                        "Content": flights if isinstance(flights, str) else flights.to_string()})
            for mode in ("self-driving", "taxi"):
                out.append({"Description": f"{mode} from {a} to {b}",
                            "Content": tools.distance_matrix(a, b, mode)})
        for label, search in (("Accommodations", tools.accommodation_search),
                              ("Restaurants", tools.restaurant_search),
                              ("Attractions", tools.attraction_search)):
            table = search(city)
            out.append({"Description": f"{label} in {city}",
                        "Content": table if isinstance(table, str) else table.to_string()})
    return out


class SolePlanningAgent(_Planning):
    """Sole-planning TravelPlanner agent: given the reference information, write the plan."""

    name = "sole-planning"

    def __init__(self, llm: LLM, *, max_reference_chars: int = 24000) -> None:
        self.llm = llm
        self.max_reference_chars = max_reference_chars

    def run(self, env: TravelEnv, memory: list[RetrievalHit] | None = None) -> Trajectory:
        _, info = env.reset()
        query: TravelQuery = info["query"]
        reference = query.reference_information or reference_information(query, env.tools)
        text = reference if isinstance(reference, str) else str(reference)
        env.note("Planner[" + (query.query or query.dest) + "]", f"{len(text)} characters of reference information")
        plan, problem = self._write_plan(query, text, render_procedures(memory))
        return env.submit(plan, agent=self.name, model=getattr(self.llm, "model", None), error=problem,
                          metadata={"followed": [h.procedure.ref for h in memory or []]})
