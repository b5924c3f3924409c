"""`memp demo`: procedural memory at work on bundled trajectories, with no LLM.

The bundled file holds real runs recorded on ALFWorld games (winning expert runs, and failed
runs of an exploring agent). The demo:
1. builds memory from the training runs with each build strategy, and shows what it keeps;
2. retrieves for held-out tasks with each retrieval strategy, and scores whether the top
   procedure is of the right task type (precision@1);
3. replays the held-out runs in order through each update strategy, as an agent's online
   experience would arrive, and shows how memory changes (added, merged, revised, deprecated).
It writes ``results.json`` and ``report.md`` to the output folder.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from memp.embed import make_embedder
from memp.memory import Memory
from memp.store import SQLiteStore
from memp.types import Trajectory

console = Console()


def bundled_trajectories() -> dict[str, list[Trajectory]]:
    """The demo's runs, by split ('train', 'test')."""
    text = resources.files("memp.data").joinpath("alfworld_examples.jsonl").read_text("utf-8")
    out: dict[str, list[Trajectory]] = {"train": [], "test": []}
    for line in text.splitlines():
        if line.strip():
            t = Trajectory.model_validate_json(line)
            out[t.metadata.get("split", "train")].append(t)
    return out


def _fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


def run_demo(out: str | Path = "demo-out", seed: int = 0) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = bundled_trajectories()
    embedder = make_embedder("minilm", cache=out / "embeddings.sqlite")
    results: dict = {"train_runs": len(data["train"]), "test_runs": len(data["test"]), "seed": seed,
                     "embedder": embedder.name, "agent": "none (recorded runs)"}
    results["build"] = _build(out, data, embedder)
    results["retrieve"] = _retrieve(out, data, embedder, seed)
    results["update"] = _update(out, data, embedder)
    results["seconds"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(_report(results))
    console.print(f"\nwrote {out / 'results.json'} and {out / 'report.md'} in {results['seconds']} s")
    return results


def _build(out: Path, data, embedder) -> dict:
    table = Table(title="1. Build: what memory keeps from the training runs")
    for col in ("strategy", "runs", "procedures", "merged", "avg script steps", "avg run steps"):
        table.add_column(col)
    rows = {}
    for build in ("trajectory", "script", "proceduralization"):
        with Memory(SQLiteStore(_fresh(out / f"memory-{build}.db")), build=build,
                    update="validation", embedder=embedder) as mem:
            reports = [mem.add(t) for t in data["train"]]
            procs = mem.store.list("default", limit=10_000)
            rows[build] = {
                "procedures": len(procs),
                "merged": sum(len(r.merged) for r in reports),
                "avg_script_steps": round(sum(len(p.script) for p in procs) / max(len(procs), 1), 1),
                "avg_run_steps": round(sum(len(t.steps) for t in data["train"]) / len(data["train"]), 1),
            }
            if build == "proceduralization" and procs:
                example = procs[0]
        r = rows[build]
        table.add_row(build, str(len(data["train"])), str(r["procedures"]), str(r["merged"]),
                      str(r["avg_script_steps"]), str(r["avg_run_steps"]))
    console.print(table)
    console.print("An example procedure (proceduralization):", style="bold")
    console.print(example.render(max_observation=80), markup=False, highlight=False)
    return rows


def _retrieve(out: Path, data, embedder, seed: int) -> dict:
    table = Table(title="2. Retrieve: is the top procedure of the held-out task's type?")
    for col in ("strategy", "precision@1", "mean score"):
        table.add_column(col)
    rows = {}
    for strategy in ("random", "query", "avefact", "hybrid"):
        mem = Memory(SQLiteStore(out / "memory-proceduralization.db"), build="proceduralization",
                     retrieve=strategy, embedder=embedder, seed=seed)
        right, scores = 0, []
        for t in data["test"]:
            hits = mem.retrieve(t.task, k=1)
            right += bool(hits) and hits[0].procedure.task_type == t.task.type
            scores += [h.score for h in hits]
        mem.store.close()
        rows[strategy] = {"precision_at_1": round(right / len(data["test"]), 3),
                          "mean_score": round(sum(scores) / max(len(scores), 1), 3)}
        table.add_row(strategy, f"{rows[strategy]['precision_at_1']:.2f}", f"{rows[strategy]['mean_score']:.3f}")
    console.print(table)
    return rows


def _update(out: Path, data, embedder) -> dict:
    table = Table(title="3. Update: memory after replaying the held-out runs online")
    for col in ("strategy", "active", "deprecated", "added", "merged", "revised", "deprecations"):
        table.add_column(col)
    rows = {}
    for update in ("vanilla", "validation", "adjustment"):
        with Memory(SQLiteStore(_fresh(out / f"memory-online-{update}.db")), build="proceduralization",
                    update=update, embedder=embedder) as mem:
            for t in data["train"]:
                mem.add(t)
            totals = {"added": 0, "merged": 0, "revised": 0, "deprecations": 0}
            for t in data["test"]:
                hits = mem.retrieve(t.task, k=1)
                report = mem.update(t, used=hits)
                totals["added"] += len(report.added)
                totals["merged"] += len(report.merged)
                totals["revised"] += len(report.revised)
                totals["deprecations"] += len(report.deprecated)
            rows[update] = {"active": mem.store.count("default", status="active"),
                            "deprecated": mem.store.count("default", status="deprecated"), **totals}
        r = rows[update]
        table.add_row(update, *(str(r[c]) for c in ("active", "deprecated", "added", "merged", "revised",
                                                      "deprecations")))
    console.print(table)
    return rows


def _report(results: dict) -> str:
    lines = ["# memp demo", "",
             f"{results['train_runs']} training runs, {results['test_runs']} held-out runs; "
             f"embedder {results['embedder']}; seed {results['seed']}; {results['seconds']} s.", "",
             "## Build", "", "| strategy | procedures | merged | avg script steps | avg run steps |",
             "|---|---|---|---|---|"]
    for name, r in results["build"].items():
        lines.append(f"| {name} | {r['procedures']} | {r['merged']} | {r['avg_script_steps']} | {r['avg_run_steps']} |")
    lines += ["", "## Retrieve (precision@1 of task type)", "", "| strategy | precision@1 | mean score |",
              "|---|---|---|"]
    for name, r in results["retrieve"].items():
        lines.append(f"| {name} | {r['precision_at_1']:.2f} | {r['mean_score']:.3f} |")
    lines += ["", "## Update (online replay of held-out runs)", "",
              "| strategy | active | deprecated | added | merged | revised | deprecations |",
              "|---|---|---|---|---|---|---|"]
    for name, r in results["update"].items():
        lines.append(f"| {name} | {r['active']} | {r['deprecated']} | {r['added']} | {r['merged']} | "
                     f"{r['revised']} | {r['deprecations']} |")
    return "\n".join(lines) + "\n"
