"""What the chat client and the embedder share: where the endpoint is, and how calls to it fail.

* ``Endpoint.resolve`` reads arguments, then ``MEMP_LLM_*`` variables, then ``OPENAI_API_KEY``.
* ``RetryPolicy`` decides how long to wait before the next attempt: exponential backoff with jitter
  from a seedable RNG (so tests are deterministic), or the server's Retry-After when it sends one.
* ``translate`` turns an ``openai`` SDK exception into the memp error that says what to fix, or
  into ``None`` when the failure is transient and worth another attempt.

The SDK's own retries are switched off (``max_retries=0``): ours are visible, counted and testable.
"""

from __future__ import annotations

import email.utils
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field

import openai

from memp._errors import LLMError
from memp.llm.errors import (
    LLMAuthError,
    LLMConfigError,
    LLMContextLengthError,
    LLMModelNotFoundError,
    LLMRequestError,
)

ENV_BASE_URL = "MEMP_LLM_BASE_URL"
ENV_MODEL = "MEMP_LLM_MODEL"
ENV_API_KEY = "MEMP_LLM_API_KEY"
ENV_EMBED_MODEL = "MEMP_EMBED_MODEL"
OPENAI_BASE_URL = "https://api.openai.com/v1"

# Local servers (llama.cpp, vLLM, Ollama) ignore the key, but the SDK refuses an empty one.
_PLACEHOLDER_KEY = "not-needed"

_HOW_TO_CONFIGURE = (
    f"set {ENV_BASE_URL} (e.g. http://127.0.0.1:8080/v1 for a local llama.cpp, vLLM or Ollama server) "
    f"or pass --llm-base-url; to use OpenAI itself, set OPENAI_API_KEY"
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str
    api_key: str = field(repr=False)  # never in logs or tracebacks
    model: str | None = None

    @classmethod
    def resolve(
        cls,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        model_env: str = ENV_MODEL,
        require_model: bool = True,
    ) -> Endpoint:
        """Fill what the caller left out from the environment; raise LLMConfigError if it stays empty."""
        base_url = base_url or os.environ.get(ENV_BASE_URL) or None
        api_key = api_key or os.environ.get(ENV_API_KEY) or os.environ.get("OPENAI_API_KEY") or None
        model = model or os.environ.get(model_env) or None
        if base_url is None:
            if api_key is None:
                raise LLMConfigError(f"no LLM endpoint configured: {_HOW_TO_CONFIGURE}")
            base_url = OPENAI_BASE_URL  # a key with no URL means OpenAI, as with the SDK itself
        if not re.match(r"^https?://", base_url):
            raise LLMConfigError(
                f"LLM base URL {base_url!r} must start with http:// or https:// "
                "and usually ends in /v1, e.g. http://127.0.0.1:8080/v1"
            )
        if require_model and not model:
            raise LLMConfigError(
                f"no model name configured for {base_url}: set {model_env} or pass --llm-model "
                "(`memp llm check` lists the models the server offers)"
            )
        return cls(base_url=base_url.rstrip("/"), api_key=api_key or _PLACEHOLDER_KEY, model=model)


@dataclass(slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``max_retries`` extra attempts after the first."""

    max_retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    # Waiting longer than this for a Retry-After is rarely what a batch experiment wants.
    max_retry_after: float = 120.0
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise LLMConfigError("retry settings must not be negative")
        self._rng = random.Random(self.seed)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        with self._lock:  # random.Random is not safe to share between threads
            jitter = self._rng.uniform(0.0, ceiling / 2)
        # "Equal jitter": never less than half the backoff, so retries still back off.
        return ceiling / 2 + jitter


def retry_after_seconds(headers: object) -> float | None:
    """Read ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date) from response headers."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    millis = get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # neither seconds nor a date: fall back to our own backoff
    return max(0.0, parsed.timestamp() - time.time())


_CONTEXT_PATTERNS = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|exceed.*context|prompt is too long",
    re.IGNORECASE,
)


def _server_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("detail"):
            return str(body["detail"])
    return err.message


def translate(err: Exception, endpoint: Endpoint, model: str | None) -> LLMError | None:
    """The memp error for a permanent failure, or None for one worth retrying."""
    if isinstance(err, (openai.APITimeoutError, openai.APIConnectionError)):
        return None  # APITimeoutError is a subclass of APIConnectionError; both are transient
    if isinstance(err, openai.APIResponseValidationError):
        return None  # a garbled body is more often a proxy hiccup than a stable answer
    if not isinstance(err, openai.APIStatusError):
        return None
    status = err.status_code
    detail = _server_message(err)
    where = endpoint.base_url
    if status in (408, 409, 425, 429) or status >= 500:
        return None
    if status in (401, 403):
        return LLMAuthError(
            f"{where} refused the API key (HTTP {status}: {detail}); "
            f"set {ENV_API_KEY} or OPENAI_API_KEY to a valid key, or pass --llm-api-key"
        )
    if status == 404:
        return LLMModelNotFoundError(
            f"{where} does not serve model {model!r} (HTTP 404: {detail}); "
            f"set {ENV_MODEL} or --llm-model to one it lists (see `memp llm check`), "
            "and check that the base URL ends in /v1"
        )
    if _CONTEXT_PATTERNS.search(detail):
        return LLMContextLengthError(
            f"the prompt does not fit model {model!r}'s context window ({detail}); "
            "shorten it (fewer retrieved procedures or few-shot examples), lower max_tokens, "
            "or serve the model with a larger context"
        )
    return LLMRequestError(f"{where} rejected the request (HTTP {status}: {detail})")


def describe_transient(err: Exception) -> str:
    if isinstance(err, openai.APITimeoutError):
        return "timed out"
    if isinstance(err, openai.APIConnectionError):
        return f"could not connect ({err.__cause__ or err})"
    if isinstance(err, openai.APIStatusError):
        return f"HTTP {err.status_code}: {_server_message(err)}"
    if isinstance(err, openai.APIResponseValidationError):
        return "answered with a body that is not an OpenAI response"
    return f"{type(err).__name__}: {err}"


def retry_after_of(err: Exception) -> float | None:
    if isinstance(err, openai.APIStatusError):
        return retry_after_seconds(err.response.headers)
    return None


__all__ = [
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_EMBED_MODEL",
    "ENV_MODEL",
    "Endpoint",
    "RetryPolicy",
    "describe_transient",
    "retry_after_of",
    "retry_after_seconds",
    "translate",
]
