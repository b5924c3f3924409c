"""ALFWorld episodes for the experiment runner: tasks from game folders, played in worker processes.

Each worker process keeps one engine (``AlfworldEnv``) and re-points it at each game, because
loading the engine costs more than a game. Retrieval happens in the parent, which holds the
memory; workers get the retrieved procedures with the game and send back the trajectory.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from memp.experiments.runner import EpisodeTask
from memp.types import RetrievalHit, Task, Trajectory

_TASK = re.compile(r"Your task is to: (.*?)\.", re.IGNORECASE)


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


# --- worker side ----------------------------------------------------------------------------

_ENV = None


def _init(max_steps: int) -> None:
    global _ENV
    from memp.envs.alfworld.env import AlfworldEnv

    _ENV = AlfworldEnv(max_steps=max_steps)


def _play(game: str, hits: list[dict], seed: int, max_steps: int) -> str:
    from memp.agents.offline_alfworld import OfflineAlfworldAgent

    if _ENV is None:
        _init(max_steps)
    task = task_of_game(game)
    try:
        _ENV.load(game)
        trajectory = OfflineAlfworldAgent(seed=seed).run(_ENV, [RetrievalHit.model_validate(h) for h in hits])
    except Exception as err:  # a broken game is a failed episode, not a failed experiment
        trajectory = Trajectory(task=task, reward=0.0, error=f"{type(err).__name__}: {err}",
                                agent=OfflineAlfworldAgent.name, metadata={"game": game})
    return trajectory.model_dump_json()


class AlfworldPlayer:
    """Plays batches of ALFWorld episodes with the LLM-free agent, in parallel processes."""

    def __init__(self, workers: int = 2, max_steps: int = 30) -> None:
        self.max_steps = max_steps
        self.workers = workers
        self._pool = None
        if workers > 1:
            self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init, initargs=(max_steps,))

    def __call__(self, batch: list[tuple[EpisodeTask, list[RetrievalHit]]]) -> list[Trajectory]:
        args = [(t.id, [h.model_dump(mode="json") for h in hits], t.seed, self.max_steps) for t, hits in batch]
        if self._pool is None:
            results = [_play(*a) for a in args]
        else:
            results = list(self._pool.map(_play, *zip(*args))) if args else []
        return [Trajectory.model_validate(json.loads(r)) for r in results]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> AlfworldPlayer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
