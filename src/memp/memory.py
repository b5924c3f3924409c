"""The Memory facade: one object that wires a store, an embedder and the three strategies.

    mem = Memory.open("memp.db", build="proceduralization", retrieve="query", update="adjustment")
    hits = mem.retrieve("put a clean apple in fridge", k=3)
    ... the agent runs, producing a Trajectory ...
    mem.update(trajectory, used=hits)
"""

from __future__ import annotations

from pathlib import Path

from memp.build import Abstraction, make_builder
from memp.embed import Embedder, make_embedder
from memp.keywords import KeywordExtractor, LLMKeywordExtractor, RuleKeywordExtractor
from memp.llm import LLM
from memp.retrieve import Retriever, make_retriever
from memp.store import Store, check_namespace, open_store
from memp.types import RetrievalHit, Task, Trajectory, UpdateReport
from memp.update import Adjuster, DeprecationRule, LLMAdjuster, RuleAdjuster, make_updater


class Memory:
    """Procedural memory for one namespace of a store."""

    def __init__(self, store: Store, *, namespace: str = "default", build: str = "proceduralization",
                 retrieve: str = "query", update: str = "adjustment", embedder: Embedder | None = None,
                 llm: LLM | None = None, k: int = 3, min_score: float | None = None, seed: int = 0,
                 script_mode: str = "direct", abstraction: Abstraction | None = None,
                 adjuster: Adjuster | None = None, deprecation: DeprecationRule | None = None,
                 dedup_threshold: float = 0.92, credit_weight: float = 0.0) -> None:
        self.store = store
        self.namespace = check_namespace(namespace)
        self.k = k
        self.config = {"build": build, "retrieve": retrieve, "update": update, "k": k,
                       "min_score": min_score, "seed": seed, "credit_weight": credit_weight, "script_mode": script_mode,
                       "llm": getattr(llm, "model", None)}
        self.embedder = embedder or make_embedder("minilm")
        self.config["embedder"] = self.embedder.name
        keywords: KeywordExtractor = LLMKeywordExtractor(llm) if llm else RuleKeywordExtractor()
        abstraction = abstraction or Abstraction()
        self.builder = make_builder(build, llm=llm, mode=script_mode, keywords=keywords,
                                    abstraction=abstraction)
        self.retriever: Retriever = make_retriever(retrieve, embedder=self.embedder, keywords=keywords,
                                                   min_score=min_score, seed=seed, credit_weight=credit_weight)
        adjuster = adjuster or (LLMAdjuster(llm) if llm else RuleAdjuster(abstraction, keywords))
        self.updater = make_updater(update, builder=self.builder, embedder=self.embedder,
                                    adjuster=adjuster, deprecation=deprecation,
                                    dedup_threshold=dedup_threshold)

    @classmethod
    def open(cls, location: str | Path = "memp.db", **options) -> Memory:
        """Open (creating if needed) a memory at a file path or a ``postgresql://`` URL."""
        return cls(open_store(location), **options)

    def retrieve(self, task: str | Task, k: int | None = None) -> list[RetrievalHit]:
        task = task if isinstance(task, Task) else Task(text=task)
        return self.retriever.retrieve(task, self.store, self.namespace, self.k if k is None else k)

    def update(self, trajectory: Trajectory, used: list[RetrievalHit] | None = None) -> UpdateReport:
        """Learn from a finished run that was given ``used`` procedures."""
        return self.updater.update(self.store, self.namespace, trajectory, used or [])

    def add(self, trajectory: Trajectory) -> UpdateReport:
        """Build and add a trajectory whatever the update strategy (e.g. gold expert runs)."""
        return self.updater.add(self.store, self.namespace, trajectory)

    def add_many(self, trajectories: list[Trajectory]) -> list[UpdateReport]:
        """``add`` for many trajectories at once (embeddings computed in one batch)."""
        return self.updater.add_many(self.store, self.namespace, trajectories)

    def close(self) -> None:
        self.store.close()
        close = getattr(self.embedder, "close", None)
        if close:
            close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
