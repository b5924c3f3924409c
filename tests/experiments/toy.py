"""A toy benchmark for the suite runner: no engine, no data, a few milliseconds an episode.

A task is a number; its type is the number mod 3. The agent wins when it is handed a procedure
learned from a task of the same type, or else by chance (a draw from the task and seed), so
memory visibly helps and self-taught memory visibly learns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from memp.embed import make_embedder
from memp.experiments.alfworld import summarise
from memp.experiments.suite import Condition, EpisodeTask, SeedData
from memp.memory import Memory
from memp.store import SQLiteStore
from memp.types import RetrievalHit, Step, Task, Trajectory

KINDS = ("apple", "book", "cup")


def task(i: int, seed: int = 0) -> EpisodeTask:
    kind = KINDS[i % 3]
    return EpisodeTask(id=f"t{i}", task=Task(text=f"put the {kind} away", type=kind, keywords={"object": kind}),
                       seed=seed)


def trajectory(t: EpisodeTask, won: bool, max_steps: int = 30) -> Trajectory:
    kind = t.task.type
    steps = [Step(action=f"go to shelf {kind}", observation="you arrive"),
             Step(action=f"take {kind}", observation=f"you take the {kind}" if won else "nothing happens")]
    return Trajectory(task=t.task, steps=steps[:max_steps], reward=1.0 if won else 0.0, agent="toy")


@dataclass(frozen=True)
class ToyPlayer:
    chance: float = 0.3

    def __call__(self, t: EpisodeTask, hits: list[RetrievalHit], max_steps: int):
        # A procedure learned from a won run of this type (its steps show the object taken).
        learned = any(h.procedure.task_type == t.task.type and f"you take the {t.task.type}"
                      in h.procedure.model_dump_json() for h in hits)
        won = learned or random.Random(f"{t.id}-{t.seed}").random() < self.chance
        return trajectory(t, won, max_steps), {"max_steps": max_steps}


class ToyBenchmark:
    name, title = "toy", "a toy benchmark"
    sets = ("test",)
    labels = {"test": "toy tasks"}
    keep_trajectories = True
    tie_break = True
    prewarm = True
    rate, ci, steps = "success_rate", "success_ci95", "avg_steps"
    columns = {"success_rate": "success"}
    curve_metrics = [("success_rate", "success rate", True), ("avg_steps", "average steps", False)]
    paper: dict = {}
    paper_keys = ("success_rate", "avg_steps")
    summarise = staticmethod(summarise)

    def __init__(self, n_train: int = 9, n_test: int = 12, chance: float = 0.3) -> None:
        self.n_train, self.n_test, self.chance = n_train, n_test, chance

    def fingerprint(self) -> dict:
        return {"n_train": self.n_train, "n_test": self.n_test, "chance": self.chance}

    def prepare(self, seed: int) -> SeedData:
        train = [task(i) for i in range(self.n_train)]
        expert = [trajectory(t, True) for t in train[:3]]
        return SeedData(train=train, held_out={"test": [task(100 + i, seed) for i in range(self.n_test)]},
                        expert=expert, train_key="train", info={"seed": seed})

    def open_memory(self, path: Path, condition: Condition, seed: int, embedder) -> Memory:
        return Memory(SQLiteStore(path), embedder=embedder, build=condition.build, retrieve=condition.retrieve,
                      update=condition.update or "adjustment", k=condition.k, seed=seed)

    def player(self) -> ToyPlayer:
        return ToyPlayer(self.chance)

    def keeps(self, t: Trajectory) -> bool:
        return bool(t.success)

    def agent_name(self) -> str:
        return "toy"


def embedder():
    return make_embedder("hashing")  # no torch, no cache file
