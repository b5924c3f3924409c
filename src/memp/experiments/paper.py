"""`memp experiment paper`: the Memp paper's analyses on ALFWorld or TravelPlanner, in one command.

- Table 1: build strategies (no memory, trajectory, script, proceduralization);
- Table 2: retrieval strategies (none, random, query, avefact, hybrid);
- Figure 3: online update from empty memory (vanilla, validation, adjustment), per group of tasks;
  with ``from_expert``, also starting from the expert memory (a supplement);
- Figure 5a: transfer: memory built from the expert's runs versus from the agent's own winning
  runs on the same train tasks (and an imported memory export, with ``memory_from``);
- Figure 5b: the number of retrieved procedures, k;
- with ``self_taught``: memory learned by the agent on the training tasks from empty (each
  updater), its learning curve, then frozen on the held-out tasks.

Memory is built from expert runs on the train tasks; the agent plays the held-out tasks. Each seed
is played in its own folder (``memp.experiments.suite``); tables pool the seeds.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from memp._errors import InvalidInputError
from memp.embed import Embedder, experiment_backend, make_embedder
from memp.experiments import report
from memp.experiments.llm import LLMSettings
from memp.experiments.suite import Condition, Settings, SuiteRun, run_suite
from memp.experiments.tables import BUILDS, KS, RETRIEVERS, UPDATES, paper_tables

ENVS = ("alfworld", "travelplanner")
MAX_TRAIN_STEPS = {"alfworld": 50, "travelplanner": 30}  # the engine's (the agent's) longest episode


@dataclass(frozen=True)
class PaperConfig:
    """What to run; ``run_paper`` does the work. ``for_env`` gives each benchmark's defaults."""

    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int | None = 45  # train tasks (ALFWorld: games; TravelPlanner: generated queries beside the 45 gold)
    n_test: int | None = 45  # held-out tasks (None: all)
    n_validation: int | None = None  # TravelPlanner's validation queries, spread over the file (None: all)
    k: int = 3
    ks: tuple[int, ...] = KS
    retrieve: str = "avefact"  # retrieval of every condition but Table 2's
    group_size: int = 10  # the curves' groups
    own_threshold: float = 0.8  # TravelPlanner: own runs scoring above this build the agent's memory
    from_expert: bool = True  # also run Figure 3's updaters starting from the expert memory
    embedder: str = "minilm"
    data: str | None = None
    agent: str = "offline"  # or "llm"
    llm: LLMSettings | None = None  # the model of the "llm" agent (None: MEMP_LLM_* settings)
    update_every: int | None = 1  # tasks between online updates (None: a group)
    order: str = "shuffled"  # which conditions play in the seed's order (``memp.experiments.suite.Settings``)
    self_taught: bool = False  # add the self-taught conditions
    passes: int = 1  # self-taught: passes over the training tasks
    train_max_steps: int = 30  # self-taught: step budget of a training episode
    only: tuple[str, ...] | None = None  # run only these conditions (a preset's subset; None: all)

    @classmethod
    def for_env(cls, env: str, **options) -> PaperConfig:
        if env not in ENVS:
            raise InvalidInputError(f"unknown benchmark {env!r}; choose one of {', '.join(ENVS)}")
        if env == "alfworld":
            # The paper updates ALFWorld memory after each group of tasks, from empty memory only; the
            # groups mix task types in an order drawn by the seed, frozen conditions play the file order.
            base = dict(n_train=None, n_test=None, retrieve="query", from_expert=False, update_every=None,
                        order="learning")
        else:
            base = {}
        return cls(**{**base, **{k: v for k, v in options.items() if v is not None}})  # None: the default

    def check(self, env: str) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise InvalidInputError("the suite needs at least one seed, each once")
        if any(n is not None and n < 0 for n in (self.n_train, self.n_test, self.n_validation)):
            raise InvalidInputError("--n-train, --n-test and --n-validation must be ≥ 0")
        if any(k < 0 for k in self.ks) or self.k < 1 or self.group_size < 1 or (self.update_every or 1) < 1:
            raise InvalidInputError("k, the group size and update_every must be ≥ 1, and every k in ks ≥ 0")
        if self.retrieve not in RETRIEVERS:
            raise InvalidInputError(f"unknown retrieve strategy {self.retrieve!r}; "
                                    f"choose one of {', '.join(RETRIEVERS)}")
        if self.passes < 1 or not 1 <= self.train_max_steps <= MAX_TRAIN_STEPS[env]:
            raise InvalidInputError(f"--passes must be ≥ 1 and --train-max-steps 1 to {MAX_TRAIN_STEPS[env]} "
                                    f"on {env}")
        if self.only is not None:
            known = [c.name for c in conditions(replace(self, only=None), imported=True)]
            unknown = [name for name in self.only if name not in known]
            if unknown or not self.only:
                raise InvalidInputError(f"--only names no condition of this run: {', '.join(map(repr, unknown))}; "
                                        f"choose among {', '.join(known)}")
        if env == "alfworld" and self.n_validation is not None:
            raise InvalidInputError("--n-validation is for TravelPlanner (ALFWorld has one held-out set)")

    def settings(self, workers: int, ray: str | None) -> Settings:
        return Settings(seeds=tuple(self.seeds), group_size=self.group_size,
                        update_every=self.update_every or self.group_size, order=self.order,
                        train_max_steps=self.train_max_steps, workers=workers, ray=ray)


