"""What each prompt expects back, declared once: pydantic models → JSON schema → what a server takes.

A prompt that wants JSON names its reply's model here; ``complete_json`` hands the resulting
``ReplySchema`` to the client, which sends it in the form the endpoint supports (see
``memp.llm.client``): OpenAI's ``response_format`` with a JSON schema (OpenAI, vLLM, Ollama,
llama.cpp's ``llama-server``), llama-cpp-python's ``response_format`` of type ``json_object`` with
a ``schema``, or a GBNF ``grammar`` compiled here. A server that constrains decoding to the schema
makes even a 135M model answer with JSON of the right shape; whether the content is any good is
another matter, and the validators in build.py, keywords.py and update.py still check it.

The bounds (string lengths, item counts) are there for small models: without them a constrained
model may fill a string until ``max_tokens`` runs out, and the truncated JSON is invalid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

# ---- the replies -----------------------------------------------------------------------------


def _text(limit: int) -> Any:
    return Annotated[str, StringConstraints(max_length=limit)]


class _Reply(BaseModel):
    # additionalProperties: false, and every field required: what OpenAI's strict mode demands.
    model_config = ConfigDict(extra="forbid")


class DirectScript(_Reply):
    """``script_direct``: a trajectory distilled into a general procedure."""

    summary: _text(300)
    steps: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=100)]],
                     Field(min_length=1, max_length=12)]


class Event(_Reply):
    index: int
    pre_state: _text(60)
    action: _text(80)
    new_state: _text(60)


class Keywords(_Reply):
    """``keywords``: AveFact's fixed vocabulary; an empty string means the task does not say."""

    action: _text(30)
    object: _text(30)
    target: _text(30)
    modifier: _text(30)
    constraint: _text(60)


class Adjustment(_Reply):
    """``adjust``: a reflection on a failed run and the revised procedure."""

    analysis: _text(300)
    summary: _text(300)
    steps: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=100)]],
                     Field(min_length=1, max_length=12)]
    pitfall: _text(160)


class PlanDay(_Reply):
    days: int
    current_city: _text(80)
    transportation: _text(200)
    breakfast: _text(80)
    attraction: _text(300)
    lunch: _text(80)
    dinner: _text(80)
    accommodation: _text(80)


class TravelPlan(_Reply):
    """``travel_plan``: one object per day, wrapped (OpenAI wants an object at the top)."""

    plan: Annotated[list[PlanDay], Field(min_length=1, max_length=7)]


def events_reply(n_steps: int) -> type[_Reply]:
    """``script_events``: one event per step, so at most ``n_steps`` of them."""
    return create_model(
        "Events", __base__=_Reply,
        events=(Annotated[list[Event], Field(min_length=1, max_length=max(1, n_steps))], ...),
    )


def critical_reply(n_steps: int) -> type[_Reply]:
    """``script_critical``: step numbers between 1 and ``n_steps``, and the summary."""
    index = Annotated[int, Field(ge=1, le=max(1, n_steps))]
    return create_model(
        "Critical", __base__=_Reply,
        critical=(Annotated[list[index], Field(min_length=1, max_length=max(1, n_steps))], ...),
        summary=(_text(300), ...),
    )


# ---- schemas and grammars ---------------------------------------------------------------------

# Keywords that OpenAI's strict mode refuses; the local dialects (which decode locally against
# a grammar) keep them, and they matter most there.
_NOT_STRICT = ("maxLength", "minLength", "minimum", "maximum")


@dataclass(frozen=True)
class ReplySchema:
    """A reply's JSON schema, named, with ``$ref``s inlined so every dialect can read it."""

    name: str
    schema: dict[str, Any] = field(hash=False, compare=False)

    @classmethod
    def of(cls, model: type[BaseModel]) -> ReplySchema:
        return cls(model.__name__, _inline(model.model_json_schema()))

    @property
    def canonical(self) -> str:
        """Stable text of the schema: part of the response cache key."""
        return json.dumps({"name": self.name, "schema": self.schema}, sort_keys=True)

    def strict_schema(self) -> dict[str, Any]:
        """The schema without the keywords OpenAI's strict mode rejects."""
        return _without(self.schema, _NOT_STRICT)

    def grammar(self) -> str:
        return schema_to_gbnf(self.schema)


@dataclass(frozen=True)
class Grammar:
    """A GBNF grammar for the whole reply (llama.cpp's ``grammar`` request field)."""

    gbnf: str

    @property
    def canonical(self) -> str:
        return json.dumps({"grammar": self.gbnf})


