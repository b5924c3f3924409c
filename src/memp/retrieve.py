"""Retrieve: which procedures come back for a new task.

- ``RandomRetriever``: k active procedures at random (seeded) — the paper's baseline;
- ``QueryRetriever``: cosine similarity of task-description embeddings;
- ``AveFactRetriever``: keywords of the task; the score is the mean, over the keywords that a
  procedure shares with the task, of the cosine similarity of the keyword embeddings
  (procedures sharing no keyword are skipped);
- ``HybridRetriever``: BM25 over text and vector similarity, fused by reciprocal rank.

Every retriever returns at most k hits, best first, each with a score; ``min_score`` drops weak
hits (for hybrid it applies to the vector similarity, since fused ranks have no absolute scale).

``CreditRanked`` wraps any of them to rank by outcome as well as by similarity: a procedure that
has worked when followed moves up, one that has failed moves down (see ``credit``).
"""

from __future__ import annotations

import random
import re
from typing import Protocol

from memp._errors import InvalidInputError, UnknownStrategyError
from memp.embed import Embedder
from memp.keywords import KeywordExtractor, RuleKeywordExtractor
from memp.store.base import Ref, Store, nearest
from memp.types import ProcedureStats, RetrievalHit, Task


class Retriever(Protocol):
    name: str

    def retrieve(self, task: Task, store: Store, namespace: str, k: int) -> list[RetrievalHit]:
        ...


def _check_k(k: int) -> int:
    if not isinstance(k, int) or k < 0:
        raise InvalidInputError(f"k must be a whole number ≥ 0, got {k!r}")
    return k


def _hits(store: Store, namespace: str, scored: list[tuple[Ref, float]], name: str) -> list[RetrievalHit]:
    procedures = store.get_many(namespace, [ref for ref, _ in scored], vectors=False)
    return [RetrievalHit(procedure=p, score=round(s, 6), retriever=name) for p, (_, s) in zip(procedures, scored)]


class RandomRetriever:
    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def retrieve(self, task: Task, store: Store, namespace: str, k: int) -> list[RetrievalHit]:
        refs = store.refs(namespace)
        chosen = self._rng.sample(refs, min(_check_k(k), len(refs)))
        return _hits(store, namespace, [(ref, 0.0) for ref in chosen], self.name)


class QueryRetriever:
    name = "query"

    def __init__(self, embedder: Embedder, min_score: float | None = None) -> None:
        self.embedder = embedder
        self.min_score = min_score

    def scored(self, task: Task, store: Store, namespace: str, k: int) -> list[tuple[Ref, float]]:
        query = self.embedder.embed([task.text])[0]
        top = nearest(store, namespace, query, _check_k(k))
        return [(ref, s) for ref, s in top if self.min_score is None or s >= self.min_score]

    def retrieve(self, task: Task, store: Store, namespace: str, k: int) -> list[RetrievalHit]:
        return _hits(store, namespace, self.scored(task, store, namespace, k), self.name)


class AveFactRetriever:
    name = "avefact"

    def __init__(self, embedder: Embedder, keywords: KeywordExtractor | None = None,
                 min_score: float | None = None) -> None:
        self.embedder = embedder
        self.keywords = keywords or RuleKeywordExtractor()
        self.min_score = min_score

    def retrieve(self, task: Task, store: Store, namespace: str, k: int) -> list[RetrievalHit]:
        _check_k(k)
        facts = self.keywords.extract(task)
        if not facts:
            return []
        fields = list(facts)
        queries = self.embedder.embed([facts[f] for f in fields])
        total: dict[Ref, float] = {}
        shared: dict[Ref, int] = {}
        for field, query in zip(fields, queries):
            table = store.vectors(namespace, f"kw:{field}")
            if not table.refs:
                continue
            for ref, score in zip(table.refs, table.matrix @ query):
                total[ref] = total.get(ref, 0.0) + float(score)
                shared[ref] = shared.get(ref, 0) + 1
        scored = [(ref, total[ref] / shared[ref]) for ref in total]
        if self.min_score is not None:
            scored = [(r, s) for r, s in scored if s >= self.min_score]
        scored.sort(key=lambda rs: -rs[1])  # stable: ties keep the store's lineage order
        return _hits(store, namespace, scored[:k], self.name)


