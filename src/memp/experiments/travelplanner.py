"""TravelPlanner as a ``Benchmark``: queries as tasks, tool-use runs behind gold plans as expert runs.

Expert memory comes from the tool-use runs behind the 45 gold train plans and behind the feasible
plans of ``n_train`` generated queries (``memp.envs.travelplanner.gold``). Two held-out sets:
``n_test`` generated queries (unseen-style, drawn by the seed) and the official validation
queries (the same for every seed). Scores are the official evaluation's (two-stage mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memp._errors import InvalidInputError
from memp.embed import Embedder
from memp.envs.travelplanner.data import Database, load_database
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.episode import task_for
from memp.envs.travelplanner.evaluator import evaluate_plan
from memp.envs.travelplanner.generator import generate_queries
from memp.envs.travelplanner.gold import gold_trajectories
from memp.envs.travelplanner.queries import TravelQuery, load_queries
from memp.experiments.alfworld import spread
from memp.experiments.llm import LLMSettings, client_for
from memp.experiments.suite import Condition, EpisodeRecord, EpisodeTask, SeedData
from memp.experiments.tables import wilson
from memp.experiments.travel_adjust import PosteriorDeprecation, travel_memory
from memp.memory import Memory
from memp.types import RetrievalHit, Trajectory

AGENTS = ("offline", "llm")
NAMESPACE = "travelplanner"
SETS = {"test_generated": "generated test queries (unseen-style)", "validation": "official validation queries"}
COLUMNS = {  # summary key -> column title; rates are shown in percent
    "commonsense_micro": "#CS micro", "commonsense_macro": "#CS macro", "hard_micro": "#HC micro",
    "hard_macro": "#HC macro", "final_pass_rate": "final pass", "delivery_rate": "delivery",
}
# The paper's TravelPlanner numbers (#CS, #HC, steps), from its Tables 1 and 2 (test set, LLM agents).
PAPER = {
    "table1_build": {
        "GPT-4o": {"no memory": (71.93, 12.88, 17.84), "script": (72.08, 5.50, 15.79),
                   "trajectory": (76.02, 8.25, 14.64), "proceduralization": (79.94, 9.76, 14.62)},
        "Claude-3.5-sonnet": {"no memory": (63.49, 33.06, 18.84), "proceduralization": (65.46, 30.14, 15.29)},
        "Qwen2.5-72B": {"no memory": (56.57, 7.34, 18.32), "proceduralization": (63.82, 14.19, 17.94)}},
    "table2_retrieve": {
        "GPT-4o": {"none": (71.93, 12.88, 17.84), "random": (74.59, 6.72, 15.12),
                   "query": (73.38, 8.95, 15.44), "avefact": (76.02, 8.25, 14.64)},
        "Claude-3.5-sonnet": {"none": (63.49, 33.06, 18.84), "random": (63.99, 29.91, 17.93),
                              "query": (64.93, 28.56, 17.60), "avefact": (65.76, 29.61, 17.72)},
        "Qwen2.5-72B": {"none": (56.57, 7.34, 18.32), "random": (59.76, 8.43, 18.31),
                        "query": (61.71, 11.97, 18.54), "avefact": (63.41, 12.66, 18.12)}},
}


def _key(q: TravelQuery) -> tuple:
    return (q.org, q.dest, tuple(q.date), q.people_number, q.level)


def datasets(db: Database, seed: int, n_train: int, n_test: int, n_validation: int | None = None
             ) -> dict[str, list[TravelQuery]]:
    """Train (gold + generated) and the two held-out sets, deterministic by seed."""
    root = db.root / "queries"
    train = load_queries(root / "train.jsonl")
    generated_train = generate_queries(n_train, db, seed=seed) if n_train else []
    seen = {_key(q) for q in train + generated_train}
    # A generous draw, then the first n_test that are not train queries.
    pool = generate_queries(n_test * 2 + 6, db, seed=seed + 10_000) if n_test else []
    test = [q for q in pool if _key(q) not in seen][:n_test]
    validation = spread(load_queries(root / "validation.jsonl"), n_validation)
    return {"train_gold": train, "train_generated": generated_train, "test_generated": test,
            "validation": validation}


def query_record(q: TravelQuery, trajectory: Trajectory, db: Database, retrieved: int) -> dict[str, Any]:
    """What the tables need of one planned query (the official evaluation's per-plan counts)."""
    r = evaluate_plan(q, trajectory.metadata["plan"], db)
    return {
        "idx": q.idx, "level": q.level, "days": q.days, "delivered": r.delivered,
        "cs_passed": r.commonsense_passed if r.delivered else 0, "cs_pass": r.commonsense_pass,
        "hard_passed": r.hard_passed, "hard_total": 1 + len(q.local_constraint.active()),
        "hard_pass": r.hard_pass, "final_pass": r.final_pass,
        "tool_calls": int(trajectory.metadata.get("tool_calls", len(trajectory.steps))),
        "reward": round(trajectory.reward, 4), "retrieved": retrieved,
        "failed": sorted({f.name for f in r.failures()}),
    }


@dataclass(frozen=True)
class TravelPlayer:
    """Plans one query: the LLM-free planner, or the two-stage ReAct agent on this process's client."""

    data: str | None = None
    agent: str = "offline"
    llm: LLMSettings | None = None
    explore_rate: float = 0.5  # self-taught training: chance to try each check memory does not name

    def make_agent(self, max_steps: int, explore: int | None = None):
        if self.agent == "llm":
            from memp.agents.react_travel import ReactTravelAgent

            llm = self.llm or LLMSettings()
            return ReactTravelAgent(client_for(llm), max_tokens=llm.max_tokens, max_steps=max_steps)
        from memp.agents.offline_travel import Exploration, OfflineTravelPlanner

        if explore is None:
            return OfflineTravelPlanner()
        return OfflineTravelPlanner(explore=Exploration(rate=self.explore_rate, seed=explore))

    def __call__(self, task: EpisodeTask, hits: list[RetrievalHit], max_steps: int) -> tuple[Trajectory, dict]:
        db = load_database(self.data)  # loaded once per process
        agent = self.make_agent(max_steps, task.explore)
        client = getattr(agent, "llm", None)
        before = client.usage if client is not None else None
        trajectory = agent.run(TravelEnv(task.payload, db), hits)
        if before is not None:  # an LLM agent's tokens and cost
            used = client.usage - before
            trajectory.metadata.update(tokens=used.total_tokens, usage=used.to_dict())
        return trajectory, query_record(task.payload, trajectory, db, len(hits))


def summarise(records: Sequence[EpisodeRecord], seeds: Sequence[int] = ()) -> dict[str, Any]:
    """The official metrics over pooled per-query records, the final pass with its Wilson interval."""
    n = len(records)

    def total(key: str) -> int:
        return sum(int(r.scores[key]) for r in records)

    final = total("final_pass")
    hard_total = total("hard_total")
    out = {
        "n": n,
        "commonsense_micro": round(total("cs_passed") / (8 * n), 4) if n else 0.0,
        "commonsense_macro": round(total("cs_pass") / n, 4) if n else 0.0,
        "hard_micro": round(total("hard_passed") / hard_total, 4) if hard_total else 0.0,
        "hard_macro": round(total("hard_pass") / n, 4) if n else 0.0,
        "final_pass_rate": round(final / n, 4) if n else 0.0,
        "final_pass_ci95": list(wilson(final, n)),
        "delivery_rate": round(total("delivered") / n, 4) if n else 0.0,
        "steps": round(total("tool_calls") / n, 2) if n else 0.0,
        "tokens": sum(r.tokens for r in records),
        "cost_usd": round(sum(r.cost_usd for r in records), 6),
    }
    if seeds:
        per_seed = {s: [r for r in records if r.seed == s] for s in seeds}
        out["final_pass_by_seed"] = {str(s): round(sum(r.scores["final_pass"] for r in rs) / len(rs), 4)
                                     for s, rs in per_seed.items() if rs}
    return out


class TravelBenchmark:
    """TravelPlanner queries for the runner (the database at ``data``, default the shared one)."""

    name, title = "travelplanner", "TravelPlanner"
    sets, labels = tuple(SETS), SETS
    keep_trajectories = False  # a plan's tool observations run to tens of kilobytes
    tie_break = True
    prewarm = True  # task texts embedded in one batch first: vectors do not depend on which condition came first
    rate, ci, steps = "final_pass_rate", "final_pass_ci95", "steps"
    columns = COLUMNS
    curve_metrics = [("final_pass_rate", "final pass rate", True), ("commonsense_micro", "#CS micro", True),
                     ("hard_micro", "#HC micro", True), ("steps", "tool calls per query", False)]
    paper = PAPER
    paper_keys = ("commonsense_micro", "hard_micro", "steps")
    summarise = staticmethod(summarise)

    def __init__(self, *, n_train: int = 45, n_test: int = 45, n_validation: int | None = None,
                 data: str | None = None, agent: str = "offline", llm: LLMSettings | None = None,
                 own_threshold: float = 0.8, explore_rate: float = 0.5) -> None:
        if agent not in AGENTS:
            raise InvalidInputError(f"unknown TravelPlanner agent {agent!r}; choose one of {', '.join(AGENTS)}")
        if agent == "llm":
            (llm or LLMSettings()).check()  # a missing setting fails here, before any query
        self.n_train, self.n_test, self.n_validation = n_train, n_test, n_validation
        self.data, self.agent, self.llm = data, agent, llm
        self.own_threshold = own_threshold
        self.explore_rate = explore_rate
        self.db = load_database(data)

    def fingerprint(self) -> dict[str, Any]:
        found = {"n_train": self.n_train, "n_test": self.n_test, "n_validation": self.n_validation,
                 "own_threshold": self.own_threshold, "data": self.data, "explore_rate": self.explore_rate}
        if self.agent != "offline":
            found["agent"] = f"{self.agent} {(self.llm or LLMSettings()).model or '(MEMP_LLM_MODEL)'}"
        return found

    def prepare(self, seed: int) -> SeedData:
        sets = datasets(self.db, seed, self.n_train, self.n_test, self.n_validation)
        expert = gold_trajectories(sets["train_gold"], self.db) + gold_trajectories(sets["train_generated"], self.db)

        def tasks(queries: list[TravelQuery]) -> list[EpisodeTask]:
            return [EpisodeTask(id=str(q.idx if q.idx is not None else i), task=task_for(q), seed=seed, payload=q)
                    for i, q in enumerate(queries)]

        return SeedData(train=tasks(sets["train_gold"] + sets["train_generated"]),
                        held_out={name: tasks(sets[name]) for name in SETS}, expert=expert,
                        train_key=f"seed-{seed}",
                        info={"seed": seed, "train_gold": len(sets["train_gold"]),
                              "train_generated": len(sets["train_generated"]), "expert_runs": len(expert),
                              **{name: len(sets[name]) for name in SETS}})

    def open_memory(self, path: Path, condition: Condition, seed: int, embedder: Embedder) -> Memory:
        # Self-taught memory starts from a few lucky runs that share the blame of failed union-of-k
        # runs: the posterior rule keeps them until failures make a low success rate likely.
        extra = {"deprecation": PosteriorDeprecation()} if condition.self_taught else {}
        return travel_memory(path, build=condition.build, retrieve=condition.retrieve,
                             update=condition.update or "adjustment", embedder=embedder, k=condition.k, seed=seed,
                             namespace=NAMESPACE, **extra)

    def player(self) -> TravelPlayer:
        return TravelPlayer(self.data, self.agent, self.llm, self.explore_rate)

    def keeps(self, trajectory: Trajectory) -> bool:
        return trajectory.reward > self.own_threshold  # the paper keeps runs scoring > 0.8

    def agent_name(self) -> str:
        if self.agent == "llm":
            return f"react-travel ({(self.llm or LLMSettings()).model or 'MEMP_LLM_MODEL'})"
        return "offline-travel (LLM-free)"
