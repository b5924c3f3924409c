"""`memp serve` and `memp mcp` as real processes on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

from tests.server.conftest import TOKEN_A, auth

LAUNCH = "from memp.server.cli import app; app()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode())
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("server did not start")


def test_serve_runs_on_loopback_with_env_tokens(tmp_path):
    port = _free_port()
    env = {**os.environ, "MEMP_TOKENS": f"{TOKEN_A}=team-a"}
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "serve", "--db", str(tmp_path / "m.db"),
                             "--port", str(port), "--embedder", "hashing"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/v1/health", proc)
        r = httpx.post(base + "/v1/retrieve", json={"task": "x"}, headers=auth())
        assert r.status_code == 200 and r.json() == {"hits": []}
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_without_tokens_says_how_to_set_them(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MEMP_TOKENS"}
    out = subprocess.run([sys.executable, "-c", "from memp.cli._common import run; "
                          "from memp.server.cli import app; run(app)", "serve", "--db", str(tmp_path / "m.db")],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "MEMP_TOKENS" in out.stderr


def test_an_unknown_strategy_stops_serve_and_mcp_before_any_database_is_created(tmp_path):
    env = {**os.environ, "MEMP_TOKENS": f"{TOKEN_A}=team-a"}
    for command in ("serve", "mcp"):
        db = tmp_path / f"{command}.db"
        out = subprocess.run([sys.executable, "-c", "from memp.cli._common import run; "
                              "from memp.server.cli import app; run(app)", command, "--db", str(db),
                              "--update", "bogus"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and "unknown update strategy 'bogus'" in out.stderr, out.stderr
        assert not db.exists()


def test_mcp_over_streamable_http(tmp_path):
    import asyncio

    from mcp import Client

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, "mcp", "--db", str(tmp_path / "m.db"),
                             "--transport", "http", "--port", str(port), "--embedder", "hashing"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    async def talk() -> set[str]:
        async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=30) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            got = await client.call_tool("retrieve_procedures", {"task": "anything"})
            assert got.structured_content == {"procedures": []}
            return names

    try:
        _wait(f"http://127.0.0.1:{port}/mcp", proc)
        assert "report_outcome" in asyncio.run(talk())
    finally:
        proc.terminate()
        proc.wait(10)
