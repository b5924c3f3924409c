"""`memp serve` (REST service) and `memp mcp` (MCP server); the lead mounts both at top level."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from memp.cli._common import EmbedderOpt, check_strategies, typer_app

app = typer_app("Serve procedural memory to many agents: REST and MCP.")

DbArg = Annotated[str, typer.Option("--db", help="SQLite file or postgresql:// URL.", envvar="MEMP_DB")]
HostOpt = Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 unless behind a proxy.")]


@app.command()
def serve(db: DbArg = "memp.db", host: HostOpt = "127.0.0.1", port: int = 8080,
          tokens: Annotated[Optional[Path], typer.Option(
              "--tokens", help="File of token=namespace lines (also read: MEMP_TOKENS).")] = None,
          embedder: EmbedderOpt = "minilm", build: str = "proceduralization", retrieve: str = "query",
          update: str = "adjustment", k: int = 3,
          max_body: Annotated[int, typer.Option(help="Largest request body, in bytes.")] = 4 * 1024 * 1024,
          experiments: Annotated[Optional[Path], typer.Option(
              "--experiments", help="Folder of experiment outputs (results.json, report.md, PNGs) "
              "for the inspector page.")] = None) -> None:
    """Run the REST service (OpenAPI at /docs, the memory inspector page at /); each bearer token
    maps to one namespace."""
    from memp.server.auth import load_tokens
    from memp.server.rest import serve as run

    check_strategies(build=build, retrieve=retrieve, update=update)
    run(db, host=host, port=port, tokens=load_tokens(tokens), embedder=embedder, max_body_bytes=max_body,
        build=build, retrieve=retrieve, update=update, k=k, experiments=experiments)


@app.command()
def mcp(db: DbArg = "memp.db",
        namespace: Annotated[str, typer.Option("--namespace", "-n", envvar="MEMP_NAMESPACE")] = "default",
        transport: Annotated[str, typer.Option(help="stdio (spawned by an agent) or http.")] = "stdio",
        host: HostOpt = "127.0.0.1", port: int = 8765, embedder: EmbedderOpt = "minilm",
        build: str = "proceduralization", retrieve: str = "query", update: str = "adjustment") -> None:
    """Run the MCP server: tools retrieve_procedures, record_trajectory, report_outcome."""
    from memp.server.mcp import run_server

    check_strategies(build=build, retrieve=retrieve, update=update)
    run_server(db, namespace=namespace, embedder=embedder, transport=transport, host=host, port=port,
               build=build, retrieve=retrieve, update=update)
