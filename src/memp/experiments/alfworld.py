"""ALFWorld as a ``Benchmark``: game folders as tasks, the expert's runs as gold, a kept engine per process.

Each process keeps one engine (``AlfworldEnv``) and re-points it at each game, because loading
the engine costs more than a game. With official data (``ALFWORLD_DATA``) the held-out set is
``valid_seen`` (the paper's Dev set); without it, memp generates train games and games on unseen
floor plans.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memp._errors import InvalidInputError, MempError
from memp.embed import Embedder
from memp.experiments.llm import LLMSettings, client_for
from memp.experiments.suite import Condition, EpisodeRecord, EpisodeTask, SeedData
from memp.experiments.workers import worker_pool
from memp.memory import Memory
from memp.types import RetrievalHit, Task, Trajectory

_TASK = re.compile(r"Your task is to: (.*?)\.", re.IGNORECASE)
AGENTS = ("offline", "llm")
MAX_STEPS = 50  # the engine's episodes stop here whatever a condition asks

# The paper's ALFWorld Dev success rate (%) and steps with GPT-4o, for reference.
PAPER = {"table1_build": {"GPT-4o": {"no memory": (39.28, 23.76), "script": (66.67, 18.52),
                                     "trajectory": (67.17, 16.49), "proceduralization": (87.14, 15.01)}}}

CREDIT_WEIGHT = 0.2  # retrieval's weight on a self-taught procedure's success record (bench/selftaught_alfworld.py)


def task_of_game(game: str | Path) -> Task:
    """A game's task, read from its files without starting the engine."""
    from memp.envs.alfworld.env import read_game_file, read_traj_data
    from memp.envs.alfworld.goals import normalise_task_text, parse_goal

    data = read_game_file(game)
    m = _TASK.search(data["grammar"])
    text = normalise_task_text(m.group(1)) if m else "unknown task"
    traj = read_traj_data(game) or {}
    return Task(text=text, type=traj.get("task_type"), keywords=parse_goal(text), env="alfworld")


def episode_tasks(games: list[Path], seed: int = 0) -> list[EpisodeTask]:
    return [EpisodeTask(id=str(g), task=task_of_game(g), seed=seed) for g in games]


