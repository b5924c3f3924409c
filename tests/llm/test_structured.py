"""Structured output: reply schemas, the wire forms the client sends, and the fallbacks.

Against the scripted fault server, which records every request body and can refuse a form the way
real servers do (422 from a FastAPI server, llama-cpp-python's 500 "validation error").
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")

from memp._errors import LLMOutputError
from memp.build import ScriptBuilder
from memp.keywords import LLMKeywordExtractor
from memp.llm.client import OpenAIClient
from memp.llm.errors import LLMConfigError, LLMRequestError
from memp.llm.parse import accepts_constraint, complete_json
from memp.llm.schemas import (
    DirectScript,
    Keywords,
    ReplySchema,
    choice_grammar,
    critical_reply,
    events_reply,
)
from memp.types import Step, Task, Trajectory

from .servers import Fault, FaultServer

KEYWORDS_JSON = '{"action": "heat put", "object": "apple", "target": "fridge", "modifier": "hot", "constraint": ""}'
REFUSED_BY_LLAMA_CPP_PYTHON = json.dumps(
    {"error": {"message": "1 validation error: {'loc': ('body', 'response_format', 'type'), "
               "'msg': \"Input should be 'text' or 'json_object'\"}", "type": "internal_server_error"}}
)


def client_for(server: FaultServer, **options) -> OpenAIClient:
    options.setdefault("backoff_base", 0.0)
    options.setdefault("retry_seed", 0)
    return OpenAIClient(server.model, server.base_url, server.api_key, **options)


def sent(server: FaultServer, n: int = -1) -> dict:
    return server.state.chat_requests[n]["body"]


# ---- schemas -------------------------------------------------------------------------------------


def test_reply_schema_is_strict_and_self_contained() -> None:
    schema = ReplySchema.of(events_reply(3)).schema
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    event = schema["properties"]["events"]["items"]
    assert event["additionalProperties"] is False
    assert set(event["required"]) == set(event["properties"]) == {"index", "pre_state", "action", "new_state"}
    assert schema["properties"]["events"]["maxItems"] == 3


def test_strict_schema_drops_what_openai_strict_mode_refuses() -> None:
    reply = ReplySchema.of(critical_reply(5))
    assert reply.schema["properties"]["critical"]["items"]["maximum"] == 5
    strict = json.dumps(reply.strict_schema())
    assert "maxLength" not in strict and "maximum" not in strict and "maxItems" in strict


def test_grammar_bounds_strings_items_and_step_numbers() -> None:
    gbnf = ReplySchema.of(critical_reply(3)).grammar()
    assert gbnf.startswith("root ::= ")
    # Step numbers are spelt out, so the model cannot name step 4 of a 3-step run.
    assert '"1" | "2" | "3"' in gbnf
    assert "char{0,300}" in gbnf and "{0,2}" in gbnf
    direct = ReplySchema.of(DirectScript).grammar()
    assert "char{1,100}" in direct and '"\\"summary\\""' in direct


def test_grammar_refuses_optional_properties() -> None:
    from memp.llm.schemas import schema_to_gbnf

    with pytest.raises(ValueError, match="optional"):
        schema_to_gbnf({"type": "object", "properties": {"a": {"type": "string"}}, "required": []})


def test_choice_grammar_quotes_every_option() -> None:
    grammar = choice_grammar(['take "odd" 1 from desk 1', "go to desk 1", "go to desk 1"], prefix="Action: ",
                             thought="Thought: ")
    assert grammar.gbnf.count('"go to desk 1"') == 1  # duplicates removed
    assert '"take \\"odd\\" 1 from desk 1"' in grammar.gbnf
    assert grammar.gbnf.startswith('root ::= ("Thought: "')
    with pytest.raises(ValueError):
        choice_grammar([])


# ---- what goes on the wire -----------------------------------------------------------------------


def test_json_schema_form_is_openais_response_format(fault_server: FaultServer) -> None:
    fault_server.state.default_text = KEYWORDS_JSON
    client = client_for(fault_server, structured="json_schema")
    completion = client.chat([{"role": "user", "content": "k"}], constraint=ReplySchema.of(Keywords))
    body = sent(fault_server)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "Keywords"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert "maxLength" not in json.dumps(body["response_format"])
    assert completion.structured == "json_schema"


def test_auto_falls_back_to_grammar_when_json_schema_is_refused(fault_server: FaultServer) -> None:
    fault_server.state.default_text = KEYWORDS_JSON
    fault_server.state.push(Fault(status=500, raw=REFUSED_BY_LLAMA_CPP_PYTHON))
    client = client_for(fault_server)  # auto by default
    extractor = LLMKeywordExtractor(client)
    assert extractor.extract(Task(text="put a hot apple in fridge")) == {
        "action": "heat put", "object": "apple", "target": "fridge", "modifier": "hot"}
    first, second = (r["body"] for r in fault_server.state.chat_requests)
    assert first["response_format"]["type"] == "json_schema"
    assert "response_format" not in second and second["grammar"].startswith("root ::= ")
    assert set(client.refused) == {"json_schema"}
    # Remembered: the next call goes straight to the grammar, and a refusal costs no retries.
    extractor.extract(Task(text="cool a mug"))
    assert len(fault_server.state.chat_requests) == 3 and "grammar" in sent(fault_server)
    assert client.usage.retries == 0


def test_auto_sends_unconstrained_when_every_form_is_refused(fault_server: FaultServer) -> None:
    fault_server.state.default_text = KEYWORDS_JSON
    fault_server.state.push(*(Fault(status=422) for _ in range(3)))
    client = client_for(fault_server)
    reply = client.chat([{"role": "user", "content": "k"}], constraint=ReplySchema.of(Keywords))
    assert reply.text == KEYWORDS_JSON and reply.structured is None
    bodies = [r["body"] for r in fault_server.state.chat_requests]
    assert [("grammar" in b, b.get("response_format", {}).get("type")) for b in bodies] == [
        (False, "json_schema"), (True, None), (False, "json_object"), (False, None)]
    assert set(client.refused) == {"json_schema", "grammar", "json_object"}


def test_an_explicit_mode_the_server_refuses_is_a_clear_error(fault_server: FaultServer) -> None:
    fault_server.state.push(Fault(status=422), Fault(status=422))
    client = client_for(fault_server, structured="json_schema")
    with pytest.raises(LLMRequestError, match="--llm-structured auto"):
        client.chat([{"role": "user", "content": "k"}], constraint=ReplySchema.of(Keywords))
    # Both response_format dialects were tried, and nothing was sent unconstrained.
    assert len(fault_server.state.chat_requests) == 2


def test_off_and_unconstrained_calls_send_no_constraint(fault_server: FaultServer) -> None:
    fault_server.state.default_text = KEYWORDS_JSON
    client_for(fault_server, structured="off").chat([{"role": "user", "content": "k"}],
                                                    constraint=ReplySchema.of(Keywords))
    client_for(fault_server).chat([{"role": "user", "content": "k"}])
    for request in fault_server.state.chat_requests:
        assert "response_format" not in request["body"] and "grammar" not in request["body"]


def test_an_unrelated_server_error_is_still_retried(fault_server: FaultServer) -> None:
    fault_server.state.default_text = KEYWORDS_JSON
    fault_server.state.push(Fault(status=500))  # "scripted 500": not about the form
    client = client_for(fault_server, structured="json_schema")
    reply = client.chat([{"role": "user", "content": "k"}], constraint=ReplySchema.of(Keywords))
    assert reply.structured == "json_schema" and reply.attempts == 2 and client.refused == {}


def test_grammar_constraints_go_only_where_grammars_may(fault_server: FaultServer) -> None:
    fault_server.state.default_text = "Action: go to desk 1"
    choice = choice_grammar(["go to desk 1"], prefix="Action: ")
    client_for(fault_server, structured="json_schema").chat([{"role": "user", "content": "a"}], constraint=choice)
    client_for(fault_server, structured="grammar").chat([{"role": "user", "content": "a"}], constraint=choice)
    first, second = (r["body"] for r in fault_server.state.chat_requests)
    assert "grammar" not in first
    assert second["grammar"] == choice.gbnf


def test_the_cache_tells_constrained_from_unconstrained(fault_server: FaultServer, tmp_path) -> None:
    fault_server.state.default_text = KEYWORDS_JSON
    client = client_for(fault_server, cache=tmp_path / "cache.sqlite")
    ask = [{"role": "user", "content": "k"}]
    client.chat(ask)
    assert client.chat(ask, constraint=ReplySchema.of(Keywords)).cached is False
    assert client.chat(ask, constraint=ReplySchema.of(Keywords)).cached is True
    assert len(fault_server.state.chat_requests) == 2


def test_bad_mode_is_refused_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LLMConfigError, match="auto, json_schema, grammar, off"):
        OpenAIClient("m", "http://127.0.0.1:9/v1", structured="xml")
    monkeypatch.setenv("MEMP_LLM_STRUCTURED", "grammar")
    assert OpenAIClient("m", "http://127.0.0.1:9/v1").structured == "grammar"


# ---- complete_json and its callers ---------------------------------------------------------------


class _Scripted:
    """An LLM without ``constraint``: it must still be asked, as before structured output."""

    model = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.kwargs: list[dict] = []

    def complete(self, messages, *, temperature=0.0, max_tokens=None, stop=None):
        self.kwargs.append({"temperature": temperature})
        return self.replies.pop(0)


def test_complete_json_without_structured_output_parses_and_reasks() -> None:
    llm = _Scripted("Sure! {\"summary\": \"s\"}", 'Here: {"summary": "s", "steps": ["go to {target}"]}')
    assert not accepts_constraint(llm)
    data = complete_json(llm, [{"role": "user", "content": "x"}], validate=DirectScript.model_validate,
                         schema=DirectScript)
    assert data.steps == ["go to {target}"] and len(llm.kwargs) == 2


def test_a_raw_newline_inside_a_string_still_parses() -> None:
    llm = _Scripted('{"summary": "two\nlines", "steps": ["a"]}')
    assert complete_json(llm, [{"role": "user", "content": "x"}])["summary"] == "two\nlines"


def test_two_stage_build_sends_bounded_schemas(fault_server: FaultServer) -> None:
    events = {"events": [{"index": i, "pre_state": "", "action": a, "new_state": "x"}
                         for i, a in enumerate(["go to desk 1", "take pen 1 from desk 1"], 1)]}
    fault_server.state.push(Fault(text=json.dumps(events)),
                            Fault(text='{"critical": [1, 2], "summary": "fetch the pen"}'))
    client = client_for(fault_server, structured="json_schema")
    run = Trajectory(task=Task(text="take a pen"), success=True, reward=1.0,
                     steps=[Step(action="go to desk 1", observation="On the desk 1, you see a pen 1."),
                            Step(action="take pen 1 from desk 1", observation="You pick up the pen 1.")])
    procedure = ScriptBuilder(llm=client, mode="two_stage").build(run)
    assert procedure.summary == "fetch the pen" and len(procedure.script) == 2
    first, second = (r["body"]["response_format"]["json_schema"] for r in fault_server.state.chat_requests)
    assert first["name"] == "Events" and first["schema"]["properties"]["events"]["maxItems"] == 2
    assert second["name"] == "Critical"


def test_an_invalid_reply_under_structured_output_still_fails_cleanly(fault_server: FaultServer) -> None:
    # A server that accepts the schema but ignores it: the old parse + re-ask path decides.
    fault_server.state.default_text = "I cannot do that."
    client = client_for(fault_server, structured="json_schema")
    with pytest.raises(LLMOutputError, match="no usable JSON after 2 tries"):
        LLMKeywordExtractor(client).extract(Task(text="heat an egg"))
    assert all("response_format" in r["body"] for r in fault_server.state.chat_requests)
