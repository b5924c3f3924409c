"""The MCP server, spawned over stdio and driven by the SDK's own client."""

from __future__ import annotations

import asyncio
import sys

import pytest

pytest.importorskip("mcp", reason="MCP tests need the 'mcp' extra")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

from memp.store import SQLiteStore  # noqa: E402
from tests.conftest import clean_apple_trajectory  # noqa: E402


def _steps(trajectory):
    return [s.model_dump(mode="json", exclude_none=True) for s in trajectory.steps]


async def _session(db: str):
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "memp.server.mcp", "--db", db, "--namespace", "agent-1", "--embedder", "hashing"])
    async with Client(params, read_timeout_seconds=60) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"retrieve_procedures", "record_trajectory", "report_outcome"} <= tools

        run = clean_apple_trajectory()
        rec = await client.call_tool("record_trajectory", {
            "task": run.task.text, "steps": _steps(run), "reward": 1.0, "agent": "mcp-test"})
        assert not rec.is_error, rec.content
        added = rec.structured_content["added"]
        assert len(added) == 1

        got = await client.call_tool("retrieve_procedures", {"task": "put a clean apple in fridge", "k": 2})
        procedures = got.structured_content["procedures"]
        assert [p["ref"] for p in procedures] == added and "Script:" in procedures[0]["text"]

        failed = clean_apple_trajectory(success=False)
        out = await client.call_tool("report_outcome", {
            "task": failed.task.text, "steps": _steps(failed), "reward": 0.0, "used": added})
        assert not out.is_error, out.content
        assert out.structured_content["revised"]

        bad = await client.call_tool("report_outcome", {
            "task": "t", "steps": [], "reward": 0.0, "used": ["nope@v1"]})
        assert bad.is_error and "no version 1" in bad.content[0].text
        empty = await client.call_tool("record_trajectory", {"task": "  ", "steps": [], "reward": 1.0})
        assert empty.is_error and "task text is empty" in empty.content[0].text
        return added[0].split("@")[0]


def test_mcp_tools_over_stdio(tmp_path):
    db = str(tmp_path / "mcp.db")
    pid = asyncio.run(_session(db))
    with SQLiteStore(db) as store:
        assert [v.version for v in store.history("agent-1", pid)] == [1, 2]
        assert store.get("agent-1", pid, 1).stats.uses == 1
