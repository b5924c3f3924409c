"""Keyword ("fact") extraction for AveFact retrieval: task text -> {action, object, target, ...}.

Environments that know their task structure put it in ``Task.keywords``; both extractors return
those unchanged. Otherwise ``RuleKeywordExtractor`` reads the sentence shape (verbs open clauses,
determiners open noun phrases, prepositions introduce the target) and ``LLMKeywordExtractor``
asks a model with the ``keywords`` prompt.
"""

from __future__ import annotations

import re
from typing import Protocol

from memp import prompts
from memp.llm import LLM
from memp.types import Task

DETERMINERS = {"a", "an", "the", "some", "any", "two", "three", "one", "both", "all", "my", "your"}
PREPOSITIONS = {"in", "on", "into", "onto", "to", "under", "with", "from", "at", "near", "inside",
                "for", "by", "of", "over", "below", "above", "beside", "within"}
PRONOUNS = {"it", "them", "this", "that", "these", "those", "him", "her"}
FILLER = {"please", "then", "and", "you", "can", "could", "would", "need", "want", "i", "we",
          "your", "task", "is", "to", "be", "also", "just", "so", "up", "down", "out", "back"}
NUMBER_WORDS = {"two", "three", "both"}


class KeywordExtractor(Protocol):
    def extract(self, task: Task) -> dict[str, str]:
        ...


def _clauses(text: str) -> list[list[str]]:
    text = text.lower()
    text = re.sub(r"^your task is to[:\s]*", "", text)
    words = re.findall(r"[a-z0-9][a-z0-9_\-']*", text)
    clauses, current = [], []
    for w in words:
        if w in {"and", "then"}:
            if current:
                clauses.append(current)
            current = []
        else:
            current.append(w)
    if current:
        clauses.append(current)
    return clauses


def _noun_phrase(words: list[str], start: int) -> tuple[list[str], list[str], int]:
    """Read a noun phrase from words[start:]: (modifiers, head words, next index)."""
    mods, phrase, i = [], [], start
    while i < len(words) and words[i] in DETERMINERS:
        if words[i] in NUMBER_WORDS:
            mods.append(words[i])
        i += 1
    while i < len(words) and words[i] not in PREPOSITIONS and words[i] not in {"and", "then"}:
        phrase.append(words[i])
        i += 1
    if len(phrase) > 1:
        # Without a lexicon, the last word is the best guess at the head noun.
        mods += phrase[:-1]
        phrase = phrase[-1:]
    return mods, phrase, i


class RuleKeywordExtractor:
    """LLM-free keywords from the shape of an imperative sentence."""

    def extract(self, task: Task) -> dict[str, str]:
        if task.keywords:
            return dict(task.keywords)
        verbs: list[str] = []
        modifiers: list[str] = []
        nouns: list[str] = []
        target = ""
        for words in _clauses(task.text):
            words = [w for w in words if w not in FILLER or w in PREPOSITIONS]
            if not words:
                continue
            verbs.append(words[0])
            i = 1
            while i < len(words):
                if words[i] in PREPOSITIONS:
                    mods, head, i = _noun_phrase(words, i + 1)
                    if head and head[0] not in PRONOUNS:
                        if nouns:
                            target = head[0]
                        else:
                            nouns.append(head[0])
                            modifiers += mods
                    continue
                mods, head, i = _noun_phrase(words, i)
                if head and head[0] not in PRONOUNS:
                    nouns.append(head[0])
                    modifiers += mods
        out: dict[str, str] = {}
        if verbs:
            out["action"] = " ".join(dict.fromkeys(verbs))
        if nouns:
            out["object"] = nouns[0]
        if target and target != out.get("object"):
            out["target"] = target
        elif len(nouns) > 1 and nouns[-1] != nouns[0]:
            out["target"] = nouns[-1]
        mods = [m for m in dict.fromkeys(modifiers) if m not in out.values()]
        if mods:
            out["modifier"] = " ".join(mods)
        return out


class LLMKeywordExtractor:
    """Keywords from a model, as a flat JSON object of short strings."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    def extract(self, task: Task) -> dict[str, str]:
        if task.keywords:
            return dict(task.keywords)
        from memp.llm.parse import complete_json
        from memp.llm.schemas import Keywords

        messages = prompts.render("keywords", task=task.text)
        return complete_json(self.llm, messages, validate=_validate_keywords, schema=Keywords)


def _validate_keywords(data: object) -> dict[str, str]:
    if not isinstance(data, dict) or not data:
        raise ValueError("expected a non-empty JSON object of keyword -> value")
    out = {}
    for key, value in data.items():
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if value is None or str(value).strip() == "":
            continue
        out[str(key).strip().lower()] = str(value).strip().lower()
    if not out:
        raise ValueError("every keyword value was empty")
    return out