Constraint = ReplySchema | Grammar


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: walk(v) for k, v in node.items() if k not in ("$defs", "title", "description")}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def _without(node: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        return {k: _without(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [_without(v, keys) for v in node]
    return node


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


# One JSON string character; control characters are left out, so a string cannot swallow lines.
_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'


class _GBNF:
    """A compiler for the subset of JSON schema the replies above use."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {
            # At most one space between tokens: unbounded whitespace is where small models loop.
            "ws": '" "?',
            "char": _CHAR,
            "integer": '"-"? ([0-9] | [1-9] [0-9]{0,8})',
        }

    def add(self, name: str, body: str) -> str:
        if self.rules.get(name, body) != body:
            name = f"{name}{len(self.rules)}"
        self.rules[name] = body
        return name

    def visit(self, node: dict[str, Any], name: str) -> str:
        kind = node.get("type")
        if "enum" in node:
            return self.add(name, " | ".join(gbnf_literal(json.dumps(v)) for v in node["enum"]))
        if kind == "object":
            return self.add(name, self._object(node, name))
        if kind == "array":
            return self.add(name, self._array(node, name))
        if kind == "string":
            low, high = node.get("minLength", 0), node.get("maxLength")
            repeat = f"{{{low},{high}}}" if high is not None else ("+" if low else "*")
            return self.add(name, f'"\\"" char{repeat} "\\""')
        if kind == "integer":
            low, high = node.get("minimum"), node.get("maximum")
            if low is not None and high is not None and 0 <= high - low < 256:
                # A small range, spelt out: so a step number cannot point past the run.
                return self.add(f"{name}-int", " | ".join(gbnf_literal(str(i)) for i in range(low, high + 1)))
            return "integer"
        raise ValueError(f"no GBNF for the JSON schema part {node!r}")

    def _object(self, node: dict[str, Any], name: str) -> str:
        properties = node.get("properties", {})
        missing = set(properties) - set(node.get("required", []))
        if missing:
            raise ValueError(f"every property must be required for a grammar; optional: {sorted(missing)}")
        parts = []
        for key, value in properties.items():
            rule = self.visit(value, f"{name}-{key}".replace("_", "-"))
            parts.append(f'{gbnf_literal(json.dumps(key))} ws ":" ws {rule}')
        inner = ' ws "," ws '.join(parts)
        return f'"{{" ws {inner} ws "}}"' if parts else '"{" ws "}"'

    def _array(self, node: dict[str, Any], name: str) -> str:
        item = self.visit(node.get("items", {"type": "string"}), f"{name}-item")
        low, high = node.get("minItems", 0), node.get("maxItems")
        more = f'(ws "," ws {item})'
        if high is None:
            tail = f"{more}*"
        else:
            tail = f"{more}{{{max(low - 1, 0)},{max(high - 1, 0)}}}"
        if low == 0:
            return f'"[" ws ({item} {tail})? ws "]"'
        return f'"[" ws {item} {tail} ws "]"'


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A GBNF grammar accepting exactly the JSON values ``schema`` describes (our subset of it)."""
    compiler = _GBNF()
    root = compiler.visit(schema, "reply")
    lines = [f"root ::= {root}"] + [f"{name} ::= {body}" for name, body in compiler.rules.items()]
    return "\n".join(lines) + "\n"


def choice_grammar(options: list[str], *, prefix: str = "", thought: str | None = None) -> Grammar:
    """A reply that is ``prefix`` plus one of ``options``, after an optional one-line ``thought``.

    For a ReAct turn: ``choice_grammar(admissible, prefix="Action: ", thought="Thought: ")``.
    """
    if not options:
        raise ValueError("a choice needs at least one option")
    alternatives = " | ".join(gbnf_literal(o) for o in dict.fromkeys(options))
    head = f"({gbnf_literal(thought)} [^\\n]{{0,300}} \"\\n\")? " if thought else ""
    return Grammar(f"root ::= {head}{gbnf_literal(prefix)} choice\nchoice ::= {alternatives}\n")


__all__ = [
    "Adjustment",
    "Constraint",
    "DirectScript",
    "Event",
    "Grammar",
    "Keywords",
    "PlanDay",
    "ReplySchema",
    "TravelPlan",
    "choice_grammar",
    "critical_reply",
    "events_reply",
    "gbnf_literal",
    "schema_to_gbnf",
]
