"""`memp alfworld ...`: generate games and record expert trajectories.

Each command is one library call; the engine is imported only when a command runs, so the group
mounts even without the `alfworld` extra.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="ALFWorld games: generate, record experts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def generate(
    split: Annotated[str, typer.Option(help="train, seen or unseen (held-out floor plans).")] = "train",
    n: Annotated[int, typer.Option(help="How many games.")] = 10,
    seed: Annotated[int, typer.Option(help="Same seed, same games.")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder; games go to OUT/<split>/.")] = Path("alfworld-games"),
    workers: Annotated[int, typer.Option(help="Processes; the games do not depend on it.")] = 1,
) -> None:
    """Generate solvable ALFWorld games from the floor plans shipped in the alfworld package."""
    from memp.envs.alfworld.games import generate_games

    start = time.perf_counter()

    def progress(done: int, total: int) -> None:
        typer.echo(f"\r{done}/{total} games", nl=False, err=True)

    games = generate_games(split, n, seed, out, workers=workers, progress=progress)
    typer.echo("", err=True)
    typer.echo(f"{len(games)} games in {out / split} ({time.perf_counter() - start:.0f} s)")


@app.command()
def expert(
    games: Annotated[Path, typer.Argument(help="A folder of games (searched recursively).")],
    out: Annotated[Path, typer.Option(help="JSONL file of winning trajectories.")] = Path("gold.jsonl"),
    max_steps: Annotated[int, typer.Option(help="Step limit of each expert attempt.")] = 50,
    planner: Annotated[bool, typer.Option(help="Fall back to the planner expert.")] = True,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Record the expert's winning runs as memp trajectories (gold data for building memory)."""
    from memp.envs.alfworld.expert import expert_trajectories
    from memp.envs.alfworld.games import find_games

    paths = find_games(games)
    experts = ("handcoded", "planner") if planner else ("handcoded",)
    gold = expert_trajectories(paths, max_steps=max_steps, experts=experts, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for t in gold:
            f.write(json.dumps(t.model_dump(mode="json")) + "\n")
    typer.echo(f"{len(gold)}/{len(paths)} games won; trajectories in {out}")
