"""Structured output against the real thing: SmolLM2-135M behind llama-cpp-python's server.

That server refuses OpenAI's ``json_schema`` response format (a 500 "validation error") but takes
a GBNF ``grammar`` and its own ``json_object`` + ``schema`` dialect: ``auto`` must find that out
by itself. These check validity and plumbing, never the quality of a 135M model's answers.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")

from memp.keywords import LLMKeywordExtractor
from memp.llm.client import OpenAIClient
from memp.llm.parse import complete_json
from memp.llm.schemas import DirectScript, ReplySchema, choice_grammar
from memp.types import Task

from .servers import LlamaServer

ROOM = [
    {"role": "system", "content": "You play a text game. Answer with one Action line."},
    {"role": "user", "content": "You see a desk 1 and a drawer 2. Your task is to: put a pen in drawer."},
]


def client_for(server: LlamaServer, **options) -> OpenAIClient:
    options.setdefault("timeout", 600.0)
    return OpenAIClient(server.model, server.base_url, seed=0, **options)


def test_auto_finds_the_grammar_and_keywords_come_back_valid(llama_server: LlamaServer) -> None:
    client = client_for(llama_server)
    keywords = LLMKeywordExtractor(client).extract(Task(text="put a clean mug in coffeemachine."))
    assert keywords and set(keywords) <= {"action", "object", "target", "modifier", "constraint"}
    assert all(isinstance(v, str) and v == v.strip().lower() and len(v) <= 60 for v in keywords.values())
    assert "json_schema" in client.refused and "validation error" in client.refused["json_schema"]
    assert client.usage.calls == 1  # valid the first time: no re-ask (the refused probe is no answer)


def test_a_schema_constrained_build_reply_has_the_declared_shape(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, structured="grammar")
    messages = [{"role": "user", "content": "Write a procedure to heat an apple as JSON with a summary and steps."}]
    with client.scope() as scope:
        script = complete_json(client, messages, validate=DirectScript.model_validate, schema=DirectScript)
    assert 1 <= len(script.steps) <= 12 and all(1 <= len(s) <= 100 for s in script.steps)
    assert len(script.summary) <= 300
    assert scope.usage.calls == 1  # valid the first time


def test_the_json_object_dialect_is_used_when_asked_for_json_schema(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, structured="json_schema", max_tokens=200)
    completion = client.chat([{"role": "user", "content": "Facts of: heat an egg. JSON."}],
                             constraint=ReplySchema.of(DirectScript))
    assert completion.structured == "json_object" and set(client.refused) == {"json_schema"}
    assert completion.text.lstrip().startswith("{")


def test_an_action_is_one_of_the_admissible_commands(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, max_tokens=60)
    options = ["go to desk 1", "go to drawer 2", "open drawer 2", "look", "inventory"]
    reply = client.complete(ROOM, constraint=choice_grammar(options, prefix="Action: ", thought="Thought: "))
    match = re.fullmatch(r"(?:Thought: [^\n]*\n)?Action: (.*)", reply)
    assert match is not None, reply
    assert match.group(1) in options
