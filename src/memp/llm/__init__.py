"""The one door to language models.

Everything in memp that needs a model (script building, keyword extraction, adjustment, agents,
trip planning) takes an object satisfying the small ``LLM`` protocol below. The production
implementation is the OpenAI-compatible client; tests may pass any object with ``complete``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@runtime_checkable
class LLM(Protocol):
    """Anything that turns chat messages into a reply."""

    model: str

    def complete(
        self,
        messages: list[Message],
        *,
        temperature: float = 0.0,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
    ) -> str:
        """Return the assistant's reply text; raise ``memp.LLMError`` when the call fails."""
        ...


__all__ = ["LLM", "Message"]
