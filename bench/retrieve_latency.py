"""What an agent waits for: ``Memory.retrieve`` end to end, query embedding included.

    nice -n 10 python bench/retrieve_latency.py [--size 100000] [--queries 500] [--compare 100]
                                                [--out bench/results/retrieve_latency.json]

``--size`` procedures whose keys are distinct ALFWorld-like and TravelPlanner-like task texts
(bench/task_corpus.py) with their real all-MiniLM-L6-v2 vectors (the default embedder; computed
once and cached outside the repository) go into a SQLiteStore with the HNSW index
(``ann=True``). A ``Memory`` with the default embedder and retriever then answers ``--queries``
held-out task texts, top-10, each text asked once: the embedder's vector cache (a fresh file, as
a user's first queries meet) misses on every one, which the result records, so no figure is
flattered by a remembered vector. Reported: p50/p95/mean of the whole call, and of its two parts
(embedding the query; the index search and reading the 10 procedures). ``--compare N`` also times
the first N queries with the sentence-transformers backend (``minilm-torch``, the old default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from task_corpus import corpus_vectors, task_texts  # noqa: E402

from memp import Memory  # noqa: E402
from memp.embed import CachedEmbedder, MiniLMEmbedder, TorchMiniLMEmbedder, resolved_backend  # noqa: E402
from memp.store.sqlite import SQLiteStore  # noqa: E402
from memp.types import Procedure, Provenance  # noqa: E402

K = 10
NAMESPACE = "bench"


class Timed:
    """An embedder that remembers how long each call took."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.seconds: list[float] = []

    def embed(self, texts):
        t0 = time.perf_counter()
        out = self.inner.embed(texts)
        self.seconds.append(time.perf_counter() - t0)
        return out


def stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "mean_ms": round(float(ms.mean()), 2), "n": len(ms)}


def fill(store: SQLiteStore, texts: list[str], vectors: np.ndarray, batch: int = 5000) -> float:
    t0 = time.perf_counter()
    for lo in range(0, len(texts), batch):
        store.import_records(
            {"type": "procedure", "head": True, "procedure": Procedure(
                id=f"p{i:08d}", namespace=NAMESPACE, key=text, script=[f"do: {text}"],
                provenance=Provenance(trajectory_ids=[f"t{i}"]), embedding=vec.tolist()).model_dump(mode="json")}
            for i, (text, vec) in enumerate(zip(texts[lo:lo + batch], vectors[lo:lo + batch]), lo))
    return time.perf_counter() - t0


def timed_retrieves(memory: Memory, timer: Timed, queries: list[str]) -> dict:
    """Wall-clock times, and the process's CPU time per call (all its threads): on a machine
    shared with other work, the CPU time says what the call costs, the wall time what it took."""
    timer.seconds.clear()
    total, cpu = [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.process_time()
        hits = memory.retrieve(q, k=K)
        total.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert len(hits) == K
    rest = [t - e for t, e in zip(total, timer.seconds)]
    return {"retrieve": stats(total), "embed_query": stats(timer.seconds), "search_and_read": stats(rest),
            "retrieve_cpu": stats(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--compare", type=int, default=100, help="queries also timed on minilm-torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(BENCH / "results" / "retrieve_latency.json"))
    args = parser.parse_args()
    load_start = os.getloadavg()
    texts = task_texts(args.size, args.seed)
    queries = task_texts(args.queries + 3, args.seed + 1, exclude=set(texts))
    warmup, queries = queries[:3], queries[3:]
    vectors, vector_info = corpus_vectors(texts, MiniLMEmbedder(), log=lambda m: print(m, flush=True))
    result: dict = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "size": args.size, "queries": len(queries), "k": K, "seed": args.seed,
        "embedder": f"minilm (MiniLMEmbedder: all-MiniLM-L6-v2 on {resolved_backend()}, the default here), "
                    "in a CachedEmbedder",
        "retriever": "query", "store": "SQLiteStore(ann=True): the usearch HNSW index, default ANNConfig",
        "corpus_vectors": vector_info}
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db", ann=True)
        result["store_fill_s"] = round(fill(store, texts, vectors), 1)
        timer = Timed(MiniLMEmbedder())
        cached = CachedEmbedder(timer, Path(tmp) / "embeddings.sqlite")
        with Memory(store, namespace=NAMESPACE, embedder=cached, retrieve="query") as memory:
            t0 = time.perf_counter()
            memory.retrieve(warmup[0], k=K)  # loads the model and builds the HNSW graph
            result["first_retrieve_s"] = round(time.perf_counter() - t0, 1)
            for q in warmup[1:]:
                memory.retrieve(q, k=K)
            misses = cached.misses
            result["minilm"] = timed_retrieves(memory, timer, queries)
            result["minilm"]["vector_cache"] = {"misses": cached.misses - misses, "hits": cached.hits}
            assert cached.misses - misses == len(queries)  # every query embedded, none remembered
            print(json.dumps(result["minilm"]), flush=True)
            if args.compare:
                torch_timer = Timed(TorchMiniLMEmbedder())
                torch_timer.embed(warmup[:1])
                memory.retriever.embedder = torch_timer  # the same Memory, the other backend
                timer_result = timed_retrieves(memory, torch_timer, queries[:args.compare])
                result["minilm_torch"] = timer_result
                print(json.dumps(timer_result), flush=True)
    result["load_average"] = {"start": [round(x, 2) for x in load_start],
                              "end": [round(x, 2) for x in os.getloadavg()]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
