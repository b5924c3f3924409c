"""The LLM TravelPlanner agents, driven by a scripted in-process LLM (and one real-server episode)."""

from __future__ import annotations

import json

import pytest

from memp.agents.react_travel import ReactTravelAgent, SolePlanningAgent, parse_react, reference_information
from memp.envs.travelplanner import TravelTools, construct_plan
from memp.envs.travelplanner.env import TravelEnv
from memp.types import Procedure, RetrievalHit

from ..conftest import ScriptedLLM


@pytest.mark.parametrize("reply, expected", [
    ("Thought: flights first\nAction: FlightSearch[Dallas, Houston, 2022-03-01]",
     ("flights first", "FlightSearch[Dallas, Houston, 2022-03-01]")),
    ("**Thought 2:** ok\n**Action 2:** `flightsearch[Dallas,Houston, 2022-03-01]`",
     ("ok", "FlightSearch[Dallas, Houston, 2022-03-01]")),
    ("Thought: go\nAction: AccommodationSearch[Houston]\nObservation: invented\nAction: CitySearch[Texas]",
     ("go", "AccommodationSearch[Houston]")),
    ("I should look at places. AttractionSearch[ Houston ]", ("I should look at places.", "AttractionSearch[Houston]")),
    ("Action 5: 'RestaurantSearch[San Antonio]'", (None, "RestaurantSearch[San Antonio]")),
    ("Thought: enough\nAction: Planner[a 3-day trip]", ("enough", "Planner[a 3-day trip]")),
    ("Thought: hmm\nAction: search for flights", ("hmm", None)),
    ("", (None, None)),
])
def test_parse_react_is_tolerant(reply, expected):
    assert parse_react(reply) == expected


def _is_planning(messages) -> bool:
    return "You write travel plans" in messages[0]["content"]


def _hit() -> RetrievalHit:
    procedure = Procedure(key="a 3-day trip", builder="script",
                          script=["FlightSearch[{org}, {dest}, {date}]", "Filter[restaurant, not visited]"])
    return RetrievalHit(procedure=procedure, score=0.9)


def test_full_scripted_react_episode(travel_db, travel_train):
    q = next(q for q in travel_train if q.visiting_city_number == 1 and q.days == 3)
    plan = q.gold_plan()[: q.days]
    dest = plan[1]["current_city"].split("(")[0]
    replies = iter([
        f"Thought: flights out\nAction: FlightSearch[{q.org}, {dest}, {q.date[0]}]",
        "Action: NotebookWrite[Flights out]",
        "I am not sure what to do.",  # no action: recorded, asked again
        f"Thought: stays\nAction 3: accommodationsearch[{dest}]",
        "Action: NotebookWrite[Stays]",
        "Thought: done\nAction: Planner[" + q.query + "]",
    ])

    def reply(messages):
        return json.dumps(plan) if _is_planning(messages) else next(replies)

    llm = ScriptedLLM(reply)
    hit = _hit()
    run = ReactTravelAgent(llm, max_steps=10).run(TravelEnv(q, travel_db), [hit])
    assert run.success and run.metadata["final_pass"]
    assert run.metadata["tool_calls"] == 4 and run.metadata["bad_replies"] == 1
    assert [s.action for s in run.steps][:2] == [f"FlightSearch[{q.org}, {dest}, {q.date[0]}]",
                                                "NotebookWrite[Flights out]"]
    assert run.steps[0].thought == "flights out"
    assert run.metadata["followed"] == [hit.procedure.ref]
    # Procedures sit in a delimited block of the first prompt; the planner sees the notebook.
    first = llm.calls[0][0]["content"]
    assert "<procedures>" in first and "Filter[restaurant, not visited]" in first
    planning = next(m for m in llm.calls if _is_planning(m))
    assert "Flights out" in planning[1]["content"] and "Stays" in planning[1]["content"]
    # The react prompt replays earlier turns with their observations.
    assert "Observation: The information has been recorded" in llm.calls[2][1]["content"]


def test_unusable_plan_is_not_delivered_and_max_steps_ends_the_loop(travel_db, travel_train):
    q = travel_train[0]
    llm = ScriptedLLM(lambda m: "no JSON here" if _is_planning(m) else f"Action: CitySearch[{q.dest}]")
    run = ReactTravelAgent(llm, max_steps=3).run(TravelEnv(q, travel_db))
    assert run.metadata["tool_calls"] == 3
    assert not run.metadata["delivered"] and not run.success
    assert run.error and run.error.startswith("no plan")


def test_sole_planning_with_reference_information(travel_db, travel_validation, travel_train):
    q = next(q for q in travel_validation if q.reference_information)
    plan = construct_plan(q, travel_db)
    llm = ScriptedLLM(lambda m: "Here you go:\n```json\n" + json.dumps({"plan": plan}) + "\n```")
    run = SolePlanningAgent(llm).run(TravelEnv(q, travel_db), [_hit()])
    assert run.metadata["plan"] == plan and run.metadata["delivered"]
    assert run.success == bool(plan)
    assert "<procedures>" in llm.calls[0][0]["content"]
    # A query without reference information gets it from the tools.
    generated = reference_information(travel_train[0], TravelTools(travel_db))
    assert any(r["Description"].startswith("Accommodations in") for r in generated)


def _llama_server():
    try:
        from tests.llm.conftest import llama_server  # noqa: F401 - the shared real-server fixture
    except ImportError:  # pragma: no cover - the llm test package is not importable here
        return None
    return llama_server


llama_server = _llama_server()


@pytest.mark.slow
def test_one_react_episode_against_the_local_model_server(request, travel_db, travel_train):
    """The plumbing against a real model: the tiny model's plan is scored, whatever it says."""
    if llama_server is None:
        pytest.skip("the llama_server fixture of tests/llm is not available")
    pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")
    server = request.getfixturevalue("llama_server")
    from memp.llm.client import OpenAIClient

    client = OpenAIClient(server.model, server.base_url, timeout=120.0, seed=0)
    q = next(q for q in travel_train if q.visiting_city_number == 1)
    agent = ReactTravelAgent(client, max_steps=2, max_tokens=48, max_reference_chars=1500)
    agent.plan_max_tokens, agent.plan_reasks = 96, 0  # plumbing only: keep the CPU model short
    run = agent.run(TravelEnv(q, travel_db))
    assert run.steps and run.model == server.model
    assert run.metadata["evaluation"] == "official"
