"""The ALFWorld ReAct agent, driven by a scripted in-process LLM on a small scripted household."""

from __future__ import annotations

import pytest

from memp.agents.react_alfworld import ReactAlfworldAgent, parse_reply
from memp.types import Procedure, RetrievalHit

from ..conftest import ScriptedLLM

INTRO = ("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around "
         "you, you see a desk 1, a drawer 1, and a shelf 1.\n\nYour task is to: put some pen on desk.")


class Household:
    """Three places and a pen: enough world to check the agent's plumbing without the engine."""

    def __init__(self, max_steps: int = 30) -> None:
        self.max_steps = max_steps
        self.actions: list[str] = []

    def reset(self):
        self.actions, self.holding = [], False
        return INTRO, self._info(False)

    def _info(self, won: bool):
        return {"won": won, "task": "put some pen on desk", "task_type": "pick_and_place_simple",
                "goal": {"object": "pen", "target": "desk"}, "game_path": "scripted",
                "admissible_commands": ["go to desk 1", "go to drawer 1", "go to shelf 1"]}

    def step(self, action: str):
        self.actions.append(action)
        won = False
        if action == "go to shelf 1":
            obs = "You arrive at loc 3. On the shelf 1, you see a pen 1."
        elif action == "take pen 1 from shelf 1":
            self.holding, obs = True, "You pick up the pen 1 from the shelf 1."
        elif action == "go to desk 1":
            obs = "You arrive at loc 1. On the desk 1, you see a lamp 1."
        elif action in ("put pen 1 in/on desk 1", "move pen 1 to desk 1") and self.holding:
            won, obs = True, "You put the pen 1 in/on the desk 1."
        else:
            obs = "Nothing happens."
        done = won or len(self.actions) >= self.max_steps
        return obs, float(won), done, self._info(won)


@pytest.mark.parametrize("reply, expected", [
    ("Thought: the pen may be on the shelf\nAction: go to shelf 1", ("the pen may be on the shelf", "go to shelf 1")),
    ("> go to shelf 1", (None, "go to shelf 1")),
    ("go to shelf 1", (None, "go to shelf 1")),
    ("Go to shelf 1.", (None, "go to shelf 1")),
    ("> think: first find the pen", ("first find the pen", None)),
    ("think: first find the pen\n> go to shelf 1", ("first find the pen", "go to shelf 1")),
    ("Action: think: find the pen", ("find the pen", None)),
    ("**Thought 2:** ok\n**Action 2:** `take pen 1 from shelf 1`", ("ok", "take pen 1 from shelf 1")),
    ("Action: go to desk 1\nObservation: invented\nAction: go to drawer 1", (None, "go to desk 1")),
    ("I should look on the shelf first.\ngo to shelf 1", ("I should look on the shelf first.", "go to shelf 1")),
    ("Thought: hmm", ("hmm", None)),
    ("I am not sure.", ("I am not sure.", None)),
    ("", (None, None)),
])
def test_parse_reply_is_tolerant(reply, expected):
    assert parse_reply(reply) == expected


def _hit(text: str = "put a pen on shelf") -> RetrievalHit:
    procedure = Procedure(key=text, builder="script", script=["go to {place}", "take {object} from {place}"],
                          notes=["look on shelves first"])
    return RetrievalHit(procedure=procedure, score=0.8)


def test_a_scripted_episode_with_thoughts_and_guidelines():
    llm = ScriptedLLM([
        "think: the pen is probably on a shelf",
        "Thought: go look\nAction: go to shelf 1",
        "> take pen 1 from shelf 1",
        "",  # an empty reply costs a step and gets a format reminder
        "go to desk 1",
        "Action: put pen 1 in/on desk 1.",
    ])
    hits = [_hit(), _hit("put a book on desk")]
    run = ReactAlfworldAgent(llm).run(Household(), hits)
    assert run.success and run.reward == 1.0
    assert [s.action for s in run.steps] == ["go to shelf 1", "take pen 1 from shelf 1", "go to desk 1",
                                             "put pen 1 in/on desk 1"]
    # The think step went to the game as nothing, and its text joins the next action's thought.
    assert run.steps[0].thought == "the pen is probably on a shelf go look"
    assert run.metadata["steps_used"] == 6 and run.metadata["thinks"] == 1 and run.metadata["bad_replies"] == 1
    assert run.metadata["followed"] == [h.procedure.ref for h in hits]
    assert run.metadata["tokens"] == 0 and run.metadata["usage"]["total_tokens"] == 0
    assert run.task.text == "put some pen on desk" and run.task.env == "alfworld"
    # The guidelines follow the first observation in a delimited block, one render() per procedure.
    system, first = llm.calls[0][0]["content"], llm.calls[0][1]["content"]
    assert "Here are two examples." in system and "Action: put candle 1 in/on cabinet 1" in system
    assert first.startswith("You are in the middle of a room") and "Welcome" not in first
    block = first.split("Here are some guidelines of how to solve the similar task:\n<guidelines>\n")[1]
    assert block.endswith("</guidelines>")
    assert all(h.procedure.render() in block for h in hits)
    # Later calls replay turns: the think got "OK.", the empty reply a reminder.
    later = llm.calls[4]
    assert [m["role"] for m in later] == ["system", "user"] + ["assistant", "user"] * 4
    assert later[2]["content"] == "Thought: the pen is probably on a shelf"
    assert later[3]["content"] == "Observation: OK."
    assert later[4]["content"] == "Thought: go look\nAction: go to shelf 1"
    assert "no action" in later[9]["content"]


