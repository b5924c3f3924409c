"""Getting JSON out of what a model actually says.

Models wrap JSON in code fences, preface it with "Sure! Here is...", append explanations, or
leave a trailing comma. ``extract_json`` tries, in order: the whole reply, each fenced block, then
every ``{`` or ``[`` from which a complete JSON value decodes. ``complete_json`` asks, validates,
and re-asks once with the reason before giving up with ``LLMOutputError``.

Given the reply's ``schema`` (``memp.llm.schemas``), ``complete_json`` also hands it to a client
that can have the server constrain decoding to it; the parse and the re-ask stay, for endpoints
that constrain nothing.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from memp._errors import LLMOutputError
from memp.llm import LLM, Message
from memp.llm.schemas import Constraint, ReplySchema

T = TypeVar("T")

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"'})
# strict=False: a raw newline or tab inside a string is a common slip, and its meaning is plain.
_DECODER = json.JSONDecoder(strict=False)

REASK_MESSAGE = (
    "Your previous reply could not be used: {reason}\n"
    "Answer again with only the JSON value, no explanation and no code fence."
)


def _excerpt(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _variants(candidate: str) -> Iterator[str]:
    """The candidate, then light repairs of common model slips."""
    yield candidate
    repaired = _TRAILING_COMMA.sub(r"\1", candidate.translate(_SMART_QUOTES))
    if repaired != candidate:
        yield repaired


def _decode_prefix(text: str, start: int) -> Any:
    """Decode the JSON value starting at ``start``, ignoring whatever follows it."""
    for variant in _variants(text[start:]):
        try:
            value, _end = _DECODER.raw_decode(variant)
            return value
        except json.JSONDecodeError:
            continue
    raise json.JSONDecodeError("no JSON value", text, start)


def _candidates(text: str) -> Iterator[str]:
    yield text.strip()
    for match in _FENCE.finditer(text):
        yield match.group(2).strip()
    # An unclosed fence (the model ran out of tokens, or forgot): take what follows it.
    opened = re.search(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n", text)
    if opened and text.count("```") % 2 == 1:
        yield text[opened.end() :].strip()


def extract_json(text: str, *, expect: type | tuple[type, ...] = (dict, list)) -> Any:
    """The first JSON value of type ``expect`` (objects or arrays by default) found in ``text``.

    Raises ``LLMOutputError`` quoting the start of the reply when there is none.
    """
    if not isinstance(text, str):
        raise LLMOutputError(f"expected the model's reply as text, got {type(text).__name__}")
    for candidate in _candidates(text):
        for variant in _variants(candidate):
            try:
                value = _DECODER.decode(variant)
            except json.JSONDecodeError:
                continue
            if isinstance(value, expect):
                return value
        # Chatty reply: try each opening bracket, leftmost first, so an outer object wins
        # over the objects nested inside it.
        for match in re.finditer(r"[{\[]", candidate):
            try:
                value = _decode_prefix(candidate, match.start())
            except json.JSONDecodeError:
                continue
            if isinstance(value, expect):
                return value
    names = " or ".join(t.__name__ for t in (expect if isinstance(expect, tuple) else (expect,)))
    raise LLMOutputError(f"no JSON {names} found in the model's reply: {_excerpt(text)!r}")


# What a validator may raise to reject a parsed value (pydantic's ValidationError is a ValueError).
_REJECTIONS = (LLMOutputError, ValueError, TypeError, KeyError)


def complete_json(
    llm: LLM,
    messages: list[Message],
    validate: Callable[[Any], T] | None = None,
    *,
    expect: type | tuple[type, ...] = (dict, list),
    temperature: float = 0.0,
    max_tokens: int | None = None,
    reasks: int = 1,
    schema: type | ReplySchema | None = None,
) -> T | Any:
    """Ask ``llm`` for JSON; return ``validate(value)`` (or the value when no validator).

    ``validate`` rejects by raising ``ValueError``, ``TypeError``, ``KeyError`` or
    ``LLMOutputError``; its message goes back to the model in the re-ask. After ``reasks`` failed
    re-asks, raises ``LLMOutputError``. Nothing else happens here: keeping memory unchanged on
    failure is the caller's job (do the call before writing anything).

    ``schema`` (a pydantic model or a ``ReplySchema``) is sent to an LLM whose ``complete``
    takes a ``constraint`` (``OpenAIClient`` does); other LLMs are asked as before.
    """
    conversation = list(messages)
    reasons: list[str] = []
    extra: dict[str, Any] = {}
    if schema is not None and accepts_constraint(llm):
        extra["constraint"] = schema if isinstance(schema, ReplySchema) else ReplySchema.of(schema)
    for _ in range(reasks + 1):
        reply = llm.complete(conversation, temperature=temperature, max_tokens=max_tokens, **extra)
        try:
            value = extract_json(reply, expect=expect)
            return validate(value) if validate is not None else value
        except _REJECTIONS as err:
            reason = str(err) or type(err).__name__
            reasons.append(reason)
            conversation = [
                *conversation,
                {"role": "assistant", "content": reply},
                {"role": "user", "content": REASK_MESSAGE.format(reason=reason)},
            ]
    model = getattr(llm, "model", "the model")
    raise LLMOutputError(
        f"{model} gave no usable JSON after {len(reasons)} tries ({'; then '.join(reasons)}); "
        "try a larger model or a lower temperature"
    )


def accepts_constraint(llm: object) -> bool:
    """Whether ``llm.complete`` takes ``constraint=`` (a ``memp.llm.schemas.Constraint``)."""
    try:
        parameters = inspect.signature(llm.complete).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    return "constraint" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


__all__ = ["REASK_MESSAGE", "Constraint", "accepts_constraint", "complete_json", "extract_json"]
