"""REST service throughput under a mixed read/write load.

    nice -n 10 python bench/service_throughput.py [--size 10000] [--requests 800] [--threads 4]
        [--rounds 5] [--writes 0 0.2] [--embedders minilm hashing] [--clients plain httpx]
        [--out bench/results/service_throughput.json]

N procedures (distinct ALFWorld- and TravelPlanner-like task texts from task_corpus.py, with that
embedder's vectors) go into a SQLite file; ``memp serve`` (exact scan, default strategies) runs in
a subprocess on 127.0.0.1 with the embedder a user gets (``minilm``: all-MiniLM-L6-v2 on the backend
``resolved_backend()`` picks here, behind a vector cache, here a fresh one, so every query and every new run is embedded;
``hashing`` is there only as a labelled contrast), and client threads send a seeded sequence of
requests. Each request is a read (``POST /v1/retrieve``, k=10, a task text not seen before) or,
with probability ``--writes``, the next of four writes in turn:

- ``record``: a new successful run (``POST /v1/trajectories?mode=add``): build, duplicate check, a
  new lineage;
- ``outcome``: a failed run that was given a stored procedure (``POST /v1/outcomes``): counts the
  use and revises the procedure into a new version;
- ``deprecate`` and ``restore`` of a stored procedure.

Each thread writes only to procedures of its own, so no request fails on a concurrent change.
Every request body is built before the clock starts. The client threads run on the same cores as
the service, so the load generator is kept light: ``plain`` (the default) sends over the standard
library's keep-alive connection; ``httpx`` is there to compare (it spends about four times the
client CPU per request: 1.2 against 0.3 ms). Both clients' CPU per request is reported beside the service's.
Reported per write share: requests/s over the whole load, p50/p95 of reads and of writes, errors,
from the round with the median requests/s of ``--rounds`` rounds (a shared machine's load varies
from one round to the next; every round's requests/s is kept too).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

from ingest import alfworld_steps, travel_steps  # noqa: E402
from retrieve_latency import NAMESPACE, fill  # noqa: E402
from task_corpus import corpus_vectors, task_texts  # noqa: E402

from memp.embed import HashingEmbedder, MiniLMEmbedder, resolved_backend  # noqa: E402
from memp.store.sqlite import SQLiteStore  # noqa: E402

K = 10
EMBEDDERS = {"minilm": MiniLMEmbedder, "hashing": HashingEmbedder}
TOKEN = "bench-token-0123456789abcdef"
WRITES = ("record", "outcome", "deprecate", "restore")


def start_service(db: Path, token: str, embedder: str, workdir: Path) -> tuple[subprocess.Popen, str]:
    """`memp serve` on ``db`` in a child process, on a port the OS picked. The embedder is what
    `memp serve` makes (make_embedder(embedder, concurrent=True): inference passes side by side,
    one core each), with its vector cache in workdir rather than the user's."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("from memp.server.rest import serve; from memp.embed import make_embedder; "
            f"serve({str(db)!r}, host='127.0.0.1', port={port}, tokens={{{token!r}: {NAMESPACE!r}}}, "
            f"embedder=make_embedder({embedder!r}, {str(workdir / 'embeddings.sqlite')!r}, concurrent=True))")
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def wait_healthy(base: str, tries: int = 600) -> None:
    import httpx

    for _ in range(tries):
        try:
            if httpx.get(base + "/v1/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"memp serve at {base} did not come up")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_threads(worker, shares: list) -> float:
    """``worker(share)`` in a thread per share, all at once; the wall-clock seconds until all end."""
    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0


def run_steps(task: str, success: bool) -> dict:
    """A run for ``task`` (ingest.py's ALFWorld- or TravelPlanner-like steps), as the JSON body of
    a Trajectory; a failed one ends in "Nothing happens."."""
    rng = random.Random(task)
    steps = (travel_steps if task.startswith("Please plan") else alfworld_steps)(task, rng)
    if not success:
        steps[-1] = (steps[-1][0], "Nothing happens.")
    return {"task": {"text": task}, "reward": 1.0 if success else 0.0,
            "steps": [{"action": a, "observation": o} for a, o in steps]}


def plan(n_requests: int, threads: int, write_share: float, size: int, seed: int,
         stored: set[str]) -> list[list[tuple]]:
    """Each thread's requests: ("read", task) or (write kind, argument); every text is new."""
    rng = random.Random(seed)
    fresh = iter(task_texts(2 * n_requests, seed=seed + 1, exclude=stored))
    reads, news = fresh, fresh
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


def request(op: tuple, texts: dict[str, str]) -> tuple[str, str, bytes]:
    """(kind, path, JSON body) of an operation, made before the clock starts: building a run's
    steps is the load generator's work, not the service's, and both share the same cores."""
    kind, arg = op
    if kind == "read":
        path, body = "/v1/retrieve", {"task": arg, "k": K}
    elif kind == "record":
        path, body = "/v1/trajectories?mode=add", run_steps(arg, success=True)
    elif kind == "outcome":
        path, body = "/v1/outcomes", {"trajectory": run_steps(texts[arg], success=False), "used": [arg]}
    else:
        path, body = f"/v1/procedures/{arg}/{kind}", {"reason": "service throughput bench"}
    return kind, path, json.dumps(body).encode()


class HttpxClient:
    """httpx, as most Python callers of the service would use it."""

    def __init__(self, base: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base, timeout=120,
                                   headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})

    def post(self, path: str, body: bytes) -> tuple[int, str]:
        r = self.client.post(path, content=body)
        return r.status_code, r.text

    def close(self) -> None:
        self.client.close()


