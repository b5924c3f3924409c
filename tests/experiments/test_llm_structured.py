"""Structured output in the experiments: ``--llm-structured`` and ``--llm-constrain-actions`` reach the wire.

Against the scripted fault server of tests/llm, which records every request body: the ALFWorld
LLM agent's requests carry the grammar of the game's admissible commands when asked (and only
then, and never with ``structured="off"``), and the TravelPlanner suite's planning call carries
the plan's JSON schema in the form ``--llm-structured`` names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")

from typer.testing import CliRunner  # noqa: E402

from memp._errors import InvalidInputError  # noqa: E402
from memp.experiments.llm import LLMSettings, close_client  # noqa: E402
from memp.llm.errors import LLMConfigError  # noqa: E402
from memp.llm.schemas import ReplySchema, TravelPlan  # noqa: E402
from tests.conftest import SHARED  # noqa: E402
from tests.llm import servers  # noqa: E402
from tests.llm.servers import FaultServer, FaultState, ThreadedServer, build_fault_app  # noqa: E402



@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    pytest.importorskip("fastapi", reason="the fault server needs fastapi and uvicorn: pip install 'memp[service]'")
    pytest.importorskip("uvicorn", reason="the fault server needs fastapi and uvicorn: pip install 'memp[service]'")
    state = FaultState()
    with ThreadedServer(build_fault_app(state)) as server:
        yield FaultServer(f"http://127.0.0.1:{server.port}/v1", state)
    close_client()  # the in-process episodes keep this process's client: not into the next test


@pytest.fixture(autouse=True)
def _no_llm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MEMP_LLM_BASE_URL", "MEMP_LLM_MODEL", "MEMP_LLM_API_KEY", "MEMP_LLM_STRUCTURED", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _play(server: FaultServer, game: Path, settings: LLMSettings, steps: int = 3):
    from memp.experiments.alfworld import AlfworldPlayer, episode_tasks
    from memp.experiments.workers import Players

    with Players(AlfworldPlayer("llm", settings), workers=1) as play:
        [(run, _)] = play([(episode_tasks([game])[0], [])], steps)
    return run


def _choices(gbnf: str) -> set[str]:
    """The commands a choice grammar admits."""
    line = next(ln for ln in gbnf.splitlines() if ln.startswith("choice ::= "))
    return {json.loads(quoted) for quoted in re.findall(r'"(?:[^"\\]|\\.)*"', line)}


def test_alfworld_agent_sends_the_admissible_commands_when_asked(fault_server, alfworld_game, monkeypatch):
    monkeypatch.setattr(servers, "FAULT_CONTEXT_CHARS", 20_000)  # a generated game's text is longer
    fault_server.state.default_text = "Thought: first look around\nAction: look"
    base = dict(base_url=fault_server.base_url, model=fault_server.model, api_key=fault_server.api_key,
                timeout=10.0)

    run = _play(fault_server, alfworld_game, LLMSettings(**base, structured="grammar", constrain_actions=True))
    bodies = [r["body"] for r in fault_server.state.chat_requests]
    assert run.error is None and [s.action for s in run.steps] == ["look"] * 3 and len(bodies) == 3
    for body in bodies:
        choices = _choices(body["grammar"])
        assert "look" in choices and "inventory" in choices
        assert any(c.startswith("go to ") for c in choices)
        assert body["grammar"].startswith('root ::= ("Thought: "') and "response_format" not in body

    # Without the option, or with structured output off, the same agent sends no grammar.
    for settings in (LLMSettings(**base, structured="grammar"),
                     LLMSettings(**base, structured="off", constrain_actions=True)):
        fault_server.state.reset()
        fault_server.state.default_text = "Thought: first look around\nAction: look"
        run = _play(fault_server, alfworld_game, settings, steps=2)
        assert run.error is None and len(fault_server.state.chat_requests) == 2
        assert all("grammar" not in r["body"] for r in fault_server.state.chat_requests), settings


@pytest.mark.skipif(not (SHARED / "travelplanner").is_dir(), reason="needs ../shared/travelplanner (official data)")
def test_paper_cli_sends_the_plan_grammar_as_llm_structured_says(fault_server, tmp_path, monkeypatch):
    from memp.cli.main import app

    monkeypatch.setattr(servers, "FAULT_CONTEXT_CHARS", 200_000)  # the prompts carry the tool results
    fault_server.state.default_text = "Thought: I have what I need.\nAction: Planner[the trip]"
    out = tmp_path / "tp"
    common = ["experiment", "paper", "--env", "travelplanner", "--agent", "llm", "--seeds", "0",
              "--n-train", "0", "--n-test", "1", "--n-validation", "1", "--embedder", "hashing",
              "--workers", "1", "--llm-base-url", fault_server.base_url, "--llm-model", fault_server.model,
              "--llm-api-key", fault_server.api_key, "--llm-timeout", "10"]
    # grammar, not the default auto (which would send OpenAI's form first): the option must reach the client.
    result = CliRunner().invoke(app, [*common, "--out", str(out), "--llm-structured", "grammar"])
    assert result.exit_code == 0, result.output
    bodies = [r["body"] for r in fault_server.state.chat_requests]
    plans = [b["grammar"] for b in bodies if "grammar" in b]
    # Every planning call (and its re-ask) carries the plan's grammar; the ReAct turns carry none.
    assert plans and len(plans) < len(bodies) and not any("response_format" in b for b in bodies)
    assert set(plans) == {ReplySchema.of(TravelPlan).grammar()}
    config = json.loads((out / "results.json").read_text())["config"]["llm"]
    assert config["structured"] == "grammar" and config["constrain_actions"] is False



def test_paper_cli_refuses_bad_structured_options_before_running(tmp_path):
    from memp.cli.main import app

    runner = CliRunner()
    out = tmp_path / "never"
    llm = ["--agent", "llm", "--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m", "--out", str(out)]
    refused = runner.invoke(app, ["experiment", "paper", "--env", "alfworld", *llm, "--llm-structured", "xml"])
    assert isinstance(refused.exception, LLMConfigError) and "auto, json_schema, grammar, off" in str(refused.exception)
    refused = runner.invoke(app, ["experiment", "paper", "--env", "travelplanner", *llm, "--llm-constrain-actions"])
    assert isinstance(refused.exception, InvalidInputError) and "ALFWorld" in str(refused.exception)
    refused = runner.invoke(app, ["experiment", "paper", "--env", "alfworld", "--out", str(out),
                                  "--llm-constrain-actions"])  # the offline agent has no model to constrain
    assert isinstance(refused.exception, InvalidInputError)
    assert not out.exists()
