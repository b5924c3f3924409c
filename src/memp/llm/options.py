"""``--llm-*`` options shared by every command that can use a model.

Use the aliases as parameter types and hand the values to ``client_from_options``::

    @app.command()
    def build(base_url: LLMBaseUrlOpt = None, model: LLMModelOpt = None, ...):
        llm = client_from_options(base_url, model, api_key, temperature, cache)

Unset options fall back to the ``MEMP_LLM_*`` environment inside the client, so the environment
is read in exactly one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from memp.llm.client import OpenAIClient

_PANEL = "LLM endpoint"

LLMBaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-base-url",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1 [env: MEMP_LLM_BASE_URL]",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
LLMModelOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-model", help="Model name [env: MEMP_LLM_MODEL]", rich_help_panel=_PANEL, show_default=False
    ),
]
LLMApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-api-key",
        help="API key [env: MEMP_LLM_API_KEY, then OPENAI_API_KEY]; local servers need none",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
LLMTemperatureOpt = Annotated[
    float,
    typer.Option("--llm-temperature", min=0.0, max=2.0, help="Sampling temperature", rich_help_panel=_PANEL),
]
LLMCacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--llm-cache",
        help="SQLite file caching responses, so a rerun makes no network call",
        rich_help_panel=_PANEL,
        dir_okay=False,
        show_default=False,
    ),
]
LLMPriceOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-price",
        help="Dollars per million tokens as PROMPT,COMPLETION (e.g. 2.5,10), for the cost in reports",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
LLMTimeoutOpt = Annotated[
    float,
    typer.Option("--llm-timeout", min=0.1, rich_help_panel=_PANEL,
                 help="Seconds to wait for one answer (each attempt; a call makes up to 5)"),
]
LLMStructuredOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-structured",
        help="Constrain JSON replies to their schema on the server: auto (whatever the server "
        "supports), json_schema (response_format), grammar (llama.cpp GBNF) or off "
        "[env: MEMP_LLM_STRUCTURED; default: auto]",
        rich_help_panel=_PANEL,
        show_default=False,
    ),
]
LLMConstrainActionsOpt = Annotated[
    bool,
    typer.Option(
        "--llm-constrain-actions",
        help="ALFWorld's LLM agent: decode each Action as one of the game's admissible commands "
        "(a grammar; llama.cpp servers only, others answer unconstrained)",
        rich_help_panel=_PANEL,
    ),
]


def client_from_options(
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.0,
    cache: Path | str | None = None,
    *,
    timeout: float = 60.0,
    seed: int | None = None,
    price: tuple[float, float] | None = None,
    structured: str | None = None,
) -> OpenAIClient:
    """Build the client the options describe; raises ``LLMConfigError`` saying what is missing.

    ``price`` is the model's (prompt, completion) dollars per million tokens, for cost reports.
    """
    from memp.llm.client import OpenAIClient  # needs the optional openai package
    from memp.llm.usage import Price

    client = OpenAIClient(
        model=model,
        base_url=base_url,
        api_key=api_key,
        temperature=temperature,
        cache=cache,
        timeout=timeout,
        seed=seed,
        structured=structured,
    )
    if price is not None:  # keyed by the resolved name, which may come from MEMP_LLM_MODEL
        client.prices = {client.model: Price(*price)}
    return client


def parse_price(text: str | None) -> tuple[float, float] | None:
    """``"2.5,10"`` → ``(2.5, 10.0)``; raises ``LLMConfigError`` on anything else."""
    from memp.llm.errors import LLMConfigError

    if text is None:
        return None
    parts = text.split(",")
    try:
        price = tuple(float(p) for p in parts)
    except ValueError:
        price = ()
    if len(price) != 2 or min(price) < 0:
        raise LLMConfigError(f"--llm-price must be PROMPT,COMPLETION dollars per million tokens "
                             f"(two non-negative numbers, e.g. 2.5,10), got {text!r}")
    return price  # type: ignore[return-value]


__all__ = [
    "LLMPriceOpt",
    "parse_price",
    "LLMApiKeyOpt",
    "LLMBaseUrlOpt",
    "LLMCacheOpt",
    "LLMConstrainActionsOpt",
    "LLMModelOpt",
    "LLMStructuredOpt",
    "LLMTemperatureOpt",
    "LLMTimeoutOpt",
    "client_from_options",
]
