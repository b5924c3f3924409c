"""The one door to language models.

Everything in memp that needs a model (script building, keyword extraction, adjustment, agents,
trip planning) takes an object satisfying the small ``LLM`` protocol below. The production
implementation is the OpenAI-compatible client; tests may pass any object with ``complete``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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


# The client needs the optional ``openai`` package (the ``llm`` extra), so it is imported on first
# use: ``from memp.llm import LLM`` must keep working without it.
_LAZY = {
    "OpenAIClient": "memp.llm.client",
    "Completion": "memp.llm.client",
    "list_models": "memp.llm.client",
    "OpenAIEmbedder": "memp.llm.embed_client",
    "ResponseCache": "memp.llm.cache",
    "Usage": "memp.llm.usage",
    "UsageScope": "memp.llm.usage",
    "Price": "memp.llm.usage",
    "usage_scope": "memp.llm.usage",
    "extract_json": "memp.llm.parse",
    "complete_json": "memp.llm.parse",
    "LLMConfigError": "memp.llm.errors",
    "LLMAuthError": "memp.llm.errors",
    "LLMModelNotFoundError": "memp.llm.errors",
    "LLMContextLengthError": "memp.llm.errors",
    "LLMRequestError": "memp.llm.errors",
    "LLMUnavailableError": "memp.llm.errors",
}

if TYPE_CHECKING:
    from memp.llm.cache import ResponseCache
    from memp.llm.client import Completion, OpenAIClient, list_models
    from memp.llm.embed_client import OpenAIEmbedder
    from memp.llm.errors import (
        LLMAuthError,
        LLMConfigError,
        LLMContextLengthError,
        LLMModelNotFoundError,
        LLMRequestError,
        LLMUnavailableError,
    )
    from memp.llm.parse import complete_json, extract_json
    from memp.llm.usage import Price, Usage, UsageScope, usage_scope


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'memp.llm' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == "openai":
            from memp.llm.errors import LLMConfigError

            raise LLMConfigError(
                f"memp.llm.{name} needs the 'openai' package: pip install 'memp[llm]'"
            ) from None
        raise
    return getattr(module, name)


__all__ = ["LLM", "Message", *sorted(_LAZY)]
