"""`memp demo`: procedural memory at work on real ALFWorld games, offline, with no LLM.

1. Generate ALFWorld games with memp's generator: ``train`` games, and ``unseen`` games on floor
   plans that training never used (the engine is the official one; games are checked solvable).
2. Record the engine's expert on the training games: the gold trajectories.
3. Build memory from the gold runs with each build strategy, and run the LLM-free agent on the
   unseen games without memory and with each memory (query retrieval).
4. Online: memory starts empty and learns from the agent's own runs, group after group, with
   each update strategy.
It prints the tables and writes ``results.json``, ``report.md`` and PNG plots to the output folder.
Games and gold runs are kept there and reused by the next run.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from memp.embed import make_embedder
from memp.experiments import plots
from memp.experiments.alfworld import AlfworldPlayer, episode_tasks, gold_trajectories, run_builds, run_online
from memp.experiments.runner import markdown_table, progress_bar

console = Console()


def _generate(split: str, n: int, seed: int, out: str) -> list[str]:
    from memp.envs.alfworld.games import find_games, generate_games

    existing = find_games(Path(out) / split)
    if len(existing) >= n:
        return [str(g) for g in existing[:n]]
    return [str(g) for g in generate_games(split, n, seed, out)]


def games(out: Path, n_train: int, n_test: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Train and unseen games, generated side by side in two processes (or reused)."""
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        train = pool.submit(_generate, "train", n_train, seed, str(out))
        test = pool.submit(_generate, "unseen", n_test, seed + 1, str(out))
        return [Path(g) for g in train.result()], [Path(g) for g in test.result()]


def run_demo(out: str | Path = "demo-out", seed: int = 0, n_train: int = 30, n_test: int = 48,
             group_size: int = 12, workers: int = 2) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("episodes.jsonl", "trajectories.jsonl"):
        (out / stale).unlink(missing_ok=True)  # the demo always plays every episode afresh
    started = time.perf_counter()
    console.print(f"[bold]1.[/] games: {n_train} train, {n_test} unseen (generated, seed {seed})")
    train, test = games(out / "games", n_train, n_test, seed)
    console.print("[bold]2.[/] expert runs on the train games")
    gold = gold_trajectories(train, out / "gold.jsonl", workers=workers, seed=seed)
    embedder = make_embedder("minilm", cache=out / "embeddings.sqlite")
    tasks = episode_tasks(test, seed)
    console.print(f"[bold]3.[/] the LLM-free agent on {len(tasks)} unseen games, with and without memory")
    with AlfworldPlayer(workers=workers) as play, progress_bar() as progress:
        builds = run_builds(tasks, gold, play, out, embedder, progress=progress)
        online = run_online(tasks, play, out, embedder, group_size=group_size, progress=progress)
    results = {
        "agent": "offline-alfworld (LLM-free)", "games": "generated (memp generator), unseen floor plans",
        "seed": seed, "n_train_games": len(train), "gold_runs": len(gold), "n_test_games": len(tasks),
        "retrieve": "query", "k": 3, "embedder": embedder.name, "group_size": group_size,
        "machine": {"cores": mp.cpu_count(), "python": platform.python_version()},
        "build": builds, "online": online, "seconds": round(time.perf_counter() - started, 1),
    }
    _write(out, results)
    _show(results)
    console.print(f"\nwrote {out}/results.json, report.md, build.png, online.png "
                  f"in {results['seconds']:.0f} s")
    return results


def _write(out: Path, results: dict) -> None:
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plots.bars(results["build"], out / "build.png", "Build strategies (unseen games)")
    plots.curves({u: c["groups"] for u, c in results["online"].items()}, out / "online.png",
                 "Online update from empty memory")
    online_rows = {f"online {u}": c["overall"] for u, c in results["online"].items()}
    (out / "report.md").write_text(
        f"# memp demo\n\nAgent: {results['agent']}. Games: {results['games']}; "
        f"{results['gold_runs']} gold runs from {results['n_train_games']} train games; "
        f"{results['n_test_games']} test games; seed {results['seed']}; retrieval "
        f"{results['retrieve']}, k={results['k']}; {results['seconds']:.0f} s.\n\n"
        "## Build strategies (memory built from expert runs)\n\n" + markdown_table(results["build"]) +
        "\n![build](build.png)\n\n## Online update (memory starts empty)\n\n" + markdown_table(online_rows) +
        "\n![online](online.png)\n"
    )


def _show(results: dict) -> None:
    for title, rows in (("Build strategies (memory from expert runs)", results["build"]),
                        ("Online update from empty memory",
                         {f"online {u}": c["overall"] for u, c in results["online"].items()})):
        table = Table(title=title)
        for col in ("condition", "n", "success", "95% CI", "avg steps", "avg steps (won)"):
            table.add_column(col)
        for name, s in rows.items():
            lo, hi = s["success_ci95"]
            won = "-" if s["avg_steps_success"] is None else f"{s['avg_steps_success']:.1f}"
            table.add_row(name, str(s["n"]), f"{s['success_rate']:.2f}", f"{lo:.2f}–{hi:.2f}",
                          f"{s['avg_steps']:.1f}", won)
        console.print(table)
