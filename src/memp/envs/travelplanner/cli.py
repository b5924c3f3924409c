"""``memp travelplanner ...``: score submissions and generate queries (``bench`` is mounted by ``memp.cli.main``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from memp._errors import MempError

app = typer.Typer(
    name="travelplanner",
    help="TravelPlanner: official evaluation and query generation.",
    no_args_is_help=True,
    add_completion=False,
)

DataOpt = Annotated[
    Optional[Path],
    typer.Option("--data", help="TravelPlanner data directory (default: $MEMP_TRAVELPLANNER_DATA)."),
]


def _fail(err: Exception) -> None:
    Console(stderr=True).print(f"[red]error:[/red] {err}")
    raise typer.Exit(code=2)


@app.command()
def evaluate(
    queries: Annotated[Path, typer.Option("--queries", "-q", help="Query file (JSON Lines or CSV).")],
    plans: Annotated[Path, typer.Option("--plans", "-p", help="Submission: JSON Lines, one {\"plan\": [...]} per query.")],
    split: Annotated[
        Optional[str],
        typer.Option(help="train/validation/test: use the official fixed denominators."),
    ] = None,
    strict: Annotated[bool, typer.Option(help="memp-strict mode: the official quirks fixed.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    details: Annotated[bool, typer.Option(help="Also list every plan that failed, and why.")] = False,
    data: DataOpt = None,
) -> None:
    """Score plans as the official TravelPlanner evaluation does."""
    from memp.envs.travelplanner.data import load_database
    from memp.envs.travelplanner.evaluator import METRIC_NAMES, evaluate_file

    try:
        db = load_database(data)
        result = evaluate_file(queries, plans, db=db, split=split, strict=strict)
    except (MempError, ValueError, OSError) as err:
        _fail(err)
        return
    if fmt == "json":
        typer.echo(json.dumps(result, indent=2, default=str))
        return
    console = Console()
    table = Table(title=f"{result['evaluation']} (N = {result['n']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, name in METRIC_NAMES.items():
        table.add_row(name, f"{100 * result[key]:.2f}%")
    console.print(table)
    for crash in result["crashes"]:
        console.print(f"[yellow]official evaluation would crash on plan {crash['index']}:[/yellow] {crash['reason']}")
    if details:
        for plan in result["plans"]:
            if not plan["final_pass"]:
                console.print(f"plan {plan['index']}: {plan['summary']}")


@app.command()
def generate(
    n: Annotated[int, typer.Option("--n", help="How many queries.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same queries).")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Write JSON Lines here (default: stdout).")] = None,
    data: DataOpt = None,
) -> None:
    """Generate solvable queries (with the plan their budget came from) as JSON Lines."""
    from memp.envs.travelplanner.data import load_database
    from memp.envs.travelplanner.generator import generate_queries

    try:
        queries = generate_queries(n, load_database(data), seed=seed)
    except (MempError, ValueError, RuntimeError) as err:
        _fail(err)
        return
    lines = [json.dumps(q.to_official() | {"idx": q.idx, "annotated_plan": q.annotated_plan}) for q in queries]
    if out is None:
        typer.echo("\n".join(lines))
    else:
        out.write_text("\n".join(lines) + "\n", encoding="utf-8")
        typer.echo(f"wrote {len(lines)} queries to {out}")