def conditions(cfg: PaperConfig, imported: bool = False) -> list[Condition]:
    """Every condition the configuration needs, each run once per seed and held-out set."""
    base = dict(retrieve=cfg.retrieve, k=cfg.k)
    out = [Condition("no memory")]
    out += [Condition(build, "expert", build=build, **base) for build in BUILDS]
    out += [Condition(f"retrieve {r}", "expert", retrieve=r, k=cfg.k) for r in RETRIEVERS if r != cfg.retrieve]
    out += [Condition(f"online {u}", "empty", update=u, **base) for u in UPDATES]
    if cfg.from_expert:
        out += [Condition(f"expert+online {u}", "expert", update=u, **base) for u in UPDATES]
    out.append(Condition("agent-built memory", "own", **base))
    if imported:
        out.append(Condition("imported memory", "imported", **base))
    out += [Condition(f"k={k}", "expert", retrieve=cfg.retrieve, k=k) for k in cfg.ks if k not in (0, cfg.k)]
    if cfg.self_taught:
        out += [Condition(f"self-taught {u}", "empty", update=u, train_passes=cfg.passes, **base) for u in UPDATES]
    return [c for c in out if cfg.only is None or c.name in cfg.only]


def make_benchmark(env: str, out: Path, cfg: PaperConfig, workers: int = 2):
    if env == "alfworld":
        from memp.experiments.alfworld import AlfworldBenchmark

        return AlfworldBenchmark(out, n_train=cfg.n_train, n_test=cfg.n_test, gold_seed=cfg.seeds[0],
                                 workers=workers, agent=cfg.agent, llm=cfg.llm)
    from memp.experiments.travelplanner import TravelBenchmark

    return TravelBenchmark(n_train=cfg.n_train, n_test=cfg.n_test, n_validation=cfg.n_validation, data=cfg.data,
                           agent=cfg.agent, llm=cfg.llm, own_threshold=cfg.own_threshold)


def run_paper(env: str, out: str | Path, cfg: PaperConfig | None = None, *, workers: int = 1,
              ray: str | None = None, memory_from: str | Path | None = None, benchmark=None,
              embedder: Embedder | None = None, progress: bool = True) -> dict[str, Any]:
    """Every analysis for every seed (resuming what is recorded); writes results.json and the report.

    ``memory_from`` is a memory export (``memp memory export``, or another run's
    ``agent-built-memory.jsonl``) played as one more transfer condition, "imported memory": a
    strong model's memory used by a weak one. Each run exports its own agent-built memory.
    """
    cfg = cfg or PaperConfig.for_env(env)
    cfg.check(env)
    if workers < 1:
        raise InvalidInputError("--workers must be ≥ 1")
    out = Path(out)
    imported = read_import(memory_from)  # a bad file fails here, before any episode is played
    started = time.perf_counter()
    benchmark = benchmark or make_benchmark(env, out, cfg, workers)
    out.mkdir(parents=True, exist_ok=True)
    embedder = embedder or make_embedder(cfg.embedder, cache=out / "embeddings.sqlite", backend=experiment_backend())
    run = run_suite(benchmark, out, cfg.settings(workers, ray), conditions(cfg, bool(imported)), embedder,
                    imported=imported, show_progress=progress,
                    fingerprint={"k": cfg.k, "retrieve": cfg.retrieve, "embedder": embedder.name})
    own = export_own(benchmark, run, out / "agent-built-memory.jsonl", embedder)
    tables = paper_tables(run.records, benchmark.sets, cfg.seeds, benchmark.summarise, retrieve=cfg.retrieve,
                          k=cfg.k, ks=cfg.ks)
    seconds = time.perf_counter() - started
    common = {"agent": benchmark.agent_name(), "seconds": round(seconds, 1),
              "seconds_all_runs": log_run(out, seconds),
              "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
              "embedder_backend": getattr(getattr(embedder, "inner", embedder), "backend", None)}
    if env == "alfworld":
        results = {**{key: value["test"] if isinstance(value, dict) and "test" in value else value
                      for key, value in tables.items()}, **_alfworld_about(cfg, run, own, embedder), **common}
    else:
        results = {**tables, **_travel_about(cfg, run, benchmark, embedder), **common}
    if imported:
        results["memory_from"] = {"path": str(memory_from),
                                  "procedures": sum(1 for r in imported if r.get("type") == "procedure")}
    text = json.dumps(results, indent=2) + "\n"
    (out / "results.json").write_text(text, encoding="utf-8")
    results = json.loads(text)  # what the file holds (lists, not tuples)
    report.write_report(out, results, tables, benchmark, cfg)
    return results


