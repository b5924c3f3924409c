from __future__ import annotations

import pytest

from memp._errors import LLMOutputError
from memp.llm.parse import REASK_MESSAGE, complete_json, extract_json


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ("  [1, 2, 3]\n", [1, 2, 3]),
        ('```json\n{"keywords": ["apple", "fridge"]}\n```', {"keywords": ["apple", "fridge"]}),
        ('Sure! Here you go:\n```\n{"a": [1, {"b": 2}]}\n```\nHope that helps.', {"a": [1, {"b": 2}]}),
        (
            'The answer is {"task": "heat", "object": "apple"} as requested.',
            {"task": "heat", "object": "apple"},
        ),
        ('Keywords: ["mug", "coffeemachine"]. Done.', ["mug", "coffeemachine"]),
        ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}),
        ("\u201ca\u201d is not json but {\u201ckey\u201d: 1} is close", {"key": 1}),
        ('```json\n{"unterminated": "fence"}', {"unterminated": "fence"}),
        ('Nested: {"outer": {"inner": 1}} trailing {"x": 2}', {"outer": {"inner": 1}}),
        ('{broken then {"ok": true}', {"ok": True}),
    ],
)
def test_extract_json_finds_the_value(reply: str, expected: object) -> None:
    assert extract_json(reply) == expected


@pytest.mark.parametrize("reply", ["", "no json here", "{not: json}", "[1, 2", "42", '"just a string"'])
def test_extract_json_rejects_replies_without_an_object_or_array(reply: str) -> None:
    with pytest.raises(LLMOutputError, match="no JSON"):
        extract_json(reply)


def test_extract_json_expect_narrows_the_type() -> None:
    assert extract_json('[1] and {"a": 1}', expect=dict) == {"a": 1}
    with pytest.raises(LLMOutputError, match="no JSON list"):
        extract_json('{"a": 1}', expect=list)


def test_extract_json_error_quotes_a_short_excerpt() -> None:
    with pytest.raises(LLMOutputError) as info:
        extract_json("word " * 500)
    assert len(str(info.value)) < 300


class ScriptedLLM:
    model = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.seen: list[list[dict[str, str]]] = []

    def complete(self, messages, *, temperature=0.0, max_tokens=None, stop=None):
        self.seen.append(list(messages))
        return self.replies.pop(0)


def test_complete_json_returns_on_first_good_reply() -> None:
    llm = ScriptedLLM('```json\n{"k": ["a"]}\n```')
    assert complete_json(llm, [{"role": "user", "content": "go"}]) == {"k": ["a"]}
    assert len(llm.seen) == 1


def test_complete_json_reasks_once_with_the_reason() -> None:
    llm = ScriptedLLM("I think the keywords are apple and fridge.", '{"k": ["apple"]}')
    assert complete_json(llm, [{"role": "user", "content": "go"}]) == {"k": ["apple"]}
    second = llm.seen[1]
    assert second[1] == {"role": "assistant", "content": "I think the keywords are apple and fridge."}
    assert second[2]["role"] == "user"
    assert second[2]["content"].startswith(REASK_MESSAGE.split("{")[0])
    assert "no JSON" in second[2]["content"]


def test_complete_json_uses_the_validator_result_and_its_rejections() -> None:
    def validate(value: object) -> list[str]:
        if not isinstance(value, dict) or not isinstance(value.get("k"), list):
            raise ValueError("expected an object with a list under 'k'")
        return [str(v) for v in value["k"]]

    llm = ScriptedLLM('{"wrong": 1}', '{"k": [1, 2]}')
    assert complete_json(llm, [{"role": "user", "content": "go"}], validate=validate) == ["1", "2"]
    assert "expected an object with a list" in llm.seen[1][2]["content"]


def test_complete_json_gives_up_after_one_reask() -> None:
    llm = ScriptedLLM("nope", "still nope", "never asked")
    with pytest.raises(LLMOutputError, match="after 2 tries"):
        complete_json(llm, [{"role": "user", "content": "go"}])
    assert len(llm.seen) == 2
    assert llm.replies == ["never asked"]


def test_complete_json_does_not_mutate_the_callers_messages() -> None:
    messages = [{"role": "user", "content": "go"}]
    with pytest.raises(LLMOutputError):
        complete_json(ScriptedLLM("x", "y"), messages)
    assert messages == [{"role": "user", "content": "go"}]
