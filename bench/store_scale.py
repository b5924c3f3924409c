"""Retrieval at scale: exact scan, the embedded HNSW index, pgvector HNSW and chromadb, one run.

    python bench/store_scale.py [--sizes 100000 1000000] [--queries 300] [--out bench/results/store_scale.json]

For each size N, N synthetic procedures (ALFWorld-style task descriptions, hashing-embedder
vectors, 384 dimensions) go into each engine, then the same queries (held-out descriptions) run
top-10 on each:

- ``exact``: SQLiteStore's numpy scan (the reference for recall);
- ``sqlite_hnsw``: SQLiteStore(ann=True), hnswlib (see memp/store/ann.py for why hnswlib);
- ``pgvector_hnsw``: PostgresStore.search on a pgserver-started PostgreSQL 16 + pgvector;
- ``chromadb``: an in-process chromadb collection (cosine HNSW, default parameters).

Reported per engine: p50/p95 latency of the search call (query vector given), recall@10 against
exact, queries per second single-threaded, and build/ingest time. Also the store ingest rate
(procedures per second through ``import_records``) and the REST service's throughput: a load
generator with 4 threads on 127.0.0.1 sends a bounded number of /v1/retrieve requests to
``memp serve`` (hashing embedder, HNSW-backed SQLite), reporting requests/s and p50/p95.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from memp.embed import HashingEmbedder  # noqa: E402
from memp.store.sqlite import SQLiteStore  # noqa: E402
from memp.types import Procedure, Provenance  # noqa: E402

VERBS = ["put", "place", "move", "find and put", "look at", "examine", "heat", "cool", "clean", "slice"]
MODS = ["clean", "hot", "cool", "two", "a", "some", "the", "sliced"]
OBJECTS = ["apple", "mug", "tomato", "pencil", "cellphone", "book", "spoon", "vase", "towel", "potato",
           "candle", "egg", "lettuce", "plate", "knife", "watch", "keychain", "pillow", "cd", "bowl"]
PLACES = ["fridge", "cabinet", "shelf", "desk", "sofa", "countertop", "drawer", "bed", "garbagecan",
          "sidetable", "toilet", "microwave", "sinkbasin", "dresser", "armchair"]
K = 10
NAMESPACE = "bench"


def task_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(VERBS)} {rng.choice(MODS)} {rng.choice(OBJECTS)} in {rng.choice(PLACES)} "
            f"of room {rng.randint(0, 999)} floor {rng.randint(0, 49)}" for _ in range(n)]


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


def records(texts: list[str], vectors: np.ndarray, start: int = 0):
    for i, (text, vec) in enumerate(zip(texts, vectors), start):
        p = Procedure(id=f"p{i:08d}", namespace=NAMESPACE, key=text, script=[f"do {text}"],
                      provenance=Provenance(trajectory_ids=[f"t{i}"]), embedding=vec.tolist())
        yield {"type": "procedure", "head": True, "procedure": p.model_dump(mode="json")}


def fill(store, texts, vectors, batch: int = 5000, first_id: int = 0) -> float:
    start = time.perf_counter()
    for lo in range(0, len(texts), batch):
        store.import_records(records(texts[lo:lo + batch], vectors[lo:lo + batch], first_id + lo))
    return time.perf_counter() - start


def bench_size(n: int, n_queries: int, workdir: Path, engines: set[str]) -> dict:
    emb = HashingEmbedder()
    texts = task_texts(n, seed=n)
    t0 = time.perf_counter()
    vectors = emb.embed(texts)
    out: dict = {"size": n, "embed_s": round(time.perf_counter() - t0, 1), "engines": {}}
    queries = emb.embed(task_texts(n_queries, seed=-1))
    ids = [f"p{i:08d}" for i in range(n)]

    store = SQLiteStore(workdir / f"scale-{n}.db", ann={"threads": os.cpu_count() or 1})
    ingest_s = fill(store, texts, vectors)
    out["sqlite_ingest_per_s"] = round(n / ingest_s, 1)
    table = store.vectors(NAMESPACE)
    truth, times = timed(lambda q: [r[0] for r, _ in table.top(q, K)], queries)
    out["engines"]["exact"] = {**percentiles(times), "recall_at_10": 1.0}
    print(f"[{n}] exact {out['engines']['exact']}", flush=True)

    if "sqlite_hnsw" in engines:
        t0 = time.perf_counter()
        store.search(NAMESPACE, queries[0], K)  # builds the graph
        build = time.perf_counter() - t0
        found, times = timed(lambda q: [r[0] for r, _ in store.search(NAMESPACE, q, K)], queries)
        out["engines"]["sqlite_hnsw"] = {**percentiles(times), "recall_at_10": recall(found, truth),
                                         "build_s": round(build, 1)}
        print(f"[{n}] sqlite_hnsw {out['engines']['sqlite_hnsw']}", flush=True)
    store.close()

    if "pgvector" in engines:
        out["engines"]["pgvector_hnsw"] = bench_pgvector(texts, vectors, queries, truth, workdir)
        print(f"[{n}] pgvector {out['engines']['pgvector_hnsw']}", flush=True)
    if "chromadb" in engines:
        out["engines"]["chromadb"] = bench_chroma(ids, vectors, queries, truth, workdir / f"chroma-{n}")
        print(f"[{n}] chromadb {out['engines']['chromadb']}", flush=True)
    return out


def bench_pgvector(texts, vectors, queries, truth, workdir: Path) -> dict:
    import pgserver
    import psycopg

    from memp.store.postgres import PostgresStore

    server = pgserver.get_server(tempfile.mkdtemp(prefix="memp-bench-pg-"), cleanup_mode="delete")
    try:
        url = server.get_uri()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS bench")
            admin.execute("CREATE DATABASE bench")
        url = url.replace("/postgres?", "/bench?")
        store = PostgresStore(url)
        fill(store, texts[:1], vectors[:1])  # the first write creates the 384-d index
        # Bulk load without the index, then build it once: far faster than n incremental inserts.
        store._db.execute("DROP INDEX memp_procedures_hnsw_384")
        ingest = fill(store, texts[1:], vectors[1:], first_id=1)
        t0 = time.perf_counter()
        store._db.execute("SET maintenance_work_mem = '1GB'")
        store._db.execute("CREATE INDEX memp_procedures_hnsw_384 ON memp_procedures USING hnsw "
                          "((embedding::vector(384)) vector_cosine_ops) "
                          "WHERE dim = 384 AND is_head AND status = 'active'")
        build = time.perf_counter() - t0
        store._db.execute("ANALYZE memp_procedures")
        found, times = timed(lambda q: [r[0] for r, _ in store.search(NAMESPACE, q, K)], queries)
        store.close()
        return {**percentiles(times), "recall_at_10": recall(found, truth), "build_s": round(build, 1),
                "ingest_per_s": round((len(texts) - 1) / max(ingest, 1e-9), 1)}
    finally:
        server.cleanup()


def bench_chroma(ids, vectors, queries, truth, path: Path) -> dict:
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    coll = client.create_collection("bench", metadata={"hnsw:space": "cosine"})
    t0 = time.perf_counter()
    step = 5000
    for lo in range(0, len(ids), step):
        coll.add(ids=ids[lo:lo + step], embeddings=vectors[lo:lo + step])
    ingest = time.perf_counter() - t0
    found, times = timed(lambda q: coll.query(query_embeddings=[q], n_results=K, include=[])["ids"][0], queries)
    return {**percentiles(times), "recall_at_10": recall(found, truth), "ingest_s": round(ingest, 1),
            "ingest_per_s": round(len(ids) / ingest, 1)}


def start_service(db: Path, token: str) -> tuple[subprocess.Popen, str]:
    """`memp serve` on ``db`` in a child process (hashing embedder), on a port the OS picked."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("from memp.server.rest import serve; from memp.embed import HashingEmbedder; "
            f"serve({str(db)!r}, host='127.0.0.1', port={port}, tokens={{{token!r}: {NAMESPACE!r}}}, "
            "embedder=HashingEmbedder())")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(base: str, tries: int = 300) -> None:
    import httpx

    for _ in range(tries):
        try:
            if httpx.get(base + "/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)


def run_threads(worker, shares: list) -> float:
    """``worker(share)`` in a thread per share, all at once; the wall-clock seconds until all end."""
    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0


def bench_service(workdir: Path, n: int, requests: int = 600, threads: int = 4) -> dict:
    """Throughput of `memp serve` on loopback: a bounded load of /v1/retrieve requests."""
    import httpx

    token = "bench-token-0123456789abcdef"
    db = workdir / f"service-{n}.db"
    emb = HashingEmbedder()
    texts = task_texts(n, seed=7)
    with SQLiteStore(db) as store:
        fill(store, texts, emb.embed(texts))
    proc, base = start_service(db, token)
    try:
        wait_healthy(base)
        tasks = task_texts(requests, seed=11)
        latencies: list[float] = []
        errors = 0
        lock = threading.Lock()

        def worker(chunk: list[str]) -> None:
            nonlocal errors
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
                c.post("/v1/retrieve", json={"task": chunk[0], "k": K})  # warm the connection
                for task in chunk:
                    t = time.perf_counter()
                    r = c.post("/v1/retrieve", json={"task": task, "k": K})
                    with lock:
                        latencies.append(time.perf_counter() - t)
                        errors += r.status_code != 200

        chunks = [tasks[i::threads] for i in range(threads)]
        wall = run_threads(worker, chunks)
        stats = percentiles(latencies)
        return {"procedures": n, "requests": len(latencies), "client_threads": threads, "errors": errors,
                "requests_per_s": round(len(latencies) / wall, 1), "p50_ms": stats["p50_ms"],
                "p95_ms": stats["p95_ms"], "store": "SQLite, exact scan; hashing embedder"}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--engines", nargs="+", default=["sqlite_hnsw", "pgvector", "chromadb"])
    parser.add_argument("--service-size", type=int, default=10_000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "store_scale.json"))
    args = parser.parse_args()
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "k": K, "dim": 384, "queries": args.queries, "sizes": []}
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        for n in args.sizes:
            results["sizes"].append(bench_size(n, args.queries, Path(tmp), set(args.engines)))
        if args.service_size:
            results["service"] = bench_service(Path(tmp), args.service_size)
            print(f"service {results['service']}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
