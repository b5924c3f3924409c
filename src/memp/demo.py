"""`memp demo`: procedural memory at work on real ALFWorld games, offline, with no LLM.

A preset of the suite runner (``memp.experiments.suite``):

1. Generate ALFWorld games with memp's generator: ``train`` games, and ``unseen`` games on floor
   plans that training never used (the engine is the official one; games are checked solvable).
2. Record the engine's expert on the training games: the gold trajectories.
3. Build memory from the gold runs with each build strategy, and run the LLM-free agent on the
   unseen games without memory and with each memory (query retrieval).
4. Online: memory starts empty and learns from the agent's own runs, group after group, with
   each update strategy.
5. Self-taught: memory starts empty, the agent plays the training games (twice, 50 steps each)
   and every run updates memory; then memory is frozen on the unseen games. No expert run is used.
It prints the tables and writes ``results.json``, ``report.md`` and PNG plots to the output folder.
Games and gold runs are kept there and reused by the next run; episodes are always played afresh.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from memp.embed import experiment_backend, make_embedder
from memp.experiments import report
from memp.experiments.alfworld import AlfworldBenchmark, generated_games, summarise
from memp.experiments.paper import PaperConfig, conditions, log_run
from memp.experiments.suite import TRAIN, Settings, run_suite
from memp.experiments.tables import BUILDS, UPDATES, by_group, final_memory, learning_curve

console = Console()
SOURCE = "generated (memp generator), unseen floor plans"
PASSES, TRAIN_STEPS = 2, 50  # the self-taught training stream: passes over the train games, step budget


def run_demo(out: str | Path = "demo-out", seed: int = 0, n_train: int = 30, n_test: int = 48,
             group_size: int = 12, workers: int = 2) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / f"seed-{seed}", ignore_errors=True)  # the demo always plays every episode afresh
    (out / "suite.json").unlink(missing_ok=True)
    started = time.perf_counter()
    console.print(f"[bold]1.[/] games: {n_train} train, {n_test} unseen (generated, seed {seed})")
    train, test = generated_games(out / "games", n_train, n_test, seed)
    console.print("[bold]2.[/] expert runs on the train games")
    bench = AlfworldBenchmark(out, gold_seed=seed, workers=workers, games=(train, test, SOURCE))
    gold = bench.prepare(seed).expert
    embedder = make_embedder("minilm", cache=out / "embeddings.sqlite", backend=experiment_backend())
    console.print(f"[bold]3.[/] the LLM-free agent on {len(test)} unseen games, with and without memory")
    cfg = PaperConfig.for_env("alfworld", seeds=(seed,), group_size=group_size, self_taught=True, passes=PASSES,
                              train_max_steps=TRAIN_STEPS)
    wanted = ("no memory", *BUILDS, *(f"{kind} {u}" for kind in ("online", "self-taught") for u in UPDATES))
    # Played in file order: the curves follow the games as generated.
    run = run_suite(bench, out, Settings(seeds=(seed,), group_size=group_size, update_every=group_size,
                                         order="file", train_max_steps=TRAIN_STEPS, workers=workers),
                    [c for c in conditions(cfg) if c.name in wanted], embedder, fingerprint={"k": cfg.k})

    def rows(name: str, part: str = "test") -> list:
        return [r for r in run.records if r.condition == name and r.set == part]

    online = {u: {"overall": summarise(rows(f"online {u}")), "groups": by_group(rows(f"online {u}"), summarise),
                  "memory": {k: v for k, v in final_memory(rows(f"online {u}"), (seed,))[-1].items() if k != "seed"}}
              for u in UPDATES}
    taught = {u: {"test": summarise(rows(f"self-taught {u}")),
                  "training": learning_curve(rows(f"self-taught {u}", TRAIN), summarise)} for u in UPDATES}
    seconds = time.perf_counter() - started
    results = {
        "agent": bench.agent_name(), "games": SOURCE, "seed": seed, "n_train_games": len(train),
        "gold_runs": len(gold), "n_test_games": len(test), "retrieve": cfg.retrieve, "k": cfg.k,
        "embedder": embedder.name, "group_size": group_size,
        "machine": {"cores": mp.cpu_count(), "python": platform.python_version()},
        "build": {name: summarise(rows(name)) for name in ("no memory", *BUILDS)}, "online": online,
        "self_taught": {"passes": PASSES, "train_max_steps": TRAIN_STEPS, **taught}, "seconds": round(seconds, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    tables = {"table1_build": {"test": results["build"]},
              "figure3_update": {"test": {u: c["groups"] for u, c in online.items()}},
              "figure3_overall": {"test": {u: c["overall"] for u, c in online.items()}},
              "figure3_memory": {"test": {u: final_memory(rows(f"online {u}"), (seed,)) for u in UPDATES}},
              "self_taught_overall": {"test": {u: c["test"] for u, c in taught.items()}},
              "self_taught_training": {u: c["training"] for u, c in taught.items()}}
    about = {**results, "source": SOURCE, "agent_built_runs": 0, "seconds_all_runs": log_run(out, seconds),
             "versions": report.versions(), "usage": {"tokens": 0, "cost_usd": 0.0}}
    report.write_report(out, about, tables, bench, cfg)
    _show(results)
    console.print(f"\nwrote {out}/results.json and report.md in {results['seconds']:.0f} s")
    return results


def _show(results: dict) -> None:
    for title, rows in (("Build strategies (memory from expert runs)", results["build"]),
                        ("Online update from empty memory",
                         {f"online {u}": c["overall"] for u, c in results["online"].items()}),
                       ("Self-taught memory (learned from empty on the train games, then frozen)",
                        {"no memory": results["build"]["no memory"],
                         **{f"self-taught {u}": results["self_taught"][u]["test"] for u in UPDATES}})):
        table = Table(title=title)
        for col in ("condition", "n", "success", "95% CI", "avg steps", "avg steps (won)"):
            table.add_column(col)
        for name, s in rows.items():
            lo, hi = s["success_ci95"]
            won = "-" if s["avg_steps_success"] is None else f"{s['avg_steps_success']:.1f}"
            table.add_row(name, str(s["n"]), f"{s['success_rate']:.2f}", f"{lo:.2f}–{hi:.2f}",
                          f"{s['avg_steps']:.1f}", won)
        console.print(table)
    for u in UPDATES:
        curve = results["self_taught"][u]["training"]
        console.print(f"self-taught {u}, success per group of training episodes: "
                      + " → ".join(f"{p['success_rate']:.2f}" for p in curve))
