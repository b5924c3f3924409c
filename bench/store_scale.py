"""Retrieval at scale with real MiniLM vectors: memp's HNSW index, pgvector and chromadb, one run.

    python bench/store_scale.py --sizes 100000 [--queries 300] [--seed 0] [--out bench/results/store_scale.json]

For each size N: N distinct task texts (bench/scale_corpus.py: chores, trips, bookings, orders,
meetings …) and Q held-out ones as queries, embedded with the default embedder ("minilm",
all-MiniLM-L6-v2) and cached on disk, so a second run embeds nothing. The same vectors then go
into each engine, and the same queries run top-10 on each:

- ``exact``: the exact numpy scan over the float32 matrix (SQLiteStore without an index); the
  reference for recall;
- ``memp_ann``: SQLiteStore(path, ann=...), memp's float16 HNSW graph (memp/store/ann.py), in a
  separate *serving process* that only opens the file and answers queries, so its peak resident
  memory (``peak_rss_mb``) is what serving N procedures costs; the graph's build time is the first
  search's (less ``save_s``, the time it took to save the index beside the file, reported with the
  folder's size, ``saved_index_mb``). Its search breadth is swept (``ef_sweep``); the headline row
  is the default ANNConfig. Then ``second_process``: another serving process on the same file, as
  after a restart: its first search loads the saved index (``load_s``, beside ``build_s``);
- ``pgvector_hnsw``: PostgresStore.search on a pgserver-started PostgreSQL + pgvector, HNSW index;
- ``chromadb``: a persistent chromadb collection (cosine HNSW, default parameters), in its own
  process too.

Reported per engine: p50/p95 latency of the search call (query vector given), recall@10 against
exact, queries per second single-threaded, build/ingest time; and memp's ratios to the others.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from scale_corpus import DEFAULT_CACHE, task_texts, vectors  # noqa: E402

K = 10
NAMESPACE = "bench"
EF_SWEEP = [16, 32, 48, 64, 96, 128]


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "qps": round(float(len(ms) / (ms.sum() / 1000)), 1)}


def recall(found: list[list], truth: list[list]) -> float:
    return round(float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth) if t])), 4)


def timed(search, queries) -> tuple[list[list], list[float]]:
    results, times = [], []
    for q in queries:
        start = time.perf_counter()
        hits = search(q)
        times.append(time.perf_counter() - start)
        results.append(hits)
    return results, times


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage: ru_maxrss survives exec, so a
    child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)  # kB
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def ids(n: int, start: int = 0) -> list[str]:
    return [f"p{i:08d}" for i in range(start, start + n)]


def records(texts: list[str], matrix: np.ndarray, start: int):
    from memp.types import Procedure, Provenance

    for pid, text, vec in zip(ids(len(texts), start), texts, matrix):
        p = Procedure(id=pid, namespace=NAMESPACE, key=text, script=[f"do {text}"],
                      provenance=Provenance(trajectory_ids=[f"t{pid}"]), embedding=vec.tolist())
        yield {"type": "procedure", "head": True, "procedure": p.model_dump(mode="json")}


def fill(store, texts, matrix, batch: int = 5000, first: int = 0) -> float:
    start = time.perf_counter()
    for lo in range(0, len(texts), batch):
        store.import_records(records(texts[lo:lo + batch], matrix[lo:lo + batch], first + lo))
    return time.perf_counter() - start


def exact_truth(matrix: np.ndarray, queries: np.ndarray) -> tuple[list[list[str]], list[float]]:
    """The exact top-10 of every query (the reference) and the exact scan's latency per query."""
    from memp.store.base import VectorTable

    table = VectorTable([(pid, 1) for pid in ids(len(matrix))], matrix)
    found, times = timed(lambda q: [r[0] for r, _ in table.top(q, K)], queries)
    return found, times


# -- the serving process ---------------------------------------------------------------------


def serve(db: str, queries_npy: str, truth_json: str, config: dict) -> dict:
    """In a fresh process: open the file with the index, build it (and save it beside the file,
    as ``memp serve`` does), answer the queries."""
    from memp.store.ann import ANNConfig
    from memp.store.sqlite import SQLiteStore

    queries = np.load(queries_npy)
    truth = json.loads(Path(truth_json).read_text())
    cfg = ANNConfig(**config)
    store = SQLiteStore(db, ann=cfg)
    saving = timing(store._ann._saved, "save") if store._ann._saved is not None else [0.0]
    t0 = time.perf_counter()
    store.search(NAMESPACE, queries[0], K)  # builds the graph from the file, then saves it
    build = time.perf_counter() - t0 - sum(saving)
    index = store._ann.index(store, NAMESPACE)
    out = {"config": asdict(cfg), "build_s": round(build, 1), "save_s": round(sum(saving), 2),
           "rss_after_build_mb": peak_rss_mb(),
           "index_memory_mb": round(index._graph.memory_usage / 2**20, 1), "ef_sweep": []}
    for ef in sorted(set(EF_SWEEP) | {cfg.ef_search}):
        index.config = ANNConfig(**{**config, "ef_search": ef})
        store.search(NAMESPACE, queries[0], K)  # warm
        found, times = timed(lambda q: [r[0] for r, _ in store.search(NAMESPACE, q, K)], queries)
        row = {"ef_search": ef, **percentiles(times), "recall_at_10": recall(found, truth)}
        out["ef_sweep"].append(row)
        if ef == cfg.ef_search:
            out.update({k: v for k, v in row.items() if k != "ef_search"})
    index.config = cfg
    out["peak_rss_mb"] = peak_rss_mb()
    store.close()
    return out