def spread(items: list, n: int | None) -> list:
    """``n`` items spread evenly over the sorted list, so every task type (or level) keeps its share."""
    if n is None or n >= len(items):
        return list(items)
    return [items[i * len(items) // n] for i in range(n)]


# --- games and gold -------------------------------------------------------------------------


def _generate(split: str, n: int, seed: int, out: str) -> list[str]:
    from memp.envs.alfworld.games import find_games, generate_games
    from memp.envs.alfworld.generate import draw_index

    existing = find_games(Path(out) / split)
    if len(existing) >= n:  # reused: in the order generate_games gave them, not sorted by task type
        drawn = sorted(existing, key=lambda g: (-1 if draw_index(g) is None else draw_index(g), str(g)))
        return [str(g) for g in drawn[:n]]
    return [str(g) for g in generate_games(split, n, seed, out)]


def generated_games(out: Path, n_train: int, n_test: int, seed: int) -> tuple[list[Path], list[Path]]:
    """Train and unseen games, generated side by side in two processes (or reused)."""
    with worker_pool(2) as pool:
        train = pool.submit(_generate, "train", n_train, seed, str(out))
        test = pool.submit(_generate, "unseen", n_test, seed + 1, str(out))
        return [Path(g) for g in train.result()], [Path(g) for g in test.result()]


def _gold_job(games: list[str], seed: int) -> list[str]:
    from memp.envs.alfworld.env import AlfworldEnv
    from memp.envs.alfworld.expert import expert_trajectories

    env = AlfworldEnv(max_steps=50, facts=True)
    gold = []
    for game in games:
        try:
            gold += expert_trajectories([game], seed=seed, env=env)
        except MempError:
            continue  # a game the engine cannot load has no gold run; the others still count
    return [t.model_dump_json() for t in gold]


def gold_trajectories(games: list[Path], cache: Path, *, workers: int = 2, seed: int = 0) -> list[Trajectory]:
    """The expert's winning runs on the games (recorded once, then read from ``cache``)."""
    if cache.exists():
        return [Trajectory.model_validate_json(line) for line in cache.read_text().splitlines() if line.strip()]
    chunks = [[str(g) for g in games[i::workers]] for i in range(workers)]
    if workers > 1:
        with worker_pool(workers) as pool:
            results = list(pool.map(_gold_job, chunks, [seed] * workers))
    else:
        results = [_gold_job(chunks[0], seed)]
    order = {str(g): i for i, g in enumerate(games)}
    gold = sorted((Trajectory.model_validate_json(r) for chunk in results for r in chunk),
                  key=lambda t: order.get(t.metadata.get("game", ""), 0))
    # Ids derived from the game keep memories (and so retrieval ties) identical across runs.
    gold = [t.model_copy(update={"id": f"gold-{order.get(t.metadata.get('game', ''), i):05d}"})
            for i, t in enumerate(gold)]
    partial = cache.with_name(cache.name + ".partial")
    partial.write_text("".join(t.model_dump_json() + "\n" for t in gold))
    partial.replace(cache)
    return gold


# --- playing (in worker processes) ----------------------------------------------------------

# Games a process keeps loaded: every condition plays the same test games, and loading a game
# (its PDDL translation) costs more than playing it. About 3 MB each; 160 holds all 140 of
# valid_seen (or 134 of valid_unseen) while bounding each worker near 0.5 GB.
KEEP_GAMES = 160
_ENV = None


def _engine(max_steps: int):
    global _ENV
    if _ENV is None or _ENV.max_steps != max_steps:
        from memp.envs.alfworld.env import AlfworldEnv

        _ENV = AlfworldEnv(max_steps=max_steps, keep_games=KEEP_GAMES)
    return _ENV


@dataclass(frozen=True)
class AlfworldPlayer:
    """Plays one game: the LLM-free agent, or (``agent="llm"``) the ReAct agent on this process's client."""

    agent: str = "offline"
    llm: LLMSettings | None = None

    def make_agent(self, seed: int):
        if self.agent == "llm":
            from memp.agents.react_alfworld import ReactAlfworldAgent

            llm = self.llm or LLMSettings()
            return ReactAlfworldAgent(client_for(llm), context_chars=llm.context_chars, max_tokens=llm.max_tokens,
                                      few_shot=llm.few_shot, temperature=llm.temperature,
                                      constrain_actions=llm.constrain_actions)
        from memp.agents.offline_alfworld import OfflineAlfworldAgent

        return OfflineAlfworldAgent(seed=seed)

    def __call__(self, task: EpisodeTask, hits: list[RetrievalHit], max_steps: int) -> tuple[Trajectory, dict]:
        from memp.llm.errors import LLMAuthError, LLMConfigError, LLMModelNotFoundError

        env = _engine(max_steps)
        player = None
        try:
            player = self.make_agent(task.seed)
            env.load(task.id)
            trajectory = player.run(env, hits)
        except (LLMConfigError, LLMAuthError, LLMModelNotFoundError):
            raise  # the same for every episode: stop the experiment rather than fail each one
        except Exception as err:  # a broken game is a failed episode, not a failed experiment
            name = getattr(player, "name", "react-alfworld" if self.agent == "llm" else "offline-alfworld")
            trajectory = Trajectory(task=task.task, reward=0.0, error=f"{type(err).__name__}: {err}",
                                    agent=name, metadata={"game": task.id})
        return trajectory, {}


# --- the benchmark --------------------------------------------------------------------------


def summarise(records: Sequence[EpisodeRecord], seeds: Sequence[int] = ()) -> dict[str, Any]:
    """Success rate with its 95 % Wilson interval, steps, errors and spending."""
    from memp.experiments.tables import wilson

    n = len(records)
    wins = [r for r in records if r.success]
    out = {
        "n": n,
        "success_rate": round(len(wins) / n, 4) if n else 0.0,
        "success_ci95": wilson(len(wins), n),
        "avg_steps": round(sum(r.steps for r in records) / n, 2) if n else 0.0,
        "avg_steps_success": round(sum(r.steps for r in wins) / len(wins), 2) if wins else None,
        "errors": sum(1 for r in records if r.error),
        "tokens": sum(r.tokens for r in records),
        "cost_usd": round(sum(r.cost_usd for r in records), 6),
    }
    if seeds:
        # The seeds replay the same games, so the pooled interval is narrower than a new sample of
        # games would give; each seed's own rate shows how much the agent's chance moves it.
        out["per_seed"] = [summarise([r for r in records if r.seed == s])["success_rate"] for s in seeds]
    return out


class AlfworldBenchmark:
    """ALFWorld games for the runner; ``games`` (train, test, source) overrides where games come from."""

    name, title = "alfworld", "ALFWorld"
    sets = ("test",)
    labels = {"test": "test games"}
    keep_trajectories = True
    # Retrieval ties in the store's own order, texts embedded as needed: as the published ALFWorld
    # numbers were made.
    tie_break = False
    prewarm = False
    rate, ci, steps = "success_rate", "success_ci95", "avg_steps"
    columns = {"success_rate": "success"}
    curve_metrics = [("success_rate", "success rate", True), ("avg_steps", "average steps", False)]
    paper, paper_keys = PAPER, ("success_rate", "avg_steps")
    summarise = staticmethod(summarise)

    def __init__(self, out: Path, *, n_train: int | None = None, n_test: int | None = None, gold_seed: int = 0,
                 workers: int = 2, agent: str = "offline", llm: LLMSettings | None = None,
                 games: tuple[list[Path], list[Path], str] | None = None) -> None:
        if agent not in AGENTS:
            raise InvalidInputError(f"unknown ALFWorld agent {agent!r}; choose one of {', '.join(AGENTS)}")
        if agent == "llm":
            (llm or LLMSettings()).check()  # a missing setting fails here, once
        self.out = out
        self.n_train, self.n_test = n_train, n_test
        self.gold_seed = gold_seed
        self.workers = workers
        self.agent, self.llm = agent, llm
        self._games = games
        self._gold: list[Trajectory] | None = None

    def fingerprint(self) -> dict[str, Any]:
        found = {"n_train": self.n_train, "n_test": self.n_test,
                 "data": os.environ.get("ALFWORLD_DATA") if self._games is None else "given games"}
        if self.agent != "offline":
            found["agent"] = f"{self.agent} {(self.llm or LLMSettings()).model or '(MEMP_LLM_MODEL)'}"
        return found

    def games(self) -> tuple[list[Path], list[Path], str]:
        """Official train/valid_seen games when ALFWORLD_DATA is set, else generated train/unseen."""
        if self._games is None:
            data = os.environ.get("ALFWORLD_DATA")
            if data:
                from memp.envs.alfworld.games import official_games

                train, test = official_games("train", data), official_games("valid_seen", data)
                source = f"official ALFWorld (train sample → gold; valid_seen = test), {data}"
            else:
                train, test = generated_games(self.out / "games", self.n_train or 60, self.n_test or 100,
                                              self.gold_seed)
                source = "generated by memp (train → gold; unseen floor plans = test)"
            self._games = (spread(train, self.n_train), spread(test, self.n_test), source)
        return self._games

    def prepare(self, seed: int) -> SeedData:
        train, test, source = self.games()
        if self._gold is None:
            self._gold = gold_trajectories(train, self.out / "gold.jsonl", workers=self.workers, seed=self.gold_seed)
        return SeedData(train=episode_tasks(train, 0), held_out={"test": episode_tasks(test, seed)},
                        expert=self._gold, train_key="agent-train",
                        info={"source": source, "n_train_games": len(train), "gold_runs": len(self._gold),
                              "n_test_games": len(test)})

    def open_memory(self, path: Path, condition: Condition, seed: int, embedder: Embedder) -> Memory:
        from memp.store import SQLiteStore

        # A memory the agent fills itself ranks by what worked for it too: its first procedures
        # come from lucky runs, and their record of outcomes tells them apart.
        credit = CREDIT_WEIGHT if condition.memory == "empty" else 0.0
        return Memory(SQLiteStore(path), embedder=embedder, build=condition.build, retrieve=condition.retrieve,
                      update=condition.update or "adjustment", k=condition.k, seed=seed, credit_weight=credit)

    def player(self) -> AlfworldPlayer:
        return AlfworldPlayer(self.agent, self.llm)

    def keeps(self, trajectory: Trajectory) -> bool:
        return bool(trajectory.success)

    def agent_name(self) -> str:
        if self.agent == "offline":
            return "offline-alfworld (LLM-free)"
        return f"react-alfworld ({(self.llm or LLMSettings()).model or 'MEMP_LLM_MODEL'})"
