"""REST service throughput under a mixed read/write load.

    python bench/service_throughput.py [--size 10000] [--requests 800] [--threads 4] [--rounds 5]
                                       [--writes 0 0.2] [--out bench/results/service_throughput.json]

N synthetic procedures (the task descriptions of store_scale.py, hashing-embedder vectors) go into
a SQLite file; ``memp serve`` (hashing embedder, exact scan, default strategies) runs in a
subprocess on 127.0.0.1, and client threads send a seeded sequence of requests. Each request is a
read (``POST /v1/retrieve``, k=10) or, with probability ``--writes``, the next of four writes in
turn:

- ``record``: a new successful run (``POST /v1/trajectories?mode=add``): build, duplicate check, a
  new lineage;
- ``outcome``: a failed run that was given a stored procedure (``POST /v1/outcomes``): counts the
  use and revises the procedure into a new version;
- ``deprecate`` and ``restore`` of a stored procedure.

Each thread writes only to procedures of its own, so no request fails on a concurrent change.
Reported per write share: requests/s over the whole load, p50/p95 of reads and of writes, errors,
from the round with the median requests/s of ``--rounds`` rounds (a shared machine's load varies
from one round to the next; every round's requests/s is kept too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from store_scale import fill, run_threads, start_service, task_texts, wait_healthy  # noqa: E402

from memp.embed import HashingEmbedder  # noqa: E402
from memp.store.sqlite import SQLiteStore  # noqa: E402

K = 10
TOKEN = "bench-token-0123456789abcdef"
WRITES = ("record", "outcome", "deprecate", "restore")


def run_steps(task: str, success: bool) -> dict:
    """A short ALFWorld-style run for ``task``, as the JSON body of a Trajectory."""
    obj = task.split(" in ")[0].split()[-1]
    place = task.split(" in ")[1].split()[0]
    steps = [(f"go to {place} 1", f"The {place} 1 is closed."),
             (f"take {obj} 1 from countertop 1", f"You pick up the {obj} 1."),
             (f"open {place} 1", f"You open the {place} 1."),
             (f"put {obj} 1 in/on {place} 1", f"You put the {obj} 1 in/on the {place} 1." if success
              else "Nothing happens.")]
    return {"task": {"text": task, "type": "pick_and_place"}, "reward": 1.0 if success else 0.0,
            "steps": [{"action": a, "observation": o} for a, o in steps]}


def plan(n_requests: int, threads: int, write_share: float, size: int, seed: int) -> list[list[tuple]]:
    """Each thread's requests: ("read", task) or (write kind, argument)."""
    rng = random.Random(seed)
    reads = iter(task_texts(n_requests, seed=seed + 1))
    news = iter(task_texts(n_requests, seed=seed + 2))
    plans = []
    for t in range(threads):
        own = iter(rng.sample(range(t, size, threads), min(n_requests, size // threads)))
        ops, turn, deprecated = [], 0, []
        for _ in range(n_requests // threads):
            if rng.random() >= write_share:
                ops.append(("read", next(reads)))
                continue
            kind = WRITES[turn % len(WRITES)]
            turn += 1
            if kind == "record":
                ops.append((kind, next(news)))
            elif kind == "restore":
                ops.append((kind, deprecated.pop()))
            else:
                pid = f"p{next(own):08d}"
                if kind == "deprecate":
                    deprecated.append(pid)
                ops.append((kind, pid))
        plans.append(ops)
    return plans


def send(client, op: tuple, texts: dict[str, str]):
    kind, arg = op
    if kind == "read":
        return client.post("/v1/retrieve", json={"task": arg, "k": K})
    if kind == "record":
        return client.post("/v1/trajectories?mode=add", json=run_steps(arg, success=True))
    if kind == "outcome":
        return client.post("/v1/outcomes", json={"trajectory": run_steps(texts[arg], success=False),
                                                 "used": [arg]})
    return client.post(f"/v1/procedures/{arg}/{kind}", json={"reason": "service throughput bench"})


def percentiles(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    ms = np.asarray(samples) * 1000
    return {"n": len(samples), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def load(size: int, n_requests: int, threads: int, write_share: float, workdir: Path, seed: int) -> dict:
    import httpx

    db = workdir / f"service-{size}-{write_share}.db"
    texts = task_texts(size, seed=7)
    with SQLiteStore(db) as store:
        fill(store, texts, HashingEmbedder().embed(texts))
    by_id = {f"p{i:08d}": text for i, text in enumerate(texts)}
    proc, base = start_service(db, TOKEN)
    try:
        wait_healthy(base)
        plans = plan(n_requests, threads, write_share, size, seed)
        latencies: dict[str, list[float]] = {"read": [], **{w: [] for w in WRITES}}
        errors: list[str] = []
        lock = threading.Lock()

        def worker(ops: list[tuple]) -> None:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as c:
                for op in ops:
                    t = time.perf_counter()
                    r = send(c, op, by_id)
                    with lock:
                        latencies[op[0]].append(time.perf_counter() - t)
                        if r.status_code >= 300:
                            errors.append(f"{op[0]} {r.status_code} {r.text[:200]}")

        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            c.post("/v1/retrieve", json={"task": texts[0], "k": K})  # the first matrix load
        wall = run_threads(worker, plans)
    finally:
        proc.terminate()
        proc.wait(10)
    writes = [x for w in WRITES for x in latencies[w]]
    done = sum(len(v) for v in latencies.values())
    return {"write_share": write_share, "requests": done, "errors": len(errors), "error_samples": errors[:3],
            "requests_per_s": round(done / wall, 1), "reads": percentiles(latencies["read"]),
            "writes": {**percentiles(writes), "by_kind": {w: len(latencies[w]) for w in WRITES}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--writes", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(BENCH / "results" / "service_throughput.json"))
    args = parser.parse_args()
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "size": args.size, "threads": args.threads, "k": K,
               "store": "SQLite, exact scan; hashing embedder; default strategies", "loads": []}
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        for share in args.writes:
            rounds = []
            for i in range(args.rounds):  # each round fills a database of its own
                (Path(tmp) / f"round-{i}").mkdir(exist_ok=True)
                rounds.append(load(args.size, args.requests, args.threads, share, Path(tmp) / f"round-{i}", args.seed))
            rounds.sort(key=lambda r: r["requests_per_s"])
            result = {**rounds[len(rounds) // 2], "rounds_requests_per_s": [r["requests_per_s"] for r in rounds]}
            results["loads"].append(result)
            print(json.dumps(result), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
