"""``OpenAIClient``: the one chat client, for OpenAI, vLLM, Ollama, llama.cpp or any compatible server.

Sync (``complete``) and async (``acomplete``) paths share the retry policy, the response cache, the
usage meter and one concurrency limit per path. Retries are ours, not the SDK's (see endpoint.py).

Structured output: a call may carry a ``constraint`` (``memp.llm.schemas``: a reply's JSON schema,
or a grammar). ``structured`` says how to send it: ``json_schema`` (OpenAI's ``response_format``,
else llama-cpp-python's ``json_object`` + ``schema`` dialect), ``grammar`` (a GBNF ``grammar``
field that memp compiles from the schema, for llama.cpp), ``off``, or ``auto``: OpenAI's form, then
the grammar, then the ``json_object`` dialect, until the endpoint accepts one,
remembered for the client's life; a form the endpoint refuses is never sent again, and when it
refuses all of them the call goes out unconstrained, as before structured output existed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from memp.llm import Message
from memp.llm.cache import CachedResponse, ResponseCache, cache_key
from memp.llm.endpoint import (
    Endpoint,
    RetryPolicy,
    describe_transient,
    retry_after_of,
    translate,
)
from memp.llm.errors import LLMConfigError, LLMRequestError, LLMUnavailableError
from memp.llm.schemas import Constraint, Grammar, ReplySchema
from memp.llm.usage import PriceTable, Usage, UsageMeter, UsageScope, call_cost


# A 200 whose body is not a chat completion; treated like a 5xx (retried, then reported).
class _MalformedResponse(Exception):
    pass


ENV_STRUCTURED = "MEMP_LLM_STRUCTURED"
STRUCTURED_MODES = ("auto", "json_schema", "grammar", "off")
# The wire forms each mode may use for a JSON schema, in the order tried. memp's own grammar comes
# before llama-cpp-python's json_object + schema: the grammar that server derives from a schema lets
# raw newlines into strings, which is not JSON.
_SCHEMA_FORMS = {
    "auto": ("json_schema", "grammar", "json_object"),
    "json_schema": ("json_schema", "json_object"),
    "grammar": ("grammar",),
    "off": (),
}
# How a server says it does not know a field: 400/422, or llama-cpp-python's 500 for a body that
# fails its request validation.
_REFUSAL = re.compile(r"response_format|json_schema|json_object|grammar|validation error|extra_forbidden",
                      re.IGNORECASE)


class _Refused(Exception):
    """The endpoint rejected the structured-output form of the request."""

    def __init__(self, form: str, detail: str) -> None:
        super().__init__(detail)
        self.form = form
        self.detail = detail


def _wire_form(form: str, constraint: Constraint) -> dict[str, Any]:
    """The request fields that carry ``constraint`` in ``form``."""
    if isinstance(constraint, Grammar):
        return {"grammar": constraint.gbnf}
    if form == "json_schema":
        schema = {"name": constraint.name, "schema": constraint.strict_schema(), "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    if form == "json_object":
        return {"response_format": {"type": "json_object", "schema": constraint.schema}}
    return {"grammar": constraint.grammar()}


def resolve_structured(mode: str | None) -> str:
    """The structured-output mode: the argument, else ``MEMP_LLM_STRUCTURED``, else ``auto``."""
    mode = (mode or os.environ.get(ENV_STRUCTURED) or "auto").strip().lower().replace("-", "_")
    if mode not in STRUCTURED_MODES:
        raise LLMConfigError(
            f"structured output mode {mode!r} is not one of {', '.join(STRUCTURED_MODES)} "
            f"(--llm-structured or {ENV_STRUCTURED})"
        )
    return mode


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer with its bookkeeping; ``complete`` returns just ``text``."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    cached: bool
    attempts: int  # 0 for a cache hit
    structured: str | None = None  # the form that carried the constraint; None: unconstrained


def _check_messages(messages: list[Message]) -> list[Message]:
    if not messages:
        raise LLMConfigError("messages is empty: pass at least one {'role': ..., 'content': ...}")
    for message in messages:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise LLMConfigError(f"each message needs 'role' and 'content', got {message!r}")
    return [dict(m) for m in messages]


def _parse(response: Any) -> tuple[str, int, int, str | None]:
    choices = getattr(response, "choices", None)
    if not choices:
        raise _MalformedResponse("no choices in the response")
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    if not isinstance(text, str):
        raise _MalformedResponse("the first choice has no text content")
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    return text, prompt, completion, getattr(choices[0], "finish_reason", None)


class OpenAIClient:
    """Satisfies the ``memp.llm.LLM`` protocol.

    Arguments left as ``None`` come from ``MEMP_LLM_BASE_URL``, ``MEMP_LLM_MODEL`` and
    ``MEMP_LLM_API_KEY`` (or ``OPENAI_API_KEY``). ``cache`` is a path or a ``ResponseCache``;
    ``prices`` maps model names to ``Price`` (dollars per million tokens).
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        seed: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_seed: int | None = None,
        concurrency: int = 8,
        cache: str | Path | ResponseCache | None = None,
        prices: PriceTable | None = None,
        sleep: Callable[[float], None] = time.sleep,
        structured: str | None = None,
    ) -> None:
        self.endpoint = Endpoint.resolve(base_url, model, api_key)
        self.model: str = self.endpoint.model  # type: ignore[assignment]  # resolve() guarantees it
        if concurrency < 1:
            raise LLMConfigError(f"concurrency must be at least 1, got {concurrency}")
        if timeout <= 0:
            raise LLMConfigError(f"timeout must be positive seconds, got {timeout}")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.timeout = timeout
        self.concurrency = concurrency
        self.retry = RetryPolicy(
            max_retries=max_retries, base_delay=backoff_base, max_delay=backoff_max, seed=retry_seed
        )
        self.cache = ResponseCache(cache) if isinstance(cache, (str, Path)) else cache
        self.prices = prices
        self.structured = resolve_structured(structured)
        self.refused: dict[str, str] = {}  # wire form -> why the endpoint refused it
        self.meter = UsageMeter()
        self._sleep = sleep
        self._sync = openai.OpenAI(
            base_url=self.endpoint.base_url, api_key=self.endpoint.api_key, timeout=timeout, max_retries=0
        )
        self._thread_limit = threading.BoundedSemaphore(concurrency)
        # The async SDK client and semaphore belong to one event loop; rebuilt if the loop changes
        # (each asyncio.run() makes a new loop).
        self._async: tuple[asyncio.AbstractEventLoop, openai.AsyncOpenAI, asyncio.Semaphore] | None = None

    # ---- accounting -------------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Everything this client has consumed so far (a snapshot)."""
        return self.meter.total

    def scope(self, name: str | None = None) -> contextlib.AbstractContextManager[UsageScope]:
        """``with client.scope("episode-3") as s: ...; s.usage`` — see ``UsageMeter.scope``."""
        return self.meter.scope(name)

    # ---- the protocol -----------------------------------------------------------------------

    def complete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        seed: int | None = None,
        constraint: Constraint | None = None,
    ) -> str:
        return self.chat(messages, temperature=temperature, max_tokens=max_tokens, stop=stop, seed=seed,
                         constraint=constraint).text

    async def acomplete(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        seed: int | None = None,
        constraint: Constraint | None = None,
    ) -> str:
        completion = await self.achat(
            messages, temperature=temperature, max_tokens=max_tokens, stop=stop, seed=seed,
            constraint=constraint,
        )
        return completion.text

    # ---- with bookkeeping -------------------------------------------------------------------

    def _request(
        self,
        messages: list[Message],
        temperature: float | None,
        max_tokens: int | None,
        stop: list[str] | None,
        seed: int | None,
        constraint: Constraint | None = None,
    ) -> tuple[dict[str, Any], str | None]:
        params: dict[str, Any] = {
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
            "stop": list(stop) if stop else None,
            "seed": self.seed if seed is None else seed,
        }
        keyed = dict(params)
        if constraint is not None and self.structured != "off":  # a constrained answer differs
            keyed["constraint"] = [self.structured, constraint.canonical]
        key = cache_key(self.model, messages, keyed) if self.cache is not None else None
        # The wire request omits unset options: some servers reject explicit nulls.
        body = {k: v for k, v in params.items() if v is not None}
        return body, key

    def _from_cache(self, key: str | None) -> Completion | None:
        if key is None or self.cache is None:
            return None
        hit = self.cache.get(key)
        if hit is None:
            return None
        self.meter.record(
            Usage(
                calls=1,
                cache_hits=1,
                prompt_tokens=hit.prompt_tokens,
                completion_tokens=hit.completion_tokens,
            )
        )
        return Completion(
            hit.text, self.model, hit.prompt_tokens, hit.completion_tokens, hit.finish_reason, True, 0
        )

    def _finish(self, key: str | None, response: Any, attempts: int, form: str | None = None) -> Completion:
        text, prompt, completion, finish = _parse(response)
        if key is not None and self.cache is not None:
            self.cache.put(key, self.model, CachedResponse(text, prompt, completion, finish))
        self.meter.record(
            Usage(
                calls=1,
                network_calls=1,
                retries=attempts - 1,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd=call_cost(self.model, prompt, completion, self.prices),
            )
        )
        return Completion(text, self.model, prompt, completion, finish, False, attempts, form)

    # ---- structured output ------------------------------------------------------------------

    def _form(self, constraint: Constraint | None) -> str | None:
        """The wire form to try next for ``constraint``; None sends the call unconstrained."""
        if constraint is None:
            return None
        if isinstance(constraint, Grammar):
            forms: tuple[str, ...] = ("grammar",) if self.structured in ("auto", "grammar") else ()
        else:
            forms = _SCHEMA_FORMS[self.structured]
        return next((f for f in forms if f not in self.refused), None)

    def _body(self, body: dict[str, Any], form: str | None, constraint: Constraint | None) -> dict[str, Any]:
        if form is None or constraint is None:
            return body
        # extra_body: the SDK sends these fields as they are, whatever its own types say.
        return {**body, "extra_body": _wire_form(form, constraint)}

    def _refusal(self, form: str | None, err: Exception) -> _Refused | None:
        """A ``_Refused`` when ``err`` is the endpoint rejecting the structured-output form."""
        if form is None or not isinstance(err, openai.APIStatusError):
            return None
        status, detail = err.status_code, describe_transient(err)
        # A 400 or 500 for another reason (a context overflow, a crash) is not the form's fault.
        if status == 422 or (status in (400, 500) and _REFUSAL.search(detail)):
            return _Refused(form, detail)
        return None

    def _refuse(self, refused: _Refused, constraint: Constraint | None) -> None:
        """Remember the refusal; raise when the mode leaves no form and was asked for explicitly."""
        self.refused[refused.form] = refused.detail
        if self._form(constraint) is None and self.structured != "auto":
            tried = "; ".join(f"{form}: {why}" for form, why in self.refused.items())
            raise LLMRequestError(
                f"{self.endpoint.base_url} does not accept structured output as "
                f"--llm-structured {self.structured} asks ({tried}); use --llm-structured auto "
                "to fall back to what it supports, or off"
            ) from None

    def _give_up(self, attempts: int, err: Exception) -> LLMUnavailableError:
        self.meter.record(Usage(retries=attempts - 1))
        return LLMUnavailableError(
            f"{self.endpoint.base_url} (model {self.model!r}) {describe_transient(err)}, "
            f"still after {attempts} attempts; check that the server is up and not overloaded, "
            "or raise the timeout / retry count",
            attempts=attempts,
        )

    def _attempts(self) -> Iterator[int]:
        return iter(range(1, self.retry.max_retries + 2))

    def chat(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        seed: int | None = None,
        constraint: Constraint | None = None,
    ) -> Completion:
        """Like ``complete``, but returns the answer with its tokens and whether it came from cache."""
        messages = _check_messages(messages)
        body, key = self._request(messages, temperature, max_tokens, stop, seed, constraint)
        if (hit := self._from_cache(key)) is not None:
            return hit
        while True:
            form = self._form(constraint)
            try:
                return self._send(messages, self._body(body, form, constraint), key, form)
            except _Refused as refused:
                self._refuse(refused, constraint)

    def _send(self, messages: list[Message], body: dict[str, Any], key: str | None,
              form: str | None) -> Completion:
        wire: Any = messages  # the SDK's TypedDict union; our dicts have the same shape
        for attempt in self._attempts():
            try:
                with self._thread_limit:
                    response = self._sync.chat.completions.create(model=self.model, messages=wire, **body)
                return self._finish(key, response, attempt, form)
            except (openai.OpenAIError, _MalformedResponse, json.JSONDecodeError) as err:
                if (refused := self._refusal(form, err)) is not None:
                    self.meter.record(Usage(retries=attempt - 1))
                    raise refused from err
                failure = translate(err, self.endpoint, self.model)
                if failure is not None:
                    self.meter.record(Usage(retries=attempt - 1))
                    raise failure from err
                if attempt > self.retry.max_retries:
                    raise self._give_up(attempt, err) from err
                self._sleep(self.retry.delay(attempt - 1, retry_after_of(err)))
        raise AssertionError("unreachable: the loop returns or raises")

    def _async_parts(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            client = openai.AsyncOpenAI(
                base_url=self.endpoint.base_url,
                api_key=self.endpoint.api_key,
                timeout=self.timeout,
                max_retries=0,
            )
            self._async = (loop, client, asyncio.Semaphore(self.concurrency))
        return self._async[1], self._async[2]

    async def achat(
        self,
        messages: list[Message],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        seed: int | None = None,
        constraint: Constraint | None = None,
    ) -> Completion:
        """Async ``chat``; at most ``concurrency`` requests of this client are in flight at once."""
        messages = _check_messages(messages)
        body, key = self._request(messages, temperature, max_tokens, stop, seed, constraint)
        if (hit := self._from_cache(key)) is not None:
            return hit
        while True:
            form = self._form(constraint)
            try:
                return await self._asend(messages, self._body(body, form, constraint), key, form)
            except _Refused as refused:
                self._refuse(refused, constraint)

    async def _asend(self, messages: list[Message], body: dict[str, Any], key: str | None,
                     form: str | None) -> Completion:
        wire: Any = messages  # the SDK's TypedDict union; our dicts have the same shape
        client, limit = self._async_parts()
        for attempt in self._attempts():
            try:
                # The wait between attempts happens outside the semaphore, so it frees a slot.
                async with limit:
                    response = await client.chat.completions.create(model=self.model, messages=wire, **body)
                return self._finish(key, response, attempt, form)
            except (openai.OpenAIError, _MalformedResponse, json.JSONDecodeError) as err:
                if (refused := self._refusal(form, err)) is not None:
                    self.meter.record(Usage(retries=attempt - 1))
                    raise refused from err
                failure = translate(err, self.endpoint, self.model)
                if failure is not None:
                    self.meter.record(Usage(retries=attempt - 1))
                    raise failure from err
                if attempt > self.retry.max_retries:
                    raise self._give_up(attempt, err) from err
                await asyncio.sleep(self.retry.delay(attempt - 1, retry_after_of(err)))
        raise AssertionError("unreachable: the loop returns or raises")

    def list_models(self) -> list[str]:
        """Model ids the endpoint lists (one attempt, no retries: meant for diagnostics)."""
        return list_models(self.endpoint, timeout=self.timeout)

    def close(self) -> None:
        self._sync.close()
        if self.cache is not None:
            self.cache.close()

    def __repr__(self) -> str:
        return f"OpenAIClient(model={self.model!r}, base_url={self.endpoint.base_url!r})"


def list_models(endpoint: Endpoint, *, timeout: float = 10.0) -> list[str]:
    """Ask ``GET /models``; raise the memp error that says what to fix when it fails."""
    client = openai.OpenAI(
        base_url=endpoint.base_url, api_key=endpoint.api_key, timeout=timeout, max_retries=0
    )
    try:
        return sorted(model.id for model in client.models.list())
    except (openai.OpenAIError, json.JSONDecodeError, AttributeError, TypeError) as err:
        failure = translate(err, endpoint, endpoint.model)
        if failure is not None:
            raise failure from err
        raise LLMUnavailableError(
            f"{endpoint.base_url} {describe_transient(err)}; check the URL (it usually ends in /v1) "
            "and that the server is running",
            attempts=1,
        ) from err
    finally:
        client.close()


__all__ = ["ENV_STRUCTURED", "STRUCTURED_MODES", "Completion", "OpenAIClient", "list_models",
           "resolve_structured"]