class PlainClient:
    """The standard library's keep-alive HTTP/1.1 connection: the lightest load generator in
    Python, so that the client threads, which share the service's cores, take less of them."""

    def __init__(self, base: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        url = urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def post(self, path: str, body: bytes) -> tuple[int, str]:
        self.conn.request("POST", path, body=body, headers=self.headers)
        r = self.conn.getresponse()
        return r.status, r.read().decode()

    def close(self) -> None:
        self.conn.close()


CLIENTS = {"httpx": HttpxClient, "plain": PlainClient}


def percentiles(samples: list[float]) -> dict:
    if not samples:
        return {"n": 0}
    ms = np.asarray(samples) * 1000
    return {"n": len(samples), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def load(size: int, n_requests: int, threads: int, write_share: float, workdir: Path, seed: int,
         embedder: str, client: str) -> dict:
    import httpx

    db = workdir / f"service-{size}-{write_share}.db"
    texts = task_texts(size, seed=7)
    vectors, _ = corpus_vectors(texts, EMBEDDERS[embedder](), log=lambda m: print(m, flush=True))
    with SQLiteStore(db) as store:
        fill(store, texts, vectors)
    by_id = {f"p{i:08d}": text for i, text in enumerate(texts)}
    proc, base = start_service(db, TOKEN, embedder, workdir)
    try:
        wait_healthy(base)
        ops = plan(n_requests, threads, write_share, size, seed, set(texts))
        plans = [[request(op, by_id) for op in own] for own in ops]
        latencies: dict[str, list[float]] = {"read": [], **{w: [] for w in WRITES}}
        errors: list[str] = []
        lock = threading.Lock()

        def worker(requests: list[tuple[str, str, bytes]]) -> None:
            c = CLIENTS[client](base)
            try:
                for kind, path, body in requests:
                    t = time.perf_counter()
                    status, text = c.post(path, body)
                    with lock:
                        latencies[kind].append(time.perf_counter() - t)
                        if status >= 300:
                            errors.append(f"{kind} {status} {text[:200]}")
            finally:
                c.close()

        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300) as c:
            c.post("/v1/retrieve", json={"task": texts[0], "k": K})  # loads the model and the matrix
        cpu0, own0 = process_cpu(proc.pid), process_cpu(os.getpid())
        wall = run_threads(worker, plans)
        server_cpu, client_cpu = process_cpu(proc.pid) - cpu0, process_cpu(os.getpid()) - own0
    finally:
        proc.terminate()
        proc.wait(10)
    writes = [x for w in WRITES for x in latencies[w]]
    done = sum(len(v) for v in latencies.values())
    return {"embedder": embedder, "client": client, "write_share": write_share, "requests": done, "errors": len(errors), "error_samples": errors[:3],
            "requests_per_s": round(done / wall, 1),
            # The server's CPU seconds (all threads) per request: its cost whatever else runs.
            "server_cpu_ms_per_request": round(server_cpu / done * 1000, 2),
            # The load generator's, on the same cores: what the service could not use.
            "client_cpu_ms_per_request": round(client_cpu / done * 1000, 2),
            "reads": percentiles(latencies["read"]),
            "writes": {**percentiles(writes), "by_kind": {w: len(latencies[w]) for w in WRITES}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--writes", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedders", nargs="+", default=["minilm"], choices=sorted(EMBEDDERS),
                        help="minilm is the default embedder; hashing only a labelled contrast")
    parser.add_argument("--clients", nargs="+", default=["plain"], choices=sorted(CLIENTS),
                        help="the load generator's HTTP client: plain (http.client, the lightest) or httpx")
    parser.add_argument("--out", default=str(BENCH / "results" / "service_throughput.json"))
    args = parser.parse_args()
    results = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
               "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                           "platform": platform.platform()},
               "size": args.size, "threads": args.threads, "k": K,
               "store": "SQLite, exact scan; default strategies; the embedder of each load "
                        f"(minilm: all-MiniLM-L6-v2 on {resolved_backend()}, the default here) behind a fresh "
                        "vector cache",
               "load_average_start": [round(x, 2) for x in os.getloadavg()], "loads": []}
    with tempfile.TemporaryDirectory(prefix="memp-bench-") as tmp:
        for embedder, client, share in itertools.product(args.embedders, args.clients, args.writes):
            rounds = []
            for i in range(args.rounds):  # each round a database and a vector cache of its own
                work = Path(tmp) / f"{embedder}-{client}-{share}-{i}"
                work.mkdir()
                rounds.append(load(args.size, args.requests, args.threads, share, work, args.seed, embedder,
                                   client))
            rounds.sort(key=lambda r: r["requests_per_s"])
            result = {**rounds[len(rounds) // 2], "rounds_requests_per_s": [r["requests_per_s"] for r in rounds]}
            results["loads"].append(result)
            print(json.dumps(result), flush=True)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
