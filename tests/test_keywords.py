import json

import pytest

from memp import LLMOutputError
from memp.keywords import LLMKeywordExtractor, RuleKeywordExtractor
from memp.types import Task


@pytest.mark.parametrize("text, expected", [
    ("put a clean apple in fridge.", {"action": "put", "object": "apple", "target": "fridge", "modifier": "clean"}),
    ("clean some apple and put it in fridge.", {"action": "clean put", "object": "apple", "target": "fridge"}),
    ("put a hot egg in countertop.", {"action": "put", "object": "egg", "target": "countertop", "modifier": "hot"}),
    ("cool some mug and put it in coffeemachine.", {"action": "cool put", "object": "mug", "target": "coffeemachine"}),
    ("look at bowl under the desklamp.", {"action": "look", "object": "bowl", "target": "desklamp"}),
    ("examine the alarmclock with the desklamp.", {"action": "examine", "object": "alarmclock", "target": "desklamp"}),
    ("find two soapbar and put them in garbagecan.",
     {"action": "find put", "object": "soapbar", "target": "garbagecan", "modifier": "two"}),
    ("Your task is to: put some spraybottle on toilet.", {"action": "put", "object": "spraybottle", "target": "toilet"}),
])
def test_rule_extractor_reads_sentence_shape(text, expected):
    assert RuleKeywordExtractor().extract(Task(text=text)) == expected


def test_environment_keywords_win():
    task = Task(text="plan a trip", keywords={"days": "3"})
    assert RuleKeywordExtractor().extract(task) == {"days": "3"}


def test_llm_extractor_normalises_reply(scripted_llm):
    llm = scripted_llm(['Here you go: {"Action": "Heat Put", "object": "Egg", "target": ["counter", "top"], "modifier": ""}'])
    out = LLMKeywordExtractor(llm).extract(Task(text="heat some egg and put it in countertop."))
    assert out == {"action": "heat put", "object": "egg", "target": "counter top"}
    assert "heat some egg" in llm.calls[0][-1]["content"]


def test_llm_extractor_rejects_empty_objects(scripted_llm):
    llm = scripted_llm([json.dumps({}), json.dumps({"action": ""})])
    with pytest.raises(LLMOutputError):
        LLMKeywordExtractor(llm).extract(Task(text="x"))
