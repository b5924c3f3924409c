"""Retrieval latency and ingest rate of the embedded (SQLite) store.

    python bench/retrieval.py [--sizes 1000 10000 100000] [--queries 200] [--out bench/results/retrieval.json]

- Latency: top-10 ``query`` retrieval on a store holding N procedures, p50 and p95 over many
  queries, measured two ways: search only (vector scan + loading the 10 procedures; the query
  vector precomputed) and end to end (``Memory.retrieve``: MiniLM embeds the query, then search).
  The store is filled in one import; key vectors come from the hashing embedder because
  embedding 100k texts with MiniLM would take minutes and an exact scan costs the same whatever
  the vectors hold. The first query after a write, which rebuilds the cached matrix, is reported
  apart (``cold_ms``).
- Ingest: trajectories per second through ``Memory.update`` (validation) with the LLM-free
  proceduralization builder and MiniLM embeddings, on synthetic ALFWorld-style runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from memp.embed import CachedEmbedder, HashingEmbedder, MiniLMEmbedder  # noqa: E402
from memp.memory import Memory  # noqa: E402
from memp.store import SQLiteStore  # noqa: E402
from memp.types import Procedure, Provenance, Step, Task, Trajectory  # noqa: E402

OBJECTS = ["apple", "mug", "tomato", "pencil", "cellphone", "book", "spoon", "vase", "towel", "potato",
           "candle", "egg", "lettuce", "plate", "knife", "watch", "keychain", "pillow", "cd", "bowl"]
PLACES = ["fridge", "cabinet", "shelf", "desk", "sofa", "countertop", "drawer", "bed", "garbagecan",
          "sidetable", "toilet", "microwave", "sinkbasin", "dresser", "armchair"]
VERBS = ["put a clean {o} in {p}", "put a hot {o} in {p}", "put a cool {o} in {p}", "put some {o} on {p}",
         "find two {o} and put them in {p}", "look at {o} under the desklamp"]


def task_text(i: int) -> str:
    rng = random.Random(i)
    return rng.choice(VERBS).format(o=rng.choice(OBJECTS), p=rng.choice(PLACES)) + f" (variant {i})"


def fill(store: SQLiteStore, n: int, embedder: HashingEmbedder) -> None:
    records = []
    for start in range(0, n, 5000):
        texts = [task_text(i) for i in range(start, min(n, start + 5000))]
        vectors = embedder.embed(texts)
        for text, vec in zip(texts, vectors):
            p = Procedure(key=text, script=["go to {target}", "put {object} in/on {target}"],
                          keywords={"object": text.split()[3]}, provenance=Provenance(builder="bench"),
                          embedding=vec.tolist())
            records.append({"type": "procedure", "head": True, "procedure": p.model_dump(mode="json")})
    store.import_records(records)


def percentiles(samples: list[float]) -> dict:
    a = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3)}


def latency(n: int, queries: int, minilm) -> dict:
    hashing = HashingEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db")
        t0 = time.perf_counter()
        fill(store, n, hashing)
        fill_s = time.perf_counter() - t0
        # Fresh texts for every size, so the end-to-end figures always include embedding the query.
        qtexts = [task_text(10_000_000 + 1000 * n + i) for i in range(queries)]
        qvecs = hashing.embed(qtexts)
        t0 = time.perf_counter()
        store.vectors("default")
        cold = time.perf_counter() - t0
        search = []
        for q in qvecs:
            t0 = time.perf_counter()
            top = store.vectors("default").top(q, 10)
            store.get_many("default", [ref for ref, _ in top])
            search.append(time.perf_counter() - t0)
        mem = Memory(store, retrieve="query", embedder=minilm, k=10)
        end_to_end = []
        for text in qtexts[: max(20, queries // 4)]:
            t0 = time.perf_counter()
            hits = mem.retrieve(text)
            end_to_end.append(time.perf_counter() - t0)
            assert len(hits) == 10
        store.close()
    return {"procedures": n, "fill_seconds": round(fill_s, 1), "cold_ms": round(cold * 1000, 1),
            "search": percentiles(search), "end_to_end": percentiles(end_to_end)}


def synthetic_run(i: int) -> Trajectory:
    rng = random.Random(i)
    o, p, q = rng.choice(OBJECTS), rng.choice(PLACES), rng.choice(PLACES)
    steps = [Step(action=f"go to {q} 1", observation=f"On the {q} 1, you see a {o} 1."),
             Step(action=f"take {o} 1 from {q} 1", observation=f"You pick up the {o} 1 from the {q} 1."),
             Step(action="go to sinkbasin 1", observation="On the sinkbasin 1, you see nothing."),
             Step(action=f"clean {o} 1 with sinkbasin 1", observation=f"You clean the {o} 1 using the sinkbasin 1."),
             Step(action=f"go to {p} 1", observation=f"On the {p} 1, you see nothing."),
             Step(action=f"put {o} 1 in/on {p} 1", observation=f"You put the {o} 1 in/on the {p} 1.")]
    return Trajectory(task=Task(text=f"put a clean {o} in {p}. (run {i})"), steps=steps, reward=1.0)


def ingest(n: int, batched: bool) -> dict:
    """One run at a time through ``update`` (online), or all through ``add_many`` (batched)."""
    runs = [synthetic_run(i + (n if batched else 0)) for i in range(n)]
    minilm = CachedEmbedder(MiniLMEmbedder())  # empty cache: every embedding is computed
    minilm.embed(["warm up the model"])
    with tempfile.TemporaryDirectory() as tmp:
        mem = Memory(SQLiteStore(Path(tmp) / "ingest.db"), build="proceduralization", update="validation",
                     embedder=minilm)
        t0 = time.perf_counter()
        if batched:
            mem.add_many(runs)
        else:
            for run in runs:
                mem.update(run)
        seconds = time.perf_counter() - t0
        stored = mem.store.count("default")
        mem.store.close()
    return {"trajectories": n, "seconds": round(seconds, 2), "per_second": round(n / seconds, 1),
            "procedures_stored": stored}


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ingest", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "retrieval.json")
    args = parser.parse_args()
    minilm = CachedEmbedder(MiniLMEmbedder())
    minilm.embed(["load the model before timing anything"])
    result = {"machine": machine(), "embedder": "all-MiniLM-L6-v2 (query), hashing-384 (fill)",
              "latency": [latency(n, args.queries, minilm) for n in args.sizes],
              "ingest_online": ingest(args.ingest, batched=False),
              "ingest_batched": ingest(args.ingest, batched=True)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
