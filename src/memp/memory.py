"""The Memory facade: one object that wires a store, an embedder and the three strategies.

    mem = Memory.open("memp.db", build="proceduralization", retrieve="query", update="adjustment")
    hits = mem.retrieve("put a clean apple in fridge", k=3)
    ... the agent runs, producing a Trajectory ...
    mem.update(trajectory, used=hits)

Every strategy (and the keyword extractor, adjuster and embedder) is given by name or as an
object with the strategy's method, e.g. ``retrieve=MyRetriever()`` with a ``retrieve`` method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memp._errors import InvalidInputError, UnknownStrategyError
from memp.build import BUILDERS, Abstraction, Builder, make_builder
from memp.embed import EMBEDDERS, Embedder, make_embedder
from memp.keywords import KeywordExtractor, LLMKeywordExtractor, RuleKeywordExtractor
from memp.llm import LLM
from memp.retrieve import RETRIEVERS, Retriever, make_retriever
from memp.store import Store, check_namespace, open_store
from memp.types import RetrievalHit, Task, Trajectory, UpdateReport
from memp.update import UPDATERS, Adjuster, DeprecationRule, LLMAdjuster, RuleAdjuster, Updater, make_updater

# For the keyword extractor and the adjuster, both built-ins are one choice: with or without a model.
BY_MODEL = ("rule", "llm")


def strategy_name(strategy: Any) -> str:
    """How a strategy object is named in ``Memory.config`` and experiment records."""
    name = getattr(strategy, "name", None)
    return name if isinstance(name, str) and name else type(strategy).__name__


def _checked(kind: str, value: Any, names, method: str) -> Any:
    """A name memp knows, or an object with the strategy's method; anything else is refused."""
    if isinstance(value, str):
        if value not in names:
            raise UnknownStrategyError(
                f"unknown {kind} {value!r}; choose one of: {', '.join(names)}, "
                f"or pass an object with a {method}() method"
            )
        return value
    if not callable(getattr(value, method, None)):
        raise UnknownStrategyError(
            f"{kind} {strategy_name(value)!r} has no {method}() method: pass one of "
            f"{', '.join(names)}, or an object implementing memp's {kind} protocol"
        )
    return value


class Memory:
    """Procedural memory for one namespace of a store.

    ``store`` is a Store, or a path or ``postgresql://`` URL that is opened once every option has
    been checked: an unknown strategy raises before any database is created.
    """

    def __init__(self, store: Store | str | Path, *, namespace: str = "default",
                 build: str | Builder = "proceduralization", retrieve: str | Retriever = "query",
                 update: str | Updater = "adjustment", embedder: str | Embedder | None = None,
                 llm: LLM | None = None, k: int = 3, min_score: float | None = None, seed: int = 0,
                 script_mode: str = "direct", abstraction: Abstraction | None = None,
                 keywords: str | KeywordExtractor | None = None, adjuster: str | Adjuster | None = None,
                 deprecation: DeprecationRule | None = None, dedup_threshold: float = 0.92,
                 credit_weight: float = 0.0) -> None:
        self.namespace = check_namespace(namespace)
        # Check every choice before building anything: a bad one must leave nothing behind.
        build = _checked("build strategy", build, list(BUILDERS), "build")
        retrieve = _checked("retrieve strategy", retrieve, RETRIEVERS, "retrieve")
        update = _checked("update strategy", update, list(UPDATERS), "update")
        keywords = _checked("keyword extractor", keywords or ("llm" if llm else "rule"), BY_MODEL, "extract")
        adjuster = _checked("adjuster", adjuster or ("llm" if llm else "rule"), BY_MODEL, "revise")
        embedder = _checked("embedder", embedder or "minilm", sorted(EMBEDDERS), "embed")
        if llm is None and "llm" in (keywords, adjuster):
            raise InvalidInputError("keywords='llm' and adjuster='llm' need a model: pass llm=")
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise InvalidInputError(f"k must be a whole number ≥ 0, got {k!r}")
        if not isinstance(embedder, str) and not isinstance(getattr(embedder, "dim", None), int):
            raise UnknownStrategyError(
                f"embedder {strategy_name(embedder)!r} has no integer dim attribute (its vector size)")

        self.k = k
        abstraction = abstraction or Abstraction()
        self.embedder = make_embedder(embedder) if isinstance(embedder, str) else embedder
        if keywords == "rule":
            keywords = RuleKeywordExtractor()
        elif keywords == "llm":
            keywords = LLMKeywordExtractor(llm)
        self.builder = build if not isinstance(build, str) else make_builder(
            build, llm=llm, mode=script_mode, keywords=keywords, abstraction=abstraction)
        self.retriever = retrieve if not isinstance(retrieve, str) else make_retriever(
            retrieve, embedder=self.embedder, keywords=keywords, min_score=min_score, seed=seed,
            credit_weight=credit_weight)
        if adjuster == "rule":
            adjuster = RuleAdjuster(abstraction, keywords)
        elif adjuster == "llm":
            adjuster = LLMAdjuster(llm)
        options = dict(builder=self.builder, embedder=self.embedder, adjuster=adjuster,
                       deprecation=deprecation, dedup_threshold=dedup_threshold)
        self.updater = update if not isinstance(update, str) else make_updater(update, **options)
        # A user's updater needs only update(); adding gold runs is the same for every strategy.
        adds = all(callable(getattr(self.updater, m, None)) for m in ("add", "add_many"))
        self._adder = self.updater if adds else make_updater("vanilla", **options)
        self.config = {"build": strategy_name(self.builder), "retrieve": strategy_name(self.retriever),
                       "update": strategy_name(self.updater), "k": k, "min_score": min_score,
                       "seed": seed, "credit_weight": credit_weight, "script_mode": script_mode,
                       "llm": getattr(llm, "model", None),
                       "embedder": strategy_name(self.embedder), "keywords": strategy_name(keywords),
                       "adjuster": strategy_name(adjuster)}
        # Last, so that nothing above can leave an empty database behind.
        self.store = open_store(store) if isinstance(store, (str, Path)) else store

    @classmethod
    def open(cls, location: str | Path = "memp.db", **options) -> Memory:
        """Open (creating if needed) a memory at a file path or a ``postgresql://`` URL.

        Every option is checked first: an unknown strategy creates no database."""
        return cls(location, **options)

    def retrieve(self, task: str | Task, k: int | None = None) -> list[RetrievalHit]:
        task = task if isinstance(task, Task) else Task(text=task)
        return self.retriever.retrieve(task, self.store, self.namespace, self.k if k is None else k)

    def update(self, trajectory: Trajectory, used: list[RetrievalHit] | None = None) -> UpdateReport:
        """Learn from a finished run that was given ``used`` procedures."""
        return self.updater.update(self.store, self.namespace, trajectory, used or [])

    def add(self, trajectory: Trajectory) -> UpdateReport:
        """Build and add a trajectory whatever the update strategy (e.g. gold expert runs)."""
        return self._adder.add(self.store, self.namespace, trajectory)

    def add_many(self, trajectories: list[Trajectory]) -> list[UpdateReport]:
        """``add`` for many trajectories at once (embeddings computed in one batch)."""
        return self._adder.add_many(self.store, self.namespace, trajectories)

    def close(self) -> None:
        self.store.close()
        close = getattr(self.embedder, "close", None)
        if close:
            close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