def serve_again(db: str, queries_npy: str, truth_json: str, config: dict) -> dict:
    """In a fresh process, after ``serve`` saved the index: open the file, load the index (its
    first search), answer the queries with the default search breadth."""
    from memp.store.ann import ANNConfig, HNSWIndex
    from memp.store.sqlite import SQLiteStore

    queries = np.load(queries_npy)
    truth = json.loads(Path(truth_json).read_text())
    added = timing(HNSWIndex, "add", count=True)  # vectors added to a graph: 0 when loaded whole
    store = SQLiteStore(db, ann=ANNConfig(**config), read_only=True)
    t0 = time.perf_counter()
    store.search(NAMESPACE, queries[0], K)  # loads the saved graph (or builds it, if none fits)
    load = time.perf_counter() - t0
    out = {"load_s": round(load, 2), "vectors_added": int(sum(added)), "rss_after_load_mb": peak_rss_mb()}
    store.search(NAMESPACE, queries[0], K)  # warm
    found, times = timed(lambda q: [r[0] for r, _ in store.search(NAMESPACE, q, K)], queries)
    out.update({**percentiles(times), "recall_at_10": recall(found, truth), "peak_rss_mb": peak_rss_mb()})
    store.close()
    return out


def timing(owner, name: str, count: bool = False) -> list[float]:
    """Wrap ``owner.name``: the list it returns gets each call's seconds (or first argument's length)."""
    calls: list[float] = []
    method = getattr(owner, name)

    def wrapped(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            calls.append(len(args[1]) if count else time.perf_counter() - t0)

    setattr(owner, name, wrapped)
    return calls


def folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.glob("*")) / 2**20, 1) if folder.exists() else 0.0


def chroma(path: str, corpus_npy: str, queries_npy: str, truth_json: str) -> dict:
    """In a fresh process: a persistent chromadb collection of the same vectors, then the queries."""
    import chromadb

    matrix = np.load(corpus_npy, mmap_mode="r")
    queries = np.load(queries_npy)
    truth = json.loads(Path(truth_json).read_text())
    client = chromadb.PersistentClient(path=path)
    coll = client.create_collection("bench", metadata={"hnsw:space": "cosine"})
    t0 = time.perf_counter()
    for lo in range(0, len(matrix), 5000):
        coll.add(ids=ids(min(5000, len(matrix) - lo), lo), embeddings=np.asarray(matrix[lo:lo + 5000]))
    ingest = time.perf_counter() - t0
    coll.query(query_embeddings=[queries[0]], n_results=K, include=[])
    found, times = timed(lambda q: coll.query(query_embeddings=[q], n_results=K, include=[])["ids"][0], queries)
    return {**percentiles(times), "recall_at_10": recall(found, truth), "ingest_s": round(ingest, 1),
            "ingest_per_s": round(len(matrix) / ingest, 1), "peak_rss_mb_ingest_and_serve": peak_rss_mb()}


def child(kind: str, *args: str) -> dict:
    """Run ``kind`` (serve, serve-again or chroma) in a new process of this Python; its JSON result."""
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    proc = subprocess.run([sys.executable, __file__, f"--{kind}", *args], env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} process failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- pgvector --------------------------------------------------------------------------------


def bench_pgvector(texts, matrix, queries, truth) -> dict:
    import pgserver
    import psycopg

    from memp.store.postgres import PostgresStore

    server = pgserver.get_server(tempfile.mkdtemp(prefix="memp-bench-pg-"), cleanup_mode="delete")
    try:
        url = server.get_uri()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS bench")
            admin.execute("CREATE DATABASE bench")
        store = PostgresStore(url.replace("/postgres?", "/bench?"))
        fill(store, texts[:1], matrix[:1])  # the first write creates the 384-d index
        # Bulk load without the index, then build it once: far faster than n incremental inserts.
        store._db.execute("DROP INDEX memp_procedures_hnsw_384")
        ingest = fill(store, texts[1:], matrix[1:], first=1)
        t0 = time.perf_counter()
        store._db.execute("SET maintenance_work_mem = '2GB'")
        store._db.execute("CREATE INDEX memp_procedures_hnsw_384 ON memp_procedures USING hnsw "
                          "((embedding::vector(384)) vector_cosine_ops) "
                          "WHERE dim = 384 AND is_head AND status = 'active'")
        build = time.perf_counter() - t0
        store._db.execute("ANALYZE memp_procedures")
        store.search(NAMESPACE, queries[0], K)
        found, times = timed(lambda q: [r[0] for r, _ in store.search(NAMESPACE, q, K)], queries)
        store.close()
        return {**percentiles(times), "recall_at_10": recall(found, truth), "build_s": round(build, 1),
                "ingest_per_s": round((len(texts) - 1) / max(ingest, 1e-9), 1), "ef_search": store.ef_search,
                "index": "pgvector HNSW, m=16, ef_construction=64 (pgvector's defaults)"}
    finally:
        server.cleanup()


