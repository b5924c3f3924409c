"""The LLM side of the paper suites: how a worker process gets its model client.

Settings travel to worker processes (they pickle); each process builds one client from them and
keeps it, so a process that plays many episodes opens one connection pool and one cache file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LLMSettings:
    """How each worker builds its own ``OpenAIClient`` for an LLM agent.

    Fields left ``None`` fall back to ``MEMP_LLM_*`` in the worker, as in the client. With
    ``cache`` set, every worker shares one on-disk response cache, so a rerun makes no network call.
    """

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    temperature: float = 0.0
    cache: str | None = None
    seed: int | None = 0
    timeout: float = 60.0
    # The agent's prompt budget and reply length depend on the model's context window.
    context_chars: int = 12000
    max_tokens: int | None = 96
    few_shot: bool = True  # the ALFWorld prompt's two examples cost ~1,200 tokens
    price: tuple[float, float] | None = None  # dollars per million (prompt, completion) tokens
    # How JSON replies are constrained (``--llm-structured``; None: MEMP_LLM_STRUCTURED, else auto).
    structured: str | None = None
    # ALFWorld: decode each Action as one of the admissible commands, where the server takes a grammar.
    constrain_actions: bool = False

    def check(self) -> None:
        """Raise the client's configuration error now, in the parent, not once per episode."""
        from memp.llm.client import resolve_structured
        from memp.llm.endpoint import Endpoint

        Endpoint.resolve(self.base_url, self.model, self.api_key)
        resolve_structured(self.structured)


_CLIENT: tuple[LLMSettings, Any] | None = None  # this process's client, with the settings it came from


def client_for(settings: LLMSettings):
    """This process's client for ``settings``, built on first use."""
    global _CLIENT
    if _CLIENT is None or _CLIENT[0] != settings:
        from memp.llm.options import client_from_options

        close_client()
        client = client_from_options(settings.base_url, settings.model, settings.api_key, settings.temperature,
                                     settings.cache, timeout=settings.timeout, seed=settings.seed,
                                     price=settings.price, structured=settings.structured)
        _CLIENT = (settings, client)
    return _CLIENT[1]


def close_client() -> None:
    """Release this process's client and its cache file (after episodes played in-process)."""
    global _CLIENT
    if _CLIENT is not None:
        _CLIENT[1].close()
        _CLIENT = None
