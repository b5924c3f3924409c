"""Token and cost accounting: per call, per client, and per scope (an episode, an experiment).

``Usage`` is an immutable value that adds and subtracts, so "what did this episode cost" is either
``after - before`` on two snapshots or a ``scope()`` block. Scopes live in a context variable:
each asyncio task gets its own copy of the context, so episodes running in parallel on one client
are each charged only for their own calls.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields

from memp.llm.errors import LLMConfigError


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    prompt: float
    completion: float


# A price table maps a model name to its Price; models missing from it cost nothing.
PriceTable = Mapping[str, Price]


@dataclass(frozen=True, slots=True)
class Usage:
    """What a number of calls consumed.

    ``calls`` counts every answer delivered, from the network or the cache; the token counts cover
    all of them, so a rerun from cache reports the same tokens as the run that filled it.
    ``network_calls`` and ``cost_usd`` cover only answers actually fetched: the money spent.
    """

    calls: int = 0
    network_calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(Usage)))

    def to_dict(self) -> dict[str, int | float]:
        """JSON-ready, for results files; includes total_tokens."""
        data: dict[str, int | float] = asdict(self)
        data["cost_usd"] = round(self.cost_usd, 8)
        data["total_tokens"] = self.total_tokens
        return data


def call_cost(model: str, prompt_tokens: int, completion_tokens: int, prices: PriceTable | None) -> float:
    if not prices or model not in prices:
        return 0.0
    price = prices[model]
    return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1_000_000


def parse_prices(spec: Mapping[str, object]) -> dict[str, Price]:
    """Accept ``{"model": Price | (prompt, completion) | {"prompt": p, "completion": c}}``."""
    table: dict[str, Price] = {}
    for model, value in spec.items():
        if isinstance(value, Price):
            table[model] = value
        elif isinstance(value, Mapping) and {"prompt", "completion"} <= set(value):
            table[model] = Price(float(value["prompt"]), float(value["completion"]))  # type: ignore[arg-type]
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            table[model] = Price(float(value[0]), float(value[1]))
        else:
            raise LLMConfigError(
                f"price for {model!r} must be (prompt, completion) dollars per million tokens "
                f"or {{'prompt': ..., 'completion': ...}}, got {value!r}"
            )
    return table


class UsageScope:
    """The running total of one ``with meter.scope():`` block."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self._usage = Usage()
        self._lock = threading.Lock()

    def _add(self, usage: Usage) -> None:
        with self._lock:
            self._usage = self._usage + usage

    @property
    def usage(self) -> Usage:
        return self._usage

    def __repr__(self) -> str:
        return f"UsageScope({self.name!r}, {self._usage})"


# Open scopes of the current context, outermost first. A tuple, so that a copied context (a new
# asyncio task) can push its own scopes without touching its parent's.
_open_scopes: contextvars.ContextVar[tuple[UsageScope, ...]] = contextvars.ContextVar(
    "memp_llm_usage_scopes", default=()
)


class UsageMeter:
    """Thread-safe running total for one client, plus whatever scopes are open."""

    def __init__(self) -> None:
        self._total = Usage()
        self._lock = threading.Lock()

    @property
    def total(self) -> Usage:
        """A snapshot; subtract two snapshots to get the usage in between."""
        return self._total

    def record(self, usage: Usage) -> None:
        with self._lock:
            self._total = self._total + usage
        for scope in _open_scopes.get():
            scope._add(usage)

    @contextlib.contextmanager
    def scope(self, name: str | None = None) -> Iterator[UsageScope]:
        """Charge every call made inside the block (by any client) to the yielded scope too.

        Scopes nest: a call inside an episode scope inside an experiment scope counts in both.
        """
        opened = UsageScope(name)
        token = _open_scopes.set((*_open_scopes.get(), opened))
        try:
            yield opened
        finally:
            _open_scopes.reset(token)


def usage_scope(name: str | None = None) -> contextlib.AbstractContextManager[UsageScope]:
    """A scope not tied to a client: counts calls from every memp client used inside it."""
    return UsageMeter().scope(name)


__all__ = [
    "Price",
    "PriceTable",
    "Usage",
    "UsageMeter",
    "UsageScope",
    "call_cost",
    "parse_prices",
    "usage_scope",
]
