"""The TravelPlanner experiment: the LLM-free planner without and with procedural memory.

Memory is built from expert runs, as the paper builds it from gold trajectories: the tool-use
trajectories behind the 45 gold train plans and behind the feasible plans of ``n_train``
generated queries (``memp.envs.travelplanner.gold``). The planner then runs on two held-out
sets, ``n_test`` generated queries (another seed) and the validation queries, under:

- ``no_memory``;
- ``<build>`` for each build strategy: memory from the expert runs, unchanged while testing;
- ``<build>+adjustment``: the same memory updated online by the adjustment strategy, so a
  procedure that led to a failure is revised from the evaluator's verdicts before the next query;
- ``retrieve=<name>`` (proceduralization): the retrieval strategies compared.

Scores are the official evaluation's (``evaluate``; N is the number of queries in the set, since
the validation file here holds 120 of the official 180). Steps are tool calls per query.
Everything is deterministic given the seed.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memp.agents.offline_travel import OfflineTravelPlanner
from memp.embed import Embedder, make_embedder
from memp.experiments.travel_adjust import travel_memory
from memp.envs.travelplanner.data import Database, load_database
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.episode import task_for
from memp.envs.travelplanner.evaluator import METRIC_NAMES, evaluate
from memp.envs.travelplanner.generator import generate_queries
from memp.envs.travelplanner.gold import gold_trajectories
from memp.envs.travelplanner.queries import TravelQuery, load_queries
from memp.memory import Memory
from memp.types import RetrievalHit, Trajectory

BUILDS = ("trajectory", "script", "proceduralization")
RETRIEVERS = ("random", "query", "avefact")
METRICS = tuple(METRIC_NAMES)
NAMES = {**METRIC_NAMES, "steps": "Steps (tool calls per query)"}
SHORT = {
    "commonsense_micro": "#CS micro", "commonsense_macro": "#CS macro", "hard_micro": "#HC micro",
    "hard_macro": "#HC macro", "final_pass_rate": "Final pass", "delivery_rate": "Delivery",
    "steps": "Steps",
}


@dataclass
class BenchConfig:
    """What to run; constructors only store settings (the run is ``run_benchmark``)."""

    seed: int = 0
    n_train: int = 45  # generated queries whose expert runs join the 45 gold train runs
    n_test: int = 45  # held-out generated queries
    n_validation: int | None = None  # validation queries used (None: all)
    embedder: str = "minilm"
    retrieve: str = "avefact"
    k: int = 3
    builds: tuple[str, ...] = BUILDS
    retrievers: tuple[str, ...] = RETRIEVERS
    data: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _key(q: TravelQuery) -> tuple:
    return (q.org, q.dest, tuple(q.date), q.people_number, q.level)


def datasets(cfg: BenchConfig, db: Database) -> dict[str, list[TravelQuery]]:
    """Train (gold + generated) and the two held-out sets, deterministic by seed."""
    root = db.root / "queries"
    train = load_queries(root / "train.jsonl")
    generated_train = generate_queries(cfg.n_train, db, seed=cfg.seed) if cfg.n_train else []
    seen = {_key(q) for q in train + generated_train}
    # A generous draw, then the first n_test that are not train queries.
    pool = generate_queries(cfg.n_test * 2 + 6, db, seed=cfg.seed + 10_000) if cfg.n_test else []
    test = [q for q in pool if _key(q) not in seen][: cfg.n_test]
    validation = load_queries(root / "validation.jsonl")
    if cfg.n_validation is not None:
        validation = validation[: cfg.n_validation]
    return {"train_gold": train, "train_generated": generated_train,
            "test_generated": test, "validation": validation}


def retrieve_stable(memory: Memory, task, k: int) -> list[RetrievalHit]:
    """The top k hits with ties broken by the procedure's key, not by its random id.

    Several procedures often share a score (the same AveFact keywords, say) and the store orders
    ties by id, a random uuid; ranking a wider cut by (score, key) makes runs repeatable.
    """
    wide = memory.retrieve(task, k=max(8 * k, 24))
    wide.sort(key=lambda h: (-round(h.score, 6), h.procedure.key, h.procedure.version))
    return wide[:k]


def run_episodes(queries: Sequence[TravelQuery], db: Database, memory: Memory | None = None,
                 *, learn: bool = False) -> list[Trajectory]:
    """One episode per query; with ``learn`` every run updates memory before the next one."""
    agent = OfflineTravelPlanner()
    out = []
    for q in queries:
        hits = retrieve_stable(memory, task_for(q), memory.k) if memory is not None else None
        trajectory = agent.run(TravelEnv(q, db), hits)
        if learn and memory is not None:
            memory.update(trajectory, hits or [])
        out.append(trajectory)
    return out


def score(queries: Sequence[TravelQuery], runs: Sequence[Trajectory], db: Database) -> dict[str, Any]:
    result = evaluate(list(queries), [t.metadata["plan"] for t in runs], db)
    metrics = {key: round(result[key], 4) for key in METRICS}
    metrics["steps"] = round(sum(t.metadata.get("tool_calls", len(t.steps)) for t in runs) / max(1, len(runs)), 2)
    metrics["n"] = result["n"]
    metrics["counts"] = result["counts"]
    return metrics


def _memory(workdir: Path, name: str, embedder: Embedder, golds: list[Trajectory], *, build: str,
            retrieve: str, update: str, k: int, seed: int) -> Memory:
    memory = travel_memory(workdir / f"{name}.db", build=build, retrieve=retrieve, update=update,
                           embedder=embedder, k=k, seed=seed)
    memory.add_many(golds)
    return memory


def run_benchmark(cfg: BenchConfig, *, db: Database | None = None, embedder: Embedder | None = None,
                  workdir: Path | None = None) -> dict[str, Any]:
    """Every condition on both held-out sets; the results dict written to results.json."""
    started = time.monotonic()
    db = db or load_database(cfg.data)
    embedder = embedder or make_embedder(cfg.embedder)
    sets = datasets(cfg, db)
    golds = gold_trajectories(sets["train_gold"], db) + gold_trajectories(sets["train_generated"], db)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="memp-tp-")
        workdir = Path(tmp.name)
    conditions: dict[str, dict[str, Any]] = {}
    try:
        for set_name in ("test_generated", "validation"):
            queries = sets[set_name]
            if not queries:
                continue
            rows: dict[str, Any] = {"no_memory": score(queries, run_episodes(queries, db), db)}
            for build in cfg.builds:
                for learn in (False, True):
                    name = build + ("+adjustment" if learn else "")
                    memory = _memory(workdir, f"{set_name}-{name}", embedder, golds, build=build,
                                     retrieve=cfg.retrieve, update="adjustment", k=cfg.k, seed=cfg.seed)
                    with memory:
                        rows[name] = score(queries, run_episodes(queries, db, memory, learn=learn), db)
            for retrieve in cfg.retrievers:
                memory = _memory(workdir, f"{set_name}-retrieve-{retrieve}", embedder, golds,
                                 build="proceduralization", retrieve=retrieve, update="adjustment",
                                 k=cfg.k, seed=cfg.seed)
                with memory:
                    rows[f"retrieve={retrieve}"] = score(queries, run_episodes(queries, db, memory), db)
            conditions[set_name] = rows
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {
        "benchmark": "TravelPlanner (two-stage, LLM-free planner), official evaluation",
        "config": {**asdict(cfg), "embedder": embedder.name},
        "metric_names": NAMES,
        "data": {
            "gold_train_runs": sum(1 for t in golds if t.agent == "gold"),
            "expert_runs": len(golds),
            "train_gold": len(sets["train_gold"]),
            "train_generated": len(sets["train_generated"]),
            "test_generated": len(sets["test_generated"]),
            "validation": len(sets["validation"]),
        },
        "conditions": conditions,
        "seconds": round(time.monotonic() - started, 1),
    }


def markdown_table(results: dict[str, Any]) -> str:
    """One table per held-out set: conditions as rows, the official metrics in percent."""
    columns = ["commonsense_micro", "commonsense_macro", "hard_micro", "hard_macro",
               "final_pass_rate", "delivery_rate", "steps"]
    out = []
    for set_name, rows in results["conditions"].items():
        n = next(iter(rows.values()))["n"]
        out.append(f"### {set_name} (N = {n})\n")
        out.append("| condition | " + " | ".join(SHORT[c] for c in columns) + " |")
        out.append("|---|" + "---:|" * len(columns))
        for name, m in rows.items():
            cells = [f"{m[c]:.2f}" if c == "steps" else f"{100 * m[c]:.1f}" for c in columns]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def write_results(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown_table(results) + "\n", encoding="utf-8")
    return json_path, md_path
