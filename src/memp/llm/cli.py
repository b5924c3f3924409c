"""``memp llm``: look at the configured endpoint before spending an experiment on it.

The main CLI mounts this with ``app.add_typer(memp.llm.cli.app, name="llm")``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from memp._errors import LLMError
from memp.llm.options import LLMApiKeyOpt, LLMBaseUrlOpt, LLMModelOpt, LLMTimeoutOpt

app = typer.Typer(
    name="llm",
    help="Inspect the OpenAI-compatible LLM endpoint memp is configured to use.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _group() -> None:
    """Inspect the OpenAI-compatible LLM endpoint memp is configured to use."""
    # A callback keeps `check` a named subcommand even while it is the only one.


@app.command()
def check(
    base_url: LLMBaseUrlOpt = None,
    model: LLMModelOpt = None,
    api_key: LLMApiKeyOpt = None,
    timeout: LLMTimeoutOpt = 10.0,
    ask: Annotated[
        bool,
        typer.Option("--ask/--no-ask", help="Also send a one-line prompt to the model and show the reply"),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Report whether the endpoint answers and which models it lists. Exit code 1 if it does not."""
    report = run_check(base_url, model, api_key, timeout=timeout, ask=ask)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    n_ctx: Annotated[int, typer.Option("--n-ctx", help="Context window in tokens")] = 2048,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, show_default=False,
        help="CPU threads for llama.cpp [default: half the cores, 1 to 4; more than the free cores "
        "makes it much slower]")] = None,
) -> None:
    """Serve the bundled SmolLM2-135M with llama.cpp: an LLM endpoint with no key and no download.

    Then, in another shell: MEMP_LLM_BASE_URL=http://127.0.0.1:8080/v1 MEMP_LLM_MODEL=smollm2 memp llm check
    """
    import tempfile
    from pathlib import Path

    from memp.llm.local import (
        CHAT_ALIAS,
        EMBED_ALIAS,
        llama_server_command,
        llama_server_config,
        missing_for_llama_server,
        run_until_stopped,
    )

    missing = missing_for_llama_server()
    if missing is not None:
        typer.echo(f"cannot serve: {missing}", err=True)
        raise typer.Exit(1)
    with tempfile.TemporaryDirectory(prefix="memp-llama-") as tmp:
        command = llama_server_command(
            llama_server_config(port, host=host, n_ctx=n_ctx, threads=threads), Path(tmp) / "config.json"
        )
        typer.echo(
            f"serving SmolLM2-135M at http://{host}:{port}/v1 as model {CHAT_ALIAS!r} "
            f"(embeddings: {EMBED_ALIAS!r}); Ctrl-C or SIGTERM stops it"
        )
        code = run_until_stopped(command)
    raise typer.Exit(code)


def run_check(
    base_url: str | None, model: str | None, api_key: str | None, *, timeout: float = 10.0, ask: bool = False
) -> dict[str, object]:
    """The check as data: {"ok", "base_url", "models", "model", "model_listed", "reply", "error"}."""
    from memp.llm.client import OpenAIClient, list_models
    from memp.llm.endpoint import Endpoint

    report: dict[str, object] = {"ok": False, "base_url": base_url, "model": model, "models": []}
    try:
        endpoint = Endpoint.resolve(base_url, model, api_key, require_model=ask)
        report["base_url"], report["model"] = endpoint.base_url, endpoint.model
        models = list_models(endpoint, timeout=timeout)
        report["models"] = models
        if endpoint.model:
            report["model_listed"] = endpoint.model in models
        if ask:
            client = OpenAIClient(
                endpoint.model, endpoint.base_url, endpoint.api_key, timeout=timeout, max_retries=0
            )
            report["reply"] = client.complete(
                [{"role": "user", "content": "Reply with the single word: ready"}], max_tokens=8
            )
            report["usage"] = client.usage.to_dict()
        report["ok"] = True
    except LLMError as err:
        report["error"] = str(err)
    return report


def _print_report(report: dict[str, object]) -> None:
    if not report["ok"] and not report["models"]:
        typer.echo(f"LLM endpoint: {report['base_url'] or '(none)'}: NOT OK", err=True)
        typer.echo(f"  {report['error']}", err=True)
        return
    typer.echo(f"LLM endpoint: {report['base_url']}: answers")
    models = report["models"] or []
    typer.echo(f"  models listed ({len(models)}): {', '.join(models) or '(none)'}")  # type: ignore[arg-type]
    if report.get("model"):
        listed = report.get("model_listed")
        note = "listed" if listed else "NOT listed (some servers, e.g. llama.cpp, answer to any name)"
        typer.echo(f"  configured model: {report['model']} ({note})")
    if "reply" in report:
        typer.echo(f"  reply: {report['reply']!r}")
    if report.get("error"):
        typer.echo(f"  error: {report['error']}", err=True)


__all__ = ["app", "check", "run_check", "serve"]
