"""The MCP server: procedural memory as three tools any MCP-capable agent can call.

    memp mcp --db memp.db --namespace my-agent                 # stdio (an agent spawns it)
    memp mcp --db postgresql://… --transport http --port 8765  # streamable HTTP on 127.0.0.1

- ``retrieve_procedures(task, k)``: the procedures most relevant to a task, as prompt-ready text
  with the refs to report back;
- ``record_trajectory(task, steps, reward)``: learn from a finished run;
- ``report_outcome(task, steps, reward, used)``: the same for a run that was given procedures;
  their use is counted, and failing ones are revised or deprecated by the update strategy.

A memp error becomes a tool error whose text says what to fix, so the model can correct its call.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from memp._errors import MempError
from memp.memory import Memory
from memp.types import RetrievalHit, Step, Task, Trajectory

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"the MCP server needs the 'mcp' extra ({_err.name} is missing): pip install 'memp[mcp]'"
    ) from None

INSTRUCTIONS = (
    "Procedural memory. Before a task, call retrieve_procedures with the task description and put "
    "the returned text in your context. After the task, call report_outcome with what you did, the "
    "reward (1 = solved) and the refs you were given; if you used no procedure, call "
    "record_trajectory instead."
)


def _trajectory(task: str, steps: list[Step], reward: float, success: bool | None,
                task_type: str | None, agent: str | None, model: str | None) -> Trajectory:
    return Trajectory(task=Task(text=task, type=task_type), steps=steps, reward=reward,
                      success=success, agent=agent, model=model)


def build_server(memory: Memory, *, name: str = "memp") -> MCPServer:
    """An MCP server whose tools read and write one namespace of ``memory``."""
    server = MCPServer(name, instructions=INSTRUCTIONS)

    def guarded(fn):
        def call(*args: Any, **kwargs: Any):
            try:
                return fn(*args, **kwargs)
            except MempError as err:
                raise ToolError(str(err)) from None
            except ValueError as err:  # pydantic validation of the assembled trajectory
                raise ToolError(f"invalid arguments: {err}") from None
        return call

    @server.tool(description="Procedures learned from earlier runs that fit this task, best first. "
                             "Returns prompt-ready text and the refs to pass to report_outcome.")
    def retrieve_procedures(task: str, k: int = 3) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            if not 0 <= k <= 50:
                raise ToolError(f"k must be between 0 and 50, got {k}")
            hits = memory.retrieve(task, k=k)
            return {"procedures": [{"ref": h.procedure.ref, "score": h.score, "text": h.procedure.render()}
                                   for h in hits]}
        return guarded(run)()

    @server.tool(description="Record a finished run (no procedures used) so memory can learn from it.")
    def record_trajectory(task: str, steps: list[Step], reward: float, success: bool | None = None,
                          task_type: str | None = None, agent: str | None = None,
                          model: str | None = None) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            t = _trajectory(task, steps, reward, success, task_type, agent, model)
            return memory.update(t).model_dump(mode="json")
        return guarded(run)()

    @server.tool(description="Report how a run that was given procedures went: `used` holds the refs "
                             "retrieve_procedures returned. Counts their use and revises failing ones.")
    def report_outcome(task: str, steps: list[Step], reward: float, used: list[str],
                       success: bool | None = None, task_type: str | None = None,
                       agent: str | None = None, model: str | None = None) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            t = _trajectory(task, steps, reward, success, task_type, agent, model)
            hits = []
            for ref in used:
                pid, sep, version = ref.partition("@v")
                if not pid or (sep and not version.isdigit()):
                    raise ToolError(f"bad ref {ref!r}; pass the refs retrieve_procedures returned (id@vN)")
                p = memory.store.get(memory.namespace, pid, int(version) if sep else None)
                hits.append(RetrievalHit(procedure=p, score=0.0))
            return memory.update(t, used=hits).model_dump(mode="json")
        return guarded(run)()

    return server


def run_server(db: str, *, namespace: str = "default", embedder: str = "minilm",
               transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765,
               **memory_options: Any) -> None:
    """Open the memory and serve it over stdio or streamable HTTP until the client goes away."""
    from memp.embed import make_embedder

    with Memory.open(db, namespace=namespace, embedder=make_embedder(embedder), **memory_options) as mem:
        server = build_server(mem)
        if transport == "stdio":
            server.run("stdio")
        elif transport in ("http", "streamable-http"):
            server.run("streamable-http", host=host, port=port)
        else:
            raise MempError(f"unknown transport {transport!r}; use stdio or http")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memp.server.mcp", description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="memp.db", help="SQLite path or postgresql:// URL")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--embedder", default="minilm", choices=["minilm", "minilm-torch", "hashing"])
    parser.add_argument("--build", default="proceduralization")
    parser.add_argument("--retrieve", default="query")
    parser.add_argument("--update", default="adjustment")
    parser.add_argument("--transport", default="stdio", choices=["stdio", "http"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    a = parser.parse_args(argv)
    try:
        run_server(a.db, namespace=a.namespace, embedder=a.embedder, transport=a.transport, host=a.host,
                   port=a.port, build=a.build, retrieve=a.retrieve, update=a.update)
    except MempError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
