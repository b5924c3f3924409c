"""Options and helpers shared by every `memp` command."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from memp._errors import MempError, StoreError

console = Console()
err_console = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


DbOpt = Annotated[Path, typer.Option("--db", help="Memory database file.", envvar="MEMP_DB")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace inside the database.",
                                           envvar="MEMP_NAMESPACE")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output as a table or as JSON.")]
EmbedderOpt = Annotated[str, typer.Option("--embedder", help="minilm (default) or hashing.",
                                          envvar="MEMP_EMBEDDER")]


def typer_app(help: str) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False)


def existing_db(path: Path) -> Path:
    """Read-only commands must not create an empty database by mistake."""
    if path.is_dir():
        raise StoreError(f"--db {path} is a directory; give the database file inside it")
    if not path.exists():
        raise StoreError(f"no memory database at {path}; create one with `memp memory add` "
                         "or `memp memory import`, or pass --db")
    return path


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def run(app: typer.Typer) -> None:
    """Run a typer app, turning memp's own errors into one clear line and exit code 1."""
    try:
        app(standalone_mode=False)
    except MempError as err:
        err_console.print(Text.assemble(("error: ", "bold red"), str(err)), soft_wrap=True)
        sys.exit(1)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as err:  # click's usage errors
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise
