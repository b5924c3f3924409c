"""The ways a call to an OpenAI-compatible endpoint can fail, each with the fix in its message.

LLMError (memp._errors)
├── LLMConfigError          nothing (or something impossible) configured; raised before any call
├── LLMAuthError            401/403: the key is wrong or lacks access
├── LLMModelNotFoundError   404: the server does not know that model name
├── LLMContextLengthError   400 saying the prompt is longer than the model's context
├── LLMRequestError         any other 4xx: the request itself is wrong
└── LLMUnavailableError     429, 5xx, timeouts, refused connections, malformed responses:
                            still failing after the last retry
"""

from __future__ import annotations

from memp._errors import LLMError


class LLMConfigError(LLMError):
    """No endpoint or model configured, or an option out of range."""


class LLMAuthError(LLMError):
    """The server refused the API key."""


class LLMModelNotFoundError(LLMError):
    """The server does not serve the requested model."""


class LLMContextLengthError(LLMError):
    """The prompt (plus max_tokens) does not fit the model's context window."""


class LLMRequestError(LLMError):
    """The server rejected the request as malformed (a 4xx other than the ones above)."""


class LLMUnavailableError(LLMError):
    """The endpoint kept failing with transient errors until the retries ran out."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


__all__ = [
    "LLMAuthError",
    "LLMConfigError",
    "LLMContextLengthError",
    "LLMModelNotFoundError",
    "LLMRequestError",
    "LLMUnavailableError",
]
