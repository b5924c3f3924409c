"""An LLM ReAct agent for ALFWorld, through the ``LLM`` protocol.

The conversation is the system prompt (``prompts/alfworld_react.yaml``: instructions and two
few-shot examples from our expert's runs), the game's first observation with the retrieved
procedures appended as guidelines (as the Memp paper does), then one assistant turn
(``Thought:``/``Action:``) and one user turn (``Observation:``) per step.

Replies are parsed tolerantly (``parse_reply``): labelled ``Action:`` lines, ``> action`` lines as in
the original ALFWorld prompts, and bare command lines; ``think: ...`` and ``Thought:`` without an
action are thoughts. As in ALFWorld ReAct, a thought-only turn costs a step of the budget (answered
"OK.") without touching the game; its text is kept as the ``thought`` of the next action. A reply
with neither costs a step too, so a model that never acts still ends. The budget is the env's step
limit.

Long episodes would outgrow the model's context, so the history is trimmed before each call: the
first observation and guidelines always stay, then as many of the latest turns as fit
``context_chars`` (and at most ``keep_turns``).

Model failures (``LLMError``) are not the model's answer and propagate; the experiment runner
records them as a failed episode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memp import prompts
from memp.llm import LLM, Message
from memp.llm.parse import accepts_constraint
from memp.llm.schemas import Grammar, choice_grammar
from memp.llm.usage import Usage
from memp.types import RetrievalHit, Step, Task, Trajectory, utcnow

DEFAULT_STEP_LIMIT = 30  # when the env does not say (AlfworldEnv has max_steps)

_LABEL = re.compile(
    r"^[\s*_`#-]*(?P<label>thought|think|action)(?:\s*\d+)?[\s*_`]*:\s*(?P<rest>.*)$", re.IGNORECASE
)
_PROMPTED = re.compile(r"^\s*>\s*(?P<rest>.*)$")  # "> go to desk 1", the original ALFWorld style
_OBSERVATION = re.compile(r"^[\s*_`#-]*observation(?:\s*\d+)?[\s*_`]*:", re.IGNORECASE | re.MULTILINE)
# The household command vocabulary: how a bare line is told apart from chatter.
_COMMAND = re.compile(
    r"^(go to|open|close|take|put|move|heat|cool|clean|slice|use|toggle|examine|look|inventory)\b"
)
_BANNER = re.compile(r"^\s*-=.*?=-\s*", re.DOTALL)
_NO_ACTION = ("Nothing happens. (Your reply had no action: answer with one line "
              "\"Action: <command>\", e.g. \"Action: go to cabinet 1\".)")


def _clean_action(text: str) -> str:
    """An action as the game spells commands: lowercase, one line, no quotes or final period."""
    text = text.strip().lstrip("> \t*_`'\"").rstrip(" \t*_`'\"")
    text = " ".join(text.split()).lower()
    return text.rstrip(".!").strip()


def parse_reply(reply: str) -> tuple[str | None, str | None]:
    """(thought, action) from one model reply; either may be None.

    Reads, in order of preference: an ``Action:`` line; a ``> command`` line; a bare line that
    starts with a household command. ``Thought:`` and ``think:`` lines (also ``> think: ...`` and
    ``Action: think: ...``) give the thought; without them, free text before the action does.
    A reply that runs on into an invented "Observation:" is cut there.
    """
    text = reply or ""
    cut = _OBSERVATION.search(text)
    if cut:
        text = text[: cut.start()]
    thoughts: list[str] = []
    labelled: str | None = None
    prompted: str | None = None
    bare: str | None = None
    chatter: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if m := _PROMPTED.match(line):
            line = m.group("rest").strip()
            if not line:
                continue
            label = _LABEL.match(line)
            if label is None:
                prompted = prompted or line
                continue
        else:
            label = _LABEL.match(line)
        if label is not None:
            kind, rest = label.group("label").lower(), label.group("rest").strip()
            inner = _LABEL.match(rest)  # "Action: think: ..." is a thought
            if kind == "action" and inner and inner.group("label").lower() in ("think", "thought"):
                kind, rest = "think", inner.group("rest").strip()
            if kind == "action":
                labelled = labelled or rest
            elif rest:
                thoughts.append(rest)
            continue
        if bare is None and _COMMAND.match(_clean_action(line)):
            bare = line
        elif bare is None and labelled is None and prompted is None:
            chatter.append(line)
    action = next((a for a in (labelled, prompted, bare) if a and _clean_action(a)), None)
    if not thoughts and chatter:
        thoughts = chatter
    thought = " ".join(t.strip(" *_`") for t in thoughts).strip() or None
    return thought, (_clean_action(action) if action else None)


_MOVE = re.compile(r"^move (.+) to (.+)$")


def render_guidelines(memory: Sequence[RetrievalHit] | None) -> list[str]:
    return [hit.procedure.render() for hit in memory or []]


@dataclass
class _Turn:
    said: str  # the assistant message, as we replay it (canonical, not the raw reply)
    observation: str

    def messages(self) -> list[Message]:
        return [{"role": "assistant", "content": self.said},
                {"role": "user", "content": f"Observation: {self.observation}"}]

    def size(self) -> int:
        return len(self.said) + len(self.observation) + 13


def _size(messages: list[Message]) -> int:
    return sum(len(m["content"]) for m in messages)


class ReactAlfworldAgent:
    """ALFWorld ReAct agent. ``run(env, memory)`` plays one episode; see the module docstring.

    ``context_chars`` bounds the prompt (about 4 characters per token for English text);
    ``keep_turns`` bounds the number of past turns shown; ``max_tokens`` bounds each reply.
    ``max_steps`` caps the env's own step limit (None: the env's limit, or 30 if it has none).
    ``constrain_actions``: where the client and server support a grammar (llama.cpp; see
    ``memp.llm.client``), each reply is decoded as an optional Thought line and an Action that is
    one of the game's admissible commands, so a small model cannot invent a command.
    """

    name = "react-alfworld"

    def __init__(self, llm: LLM, *, max_steps: int | None = None, max_tokens: int | None = 96,
                 context_chars: int = 12000, keep_turns: int = 20, few_shot: bool = True,
                 max_observation_chars: int = 800, temperature: float = 0.0,
                 constrain_actions: bool = False) -> None:
        if context_chars < 1 or keep_turns < 0:
            raise ValueError("context_chars must be positive and keep_turns non-negative")
        self.llm = llm
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.context_chars = context_chars
        self.keep_turns = keep_turns
        self.few_shot = few_shot
        self.max_observation_chars = max_observation_chars
        self.temperature = temperature
        self.constrain_actions = constrain_actions

    # --- the prompt ---------------------------------------------------------------------------

    def messages(self, first_observation: str, guidelines: list[str], turns: list[_Turn]) -> list[Message]:
        """The chat for the next call: system, first observation + guidelines, the latest turns."""
        head = prompts.render("alfworld_react", examples=self.few_shot, observation=first_observation,
                              guidelines=guidelines, omitted=0)
        room = self.context_chars - _size(head)
        kept: list[_Turn] = []
        recent = turns[-self.keep_turns:] if self.keep_turns else []
        for turn in reversed(recent):
            # The newest turn is always shown: without it the model cannot see what just happened.
            if kept and turn.size() > room:
                break
            kept.append(turn)
            room -= turn.size()
        kept.reverse()
        if len(kept) < len(turns):
            head = prompts.render("alfworld_react", examples=self.few_shot, observation=first_observation,
                                  guidelines=guidelines, omitted=len(turns) - len(kept))
        return head + [m for turn in kept for m in turn.messages()]

    def step_limit(self, env: Any) -> int:
        limit = getattr(env, "max_steps", None) or DEFAULT_STEP_LIMIT
        return min(limit, self.max_steps) if self.max_steps else limit

    # --- the episode --------------------------------------------------------------------------

    def run(self, env: Any, memory: list[RetrievalHit] | None = None) -> Trajectory:
        scope = getattr(self.llm, "scope", None)
        if callable(scope):  # an OpenAIClient: charge this episode's calls to it
            with scope(self.name) as opened:
                trajectory = self._play(env, memory)
            usage = opened.usage
        else:
            trajectory = self._play(env, memory)
            usage = Usage()
        trajectory.metadata["tokens"] = usage.total_tokens
        trajectory.metadata["usage"] = usage.to_dict()
        return trajectory

    def _play(self, env: Any, memory: list[RetrievalHit] | None) -> Trajectory:
        started = utcnow()
        obs, info = env.reset()
        first = _BANNER.sub("", obs, count=1).strip()
        guidelines = render_guidelines(memory)
        limit = self.step_limit(env)
        turns: list[_Turn] = []
        steps: list[Step] = []
        pending: list[str] = []  # thoughts waiting for the next action
        reward, won, used, thinks, bad = 0.0, bool(info.get("won")), 0, 0, 0
        done = won
        while not done and used < limit:
            extra = self._constraint(info)
            reply = self.llm.complete(self.messages(first, guidelines, turns), temperature=self.temperature,
                                      max_tokens=self.max_tokens, stop=["\nObservation", "Observation:"],
                                      **extra)
            thought, action = parse_reply(reply)
            used += 1
            if action is None:
                if thought:
                    thinks += 1
                    pending.append(thought)
                    turns.append(_Turn(f"Thought: {thought}", "OK."))
                else:
                    bad += 1
                    turns.append(_Turn(reply.strip()[:200] or "(empty reply)", _NO_ACTION))
                continue
            if thought:
                pending.append(thought)
            obs, reward, done, info = env.step(action)
            won = bool(info.get("won"))
            steps.append(Step(action=action, observation=obs, thought=" ".join(pending) or None))
            said = (f"Thought: {thought}\n" if thought else "") + f"Action: {action}"
            turns.append(_Turn(said, self._cut(obs)))
            pending = []
        return Trajectory(
            task=Task(text=info.get("task") or "unknown task", type=info.get("task_type"),
                      keywords=dict(info.get("goal") or {}), env="alfworld"),
            steps=steps, reward=float(reward), success=won, agent=self.name,
            model=getattr(self.llm, "model", None), started_at=started, finished_at=utcnow(),
            metadata={"followed": [h.procedure.ref for h in memory or []], "game": info.get("game_path"),
                      "step_limit": limit, "steps_used": used, "thinks": thinks, "bad_replies": bad,
                      "unused_thoughts": pending},
        )

    def _constraint(self, info: dict[str, Any]) -> dict[str, Grammar]:
        """``{"constraint": ...}`` limiting the Action to the admissible commands, or nothing."""
        commands = info.get("admissible_commands") or []
        if not (self.constrain_actions and commands and accepts_constraint(self.llm)):
            return {}
        # The prompt teaches "put X in/on Y"; newer games admit "move X to Y" (the env translates back).
        spelt = [_MOVE.sub(r"put \1 in/on \2", c) for c in commands]
        return {"constraint": choice_grammar(spelt, prefix="Action: ", thought="Thought: ")}

    def _cut(self, observation: str) -> str:
        limit = self.max_observation_chars
        return observation if len(observation) <= limit else observation[:limit] + " ..."