# -- one size ----------------------------------------------------------------------------------


def bench_size(n: int, n_queries: int, seed: int, workdir: Path, engines: set[str], config: dict,
               cache: Path, embedder: str) -> dict:
    from memp.store.sqlite import SQLiteStore

    every = task_texts(n + n_queries, seed)
    texts, query_texts = every[:n], every[n:]  # the queries: held out, from the same generator
    matrix, info = vectors(texts, embedder, cache, log=lambda m: print(f"[{n}] {m}", flush=True))
    queries, qinfo = vectors(query_texts, embedder, cache, log=lambda m: None)
    out: dict = {"size": n, "vectors": {"embedder": sorted(set(info["embedders"]) | set(qinfo["embedders"])),
                                        "embed_s_this_run": info["embed_s"] + qinfo["embed_s"],
                                        "cached_chunks": info["cached_chunks"],
                                        "example_texts": texts[:3]},
                 "engines": {}}
    truth, times = exact_truth(matrix, queries)
    out["engines"]["exact"] = {**percentiles(times), "recall_at_10": 1.0}
    print(f"[{n}] exact {out['engines']['exact']}", flush=True)
    queries_npy, truth_json, corpus_npy = workdir / "queries.npy", workdir / "truth.json", workdir / "corpus.npy"
    np.save(queries_npy, queries)
    truth_json.write_text(json.dumps(truth))

    if "memp_ann" in engines:
        db = workdir / f"scale-{n}.db"
        with SQLiteStore(db) as store:
            out["sqlite_ingest_per_s"] = round(n / fill(store, texts, matrix), 1)
        out["sqlite_file_mb"] = round(db.stat().st_size / 2**20, 1)
        args = (str(db), str(queries_npy), str(truth_json), json.dumps(config))
        out["engines"]["memp_ann"] = child("serve", *args)
        saved = Path(f"{db.resolve()}.ann")
        out["engines"]["memp_ann"]["saved_index_mb"] = folder_mb(saved)
        # A second serving process on the same file: it loads the index the first one saved.
        out["engines"]["memp_ann"]["second_process"] = child("serve-again", *args)
        db.unlink()
        shutil.rmtree(saved, ignore_errors=True)
        print(f"[{n}] memp_ann {out['engines']['memp_ann']}", flush=True)
    if "pgvector" in engines:
        out["engines"]["pgvector_hnsw"] = bench_pgvector(texts, matrix, queries, truth)
        print(f"[{n}] pgvector {out['engines']['pgvector_hnsw']}", flush=True)
    if "chromadb" in engines:
        np.save(corpus_npy, matrix)
        del matrix
        out["engines"]["chromadb"] = child("chroma", str(workdir / f"chroma-{n}"), str(corpus_npy),
                                           str(queries_npy), str(truth_json))
        print(f"[{n}] chromadb {out['engines']['chromadb']}", flush=True)
    out["memp_vs"] = ratios(out["engines"])
    return out


def ratios(engines: dict) -> dict:
    """How many times faster memp's index answers than each other engine, and the recall of each."""
    memp = engines.get("memp_ann")
    if not memp:
        return {}
    return {name: {"p50_speedup": round(e["p50_ms"] / memp["p50_ms"], 1),
                   "p95_speedup": round(e["p95_ms"] / memp["p95_ms"], 1),
                   "recall_at_10": [memp["recall_at_10"], e["recall_at_10"]]}
            for name, e in engines.items() if name != "memp_ann"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", nargs="+", default=["memp_ann", "pgvector", "chromadb"])
    parser.add_argument("--ann", default="{}", help="ANNConfig fields as JSON, e.g. '{\"ef_search\": 96}'")
    parser.add_argument("--embedder", default="minilm",
                        help="minilm (the default embedder, real vectors) or hashing (labelled as such)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the vectors are cached")
    parser.add_argument("--out", default=str(BENCH / "results" / "store_scale.json"))
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--serve-again", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--chroma", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        print(json.dumps(serve(*args.serve[:3], json.loads(args.serve[3]))))
        return
    if args.serve_again:
        print(json.dumps(serve_again(*args.serve_again[:3], json.loads(args.serve_again[3]))))
        return
    if args.chroma:
        print(json.dumps(chroma(*args.chroma)))
        return
    results = {"command": "python " + " ".join([f"bench/{Path(__file__).name}", *sys.argv[1:]]),
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform(), "load_average_at_start": os.getloadavg()},
               "embedder": args.embedder, "k": K, "dim": 384, "queries": args.queries, "seed": args.seed, "sizes": []}
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        for n in args.sizes:
            results["sizes"].append(bench_size(n, args.queries, args.seed, Path(tmp), set(args.engines),
                                               json.loads(args.ann), args.cache, args.embedder))
    results["machine"]["load_average_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