_WORD = re.compile(r"[a-z0-9]+")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class HybridRetriever:
    """BM25 and embeddings, fused by reciprocal rank (score = Σ 1 / (rrf_k + rank))."""

    name = "hybrid"

    def __init__(self, embedder: Embedder, min_score: float | None = None, rrf_k: int = 60,
                 depth: int = 50) -> None:
        self.query = QueryRetriever(embedder, min_score)
        self.rrf_k = rrf_k
        self.depth = depth
        self._index: tuple[tuple[int, str], object, list[Ref]] | None = None

    def _bm25(self, store: Store, namespace: str):
        import bm25s

        key = (store.generation(), namespace)
        if self._index is None or self._index[0] != key:
            refs = store.refs(namespace)
            procedures = store.get_many(namespace, refs, vectors=False)
            corpus = [_tokens(p.key + " " + " ".join(p.keywords.values())) or ["_"] for p in procedures]
            retriever = bm25s.BM25()
            if corpus:
                retriever.index(corpus, show_progress=False)
            self._index = (key, retriever, refs)
        return self._index[1], self._index[2]

    def retrieve(self, task: Task, store: Store, namespace: str, k: int) -> list[RetrievalHit]:
        _check_k(k)
        vector = self.query.scored(task, store, namespace, self.depth)
        allowed = {ref for ref, _ in vector} if self.query.min_score is not None else None
        bm25, refs = self._bm25(store, namespace)
        lexical: list[Ref] = []
        query_tokens = [t for t in _tokens(task.text) if t]
        if refs and query_tokens:
            docs, scores = bm25.retrieve([query_tokens], k=min(self.depth, len(refs)), show_progress=False)
            lexical = [refs[int(d)] for d, s in zip(docs[0], scores[0]) if s > 0]
        fused: dict[Ref, float] = {}
        for ranking in ([ref for ref, _ in vector], lexical):
            for rank, ref in enumerate(ranking, 1):
                if allowed is None or ref in allowed:
                    fused[ref] = fused.get(ref, 0.0) + 1.0 / (self.rrf_k + rank)
        ordered = sorted(fused.items(), key=lambda rs: -rs[1])[:k]  # stable, as above
        return _hits(store, namespace, ordered, self.name)


def credit(stats: ProcedureStats) -> float:
    """The posterior mean success rate under a uniform prior, (successes + 1) / (uses + 2):
    ½ for a procedure never used, towards its observed rate as uses accumulate."""
    return (stats.successes + 1) / (stats.uses + 2)


class CreditRanked:
    """Another retriever's candidates, re-ranked by score + ``weight`` · (credit − ½).

    It asks the base retriever for ``depth`` · k candidates, so that a well-proven procedure a
    little further from the task can displace a close one that keeps failing. Scores of the
    returned hits are the re-ranked ones. Ties keep the base order.
    """

    def __init__(self, base: Retriever, weight: float = 0.2, depth: int = 3) -> None:
        if weight < 0 or depth < 1:
            raise InvalidInputError(f"credit weight must be ≥ 0 and depth ≥ 1, got {weight} and {depth}")
        self.base = base
        self.weight = weight
        self.depth = depth
        self.name = f"{base.name}+credit"

    def retrieve(self, task: Task, store: Store, namespace: str, k: int) -> list[RetrievalHit]:
        hits = self.base.retrieve(task, store, namespace, _check_k(k) * self.depth)
        scored = [(h.score + self.weight * (credit(h.procedure.stats) - 0.5), h) for h in hits]
        scored.sort(key=lambda sh: -sh[0])
        return [h.model_copy(update={"score": round(s, 6), "retriever": self.name}) for s, h in scored[:k]]


RETRIEVERS = ("random", "query", "avefact", "hybrid")


def make_retriever(name: str, *, embedder: Embedder, keywords: KeywordExtractor | None = None,
                   min_score: float | None = None, seed: int = 0, credit_weight: float = 0.0) -> Retriever:
    """The named retriever; with ``credit_weight`` > 0, ranked by credit too (``CreditRanked``)."""
    if name == "random":
        base: Retriever = RandomRetriever(seed=seed)
    elif name == "query":
        base = QueryRetriever(embedder, min_score)
    elif name == "avefact":
        base = AveFactRetriever(embedder, keywords, min_score)
    elif name == "hybrid":
        base = HybridRetriever(embedder, min_score)
    else:
        raise UnknownStrategyError(
            f"unknown retrieve strategy {name!r}; choose one of: {', '.join(RETRIEVERS)}"
        )
    return CreditRanked(base, credit_weight) if credit_weight else base