def _alfworld_about(cfg: PaperConfig, run: SuiteRun, own: int, embedder: Embedder) -> dict[str, Any]:
    info = run.data[cfg.seeds[0]].info
    return {"source": info["source"], "seeds": list(cfg.seeds), "n_train_games": info["n_train_games"],
            "gold_runs": info["gold_runs"], "agent_built_runs": own, "n_test_games": info["n_test_games"],
            "retrieve": f"{cfg.retrieve} (unless stated)", "k": cfg.k, "group_size": cfg.group_size,
            "embedder": embedder.name, "versions": report.versions()}


def _travel_about(cfg: PaperConfig, run: SuiteRun, benchmark, embedder: Embedder) -> dict[str, Any]:
    from memp.experiments.travelplanner import SETS

    data = {}
    for seed, d in run.data.items():
        runs = run.own.get(d.train_key, [])
        data[str(seed)] = {**d.info, "own_runs": len(runs), "own_runs_passed": sum(bool(t.success) for t in runs),
                           "own_runs_kept": sum(benchmark.keeps(t) for t in runs),
                           "own_runs_tokens": sum(int(t.metadata.get("tokens", 0) or 0) for t in runs),
                           "own_runs_cost_usd": round(sum(float((t.metadata.get("usage") or {}).get(
                               "cost_usd", 0.0)) for t in runs), 6)}
    config = asdict(cfg)
    if config.get("llm"):  # never the API key
        config["llm"] = {k: v for k, v in config["llm"].items() if k != "api_key"}
    kind = "LLM-free planner" if cfg.agent == "offline" else "LLM agent"
    return {"benchmark": f"TravelPlanner (two-stage, {kind}), official evaluation",
            "config": {**config, "embedder": embedder.name}, "sets": SETS, "data_dir": str(benchmark.db.root),
            "data": data, "versions": report.versions(("memp", "sentence-transformers", "torch", "numpy",
                                                       "matplotlib"))}


def read_import(path: str | Path | None) -> list[dict] | None:
    """The records of a memory export, checked completely; ``None`` without a path."""
    if path is None:
        return None
    from memp.store.base import parse_export, read_export

    records = read_export(Path(path))
    if not parse_export(records, "default")["procedures"]:
        raise InvalidInputError(f"{path} holds no procedure; export a memory with `memp memory export`")
    return records


def export_own(benchmark, run: SuiteRun, path: Path, embedder: Embedder) -> int:
    """The agent's own kept runs (the first seed's train set) as a memory export; returns how many."""
    from memp.store.base import write_export

    first = next(iter(run.data.values()))
    runs = [t for t in run.own.get(first.train_key, []) if benchmark.keeps(t)]
    building = path.with_suffix(".db")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    memory = benchmark.open_memory(building, Condition("export", "own"), 0, embedder)
    memory.add_many(runs)
    write_export(memory.store, path, memory.namespace)
    memory.store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    return len(runs)


def log_run(out: Path, seconds: float) -> float:
    """Append this run's time to ``runs.jsonl``; returns the time of every run into ``out``.

    A resumed run's own time says little, so the report gives the sum.
    """
    log = out / "runs.jsonl"
    with log.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(seconds, 1)}) + "\n")
    return round(sum(json.loads(line)["seconds"] for line in log.read_text().splitlines() if line.strip()), 1)

