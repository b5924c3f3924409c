"""Many client processes report outcomes to one served SQLite file at once, under each updater.

A real `memp serve` process; CLIENTS processes each post OUTCOMES outcomes that used the same
procedure, a third of them failures, and half of the successes duplicates of it. Afterwards:
every request was acknowledged, the use counters equal the acknowledged outcomes, every
acknowledged trajectory is stored as sent, and every procedure the responses name holds the
provenance they claim (a merge or a revision lost to a concurrent write would show here).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="needs the 'service' extra")

from memp.embed import HashingEmbedder  # noqa: E402
from memp.memory import Memory  # noqa: E402
from memp.store import SQLiteStore  # noqa: E402
from tests.conftest import REPO, clean_apple_trajectory  # noqa: E402

CLIENTS, OUTCOMES = 4, 10
TOKEN = "token-for-the-concurrency-test-0123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(db: Path, update: str, tmp: Path) -> tuple[subprocess.Popen, str]:
    tokens = tmp / "tokens"
    tokens.write_text(f"{TOKEN}=shared\n")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from memp.cli.main import main; main()", "serve", "--db", str(db),
         "--tokens", str(tokens), "--embedder", "hashing", "--update", update, "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"memp serve exited: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("memp serve did not answer within 60 s")


def _client(url: str, ref: str, worker: int, results) -> None:
    """Posts OUTCOMES outcomes that used ``ref``; returns what the service acknowledged."""
    acked, errors = [], []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as http:
        for i in range(OUTCOMES):
            success = i % 3 != 0
            # Half the successes repeat the stored procedure's task (they merge into it); the rest
            # are new tasks (they add a procedure).
            run = clean_apple_trajectory(success=success, traj_id=f"w{worker}-{i}") if i % 2 == 0 \
                else clean_apple_trajectory(f"obj{worker}x{i}", "fridge", success=success, traj_id=f"w{worker}-{i}")
            body = {"trajectory": json.loads(run.model_dump_json()), "used": [ref]}
            r = http.post("/v1/outcomes", json=body)
            if r.status_code == 201:
                acked.append({"trajectory": body["trajectory"], "success": success, "report": r.json()})
            else:
                errors.append(f"{r.status_code} {r.text[:200]}")
    results.put({"acked": acked, "errors": errors})


@pytest.mark.parametrize("update", ["vanilla", "validation", "adjustment"])
def test_client_processes_against_one_served_file_lose_nothing(update, tmp_path):
    db = tmp_path / "served.db"
    with Memory(SQLiteStore(db), namespace="shared", embedder=HashingEmbedder(), update="vanilla") as mem:
        seeded = mem.add(clean_apple_trajectory(traj_id="seed"))
    pid = seeded.added[0].split("@v")[0]
    server, url = _serve(db, update, tmp_path)
    try:
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        clients = [ctx.Process(target=_client, args=(url, f"{pid}@v1", w, results)) for w in range(CLIENTS)]
        for c in clients:
            c.start()
        outcomes = [results.get(timeout=300) for _ in clients]
        for c in clients:
            c.join(30)
    finally:
        server.terminate()
        server.wait(30)
    assert [o["errors"] for o in outcomes] == [[]] * CLIENTS
    acked = [a for o in outcomes for a in o["acked"]]
    assert len(acked) == CLIENTS * OUTCOMES
    successes = sum(a["success"] for a in acked)
    with SQLiteStore(db) as store:
        v1 = store.get("shared", pid, 1)
        used = [e for e in store.events("shared", pid) if e.kind == "used"]
        assert (v1.stats.uses, v1.stats.successes) == (len(acked), successes)
        assert sorted(e.trajectory_id for e in used) == sorted(a["trajectory"]["id"] for a in acked)
        for a in acked:
            tid, report = a["trajectory"]["id"], a["report"]
            assert store.get_trajectory("shared", tid).model_dump(mode="json") == a["trajectory"]
            for ref in report["added"]:
                assert tid in store.get("shared", *_split(ref)).provenance.trajectory_ids
            for ref in report["merged"]:  # the version merged into keeps it: no merge overwritten
                history = store.history("shared", ref.split("@v")[0])
                assert any(tid in v.provenance.trajectory_ids for v in history), ref
            for ref in report["revised"]:
                assert store.get("shared", *_split(ref)).provenance.revised_from_failure == tid
        merges = [e for e in store.events("shared") if e.kind == "merged"]
        assert merges and len(merges) == sum(len(a["report"]["merged"]) for a in acked)
    if update != "adjustment":
        assert not any(a["report"]["revised"] for a in acked)


def _split(ref: str) -> tuple[str, int]:
    pid, version = ref.split("@v")
    return pid, int(version)