def test_no_memory_means_no_guidelines_block():
    llm = ScriptedLLM(["go to drawer 1"])
    run = ReactAlfworldAgent(llm).run(Household(max_steps=2))
    assert "guidelines" not in llm.calls[0][1]["content"]
    assert run.metadata["followed"] == [] and not run.success


def test_the_step_limit_comes_from_the_env_and_thoughts_count():
    llm = ScriptedLLM(["think: hmm", "go to drawer 1"])
    run = ReactAlfworldAgent(llm).run(Household(max_steps=4))
    assert run.metadata["step_limit"] == 4 and run.metadata["steps_used"] == 4
    assert len(llm.calls) == 4 and len(run.steps) == 3
    # The agent's own cap is lower: it wins over the env's.
    run = ReactAlfworldAgent(ScriptedLLM(["go to drawer 1"]), max_steps=2).run(Household(max_steps=4))
    assert run.metadata["step_limit"] == 2 and len(run.steps) == 2


def test_thoughts_alone_end_at_the_limit():
    llm = ScriptedLLM(["Thought: I wonder"])
    run = ReactAlfworldAgent(llm).run(Household(max_steps=5))
    assert run.steps == [] and run.metadata["thinks"] == 5 and not run.success
    assert run.metadata["unused_thoughts"] == ["I wonder"] * 5


def test_history_is_trimmed_to_the_budget_keeping_the_first_observation():
    llm = ScriptedLLM(["go to drawer 1"])
    agent = ReactAlfworldAgent(llm, context_chars=6000, few_shot=True)
    agent.run(Household(max_steps=40), [_hit()])
    last = llm.calls[-1]
    assert sum(len(m["content"]) for m in last) <= 6000
    assert "Here are some guidelines" in last[1]["content"]
    assert "earlier turns are not shown" in last[1]["content"]
    # The latest turn is always there, and turns stay in order ending with an observation.
    assert last[-1]["content"] == "Observation: Nothing happens."
    assert last[-2]["content"] == "Action: go to drawer 1"
    shown = (len(last) - 2) // 2
    assert 0 < shown < 39


def test_keep_turns_bounds_the_history():
    llm = ScriptedLLM(["go to drawer 1"])
    ReactAlfworldAgent(llm, keep_turns=3).run(Household(max_steps=10))
    assert len(llm.calls[-1]) == 2 + 2 * 3
    assert "(6 earlier turns are not shown" in llm.calls[-1][1]["content"]
    assert "not shown" not in llm.calls[3][1]["content"]


def test_tokens_come_from_the_client_scope():
    from memp.llm.usage import Usage, UsageMeter

    class MeteredLLM(ScriptedLLM):
        def __init__(self, replies):
            super().__init__(replies)
            self.meter = UsageMeter()

        def scope(self, name=None):
            return self.meter.scope(name)

        def complete(self, messages, **options):
            self.meter.record(Usage(calls=1, network_calls=1, prompt_tokens=100, completion_tokens=7))
            return super().complete(messages, **options)

    llm = MeteredLLM(["go to drawer 1"])
    run = ReactAlfworldAgent(llm).run(Household(max_steps=3))
    assert run.metadata["tokens"] == 3 * 107
    assert run.metadata["usage"]["calls"] == 3 and run.metadata["usage"]["prompt_tokens"] == 300


def test_invalid_budget_is_refused():
    with pytest.raises(ValueError, match="context_chars"):
        ReactAlfworldAgent(ScriptedLLM(["look"]), context_chars=0)
