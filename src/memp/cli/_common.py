"""Options and helpers shared by every `memp` command."""

from __future__ import annotations

import json
import os
import re
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from memp._errors import MempError, StoreError, UnknownStrategyError

if TYPE_CHECKING:
    from memp.store import Store

console = Console()
err_console = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


# A string, not a Path: Path("postgresql://u:pw@host/db") would fold the '//' into one '/'.
DbOpt = Annotated[str, typer.Option("--db", help="Memory database: an SQLite file or a postgresql:// URL.",
                                    envvar="MEMP_DB")]
NamespaceOpt = Annotated[str, typer.Option("--namespace", "-n", help="Namespace inside the database.",
                                           envvar="MEMP_NAMESPACE")]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", help="Output as a table or as JSON.")]
EmbedderOpt = Annotated[str, typer.Option(
    "--embedder", help="minilm (default, ONNX Runtime), minilm-torch (same vectors, on torch) or hashing.",
    envvar="MEMP_EMBEDDER")]


def typer_app(help: str) -> typer.Typer:
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False)


_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*):[^@/\s]*@")
_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """The text with every URL's password (and any libpq ``password=``) replaced by ***."""
    return _DSN_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))


def is_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def existing_db(db: str | Path) -> Path:
    """Commands that only use a memory must not create an empty database by mistake."""
    path = Path(db)
    if path.is_dir():
        raise StoreError(f"--db {path} is a directory; give the database file inside it")
    if not path.exists():
        raise StoreError(f"no memory database at {path}; create one with `memp memory add` "
                         "or `memp memory import`, or pass --db")
    return path


def open_existing(db: str) -> Store:
    """The memory at ``db`` (a file that must exist, or a URL), opened as ``Memory.open`` does."""
    from memp.store import open_store

    return open_store(db if is_url(db) else existing_db(db))


def open_for_reading(db: str) -> Store:
    """``open_existing`` for commands that only read: the store never writes to the file given."""
    from memp.store import open_store

    return open_store(db if is_url(db) else existing_db(db), read_only=True)


def check_strategies(**names: str) -> None:
    """An unknown strategy name is refused before a database is opened (or created) for nothing."""
    from memp.build import BUILDERS
    from memp.retrieve import RETRIEVERS
    from memp.update import UPDATERS

    known = {"build": BUILDERS, "update": UPDATERS, "retrieve": RETRIEVERS}
    for kind, name in names.items():
        if name not in known[kind]:
            raise UnknownStrategyError(f"unknown {kind} strategy {name!r}; choose one of: "
                                       f"{', '.join(known[kind])}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def run(app: typer.Typer) -> None:
    """Run a typer app, turning memp's own errors into one clear line and exit code 1."""
    try:
        # Without standalone mode click returns a command's typer.Exit code instead of exiting.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except MempError as err:
        err_console.print(Text.assemble(("error: ", "bold red"), redact(str(err))), soft_wrap=True)
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
        if os.environ.get("MEMP_DEBUG"):
            raise
        # A bug: one line (its text may hold a URL, so redacted), not a traceback to a user.
        err_console.print(Text.assemble(("error: ", "bold red"), redact(f"{type(err).__name__}: {err}"),
                                        " (a bug in memp; rerun with MEMP_DEBUG=1 for the traceback "
                                        "and report it)"), soft_wrap=True)
        sys.exit(1)
