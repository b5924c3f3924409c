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

from memp.experiments.runner import (
    Condition,
    EpisodeTask,
    Player,
    by_group,
    load_records,
    run_condition,
    summarise,
)
from memp.experiments.llm import LLMSettings, client_for, close_client
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

AGENTS = ("offline", "llm")


# Games a worker keeps loaded: every condition plays the same test games, and loading a game
# (its PDDL translation) costs more than playing it. About 3 MB each; 160 holds all 140 of
# valid_seen (or 134 of valid_unseen) while bounding each worker near 0.5 GB.
KEEP_GAMES = 160
_ENV = None


def _init(max_steps: int) -> None:
    global _ENV
    from memp.envs.alfworld.env import AlfworldEnv

    _ENV = AlfworldEnv(max_steps=max_steps, keep_games=KEEP_GAMES)


def _agent(kind: str, seed: int, llm: LLMSettings | None):
    if kind == "llm":
        from memp.agents.react_alfworld import ReactAlfworldAgent

        llm = llm or LLMSettings()
        return ReactAlfworldAgent(client_for(llm), context_chars=llm.context_chars, max_tokens=llm.max_tokens,
                                  few_shot=llm.few_shot, temperature=llm.temperature)
    from memp.agents.offline_alfworld import OfflineAlfworldAgent

    return OfflineAlfworldAgent(seed=seed)


def _play(game: str, hits: list[dict], seed: int, max_steps: int, agent: str = "offline",
          llm: LLMSettings | None = None) -> str:
    from memp.llm.errors import LLMAuthError, LLMConfigError, LLMModelNotFoundError

    if _ENV is None or _ENV.max_steps != max_steps:  # in-process runs may differ in step limit
        _init(max_steps)
    task = task_of_game(game)
    player = None
    try:
        player = _agent(agent, seed, llm)
        _ENV.load(game)
        trajectory = player.run(_ENV, [RetrievalHit.model_validate(h) for h in hits])
    except (LLMConfigError, LLMAuthError, LLMModelNotFoundError):
        raise  # the same for every episode: stop the experiment rather than fail each one
    except Exception as err:  # a broken game is a failed episode, not a failed experiment
        name = getattr(player, "name", "react-alfworld" if agent == "llm" else "offline-alfworld")
        trajectory = Trajectory(task=task, reward=0.0, error=f"{type(err).__name__}: {err}",
                                agent=name, metadata={"game": game})
    return trajectory.model_dump_json()


def _ray_play(address: str, workers: int):
    """``_play`` as a Ray remote function, on a local instance or a running cluster."""
    try:
        import ray
    except ImportError:
        from memp._errors import MempError

        raise MempError("running on Ray needs the ray extra: pip install 'memp[ray]'") from None
    local = address == "local"
    ray.init(address=None if local else address, num_cpus=workers if local else None,
             include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    return ray.remote(_play)


class AlfworldPlayer:
    """Plays batches of ALFWorld episodes in parallel processes.

    ``agent="offline"`` is the LLM-free agent; ``agent="llm"`` the ReAct agent, each worker with
    its own client built from ``llm`` (an ``LLMSettings``).
    """

    def __init__(self, workers: int = 2, max_steps: int = 30, *, agent: str = "offline",
                 llm: LLMSettings | None = None, ray_address: str | None = None) -> None:
        """``ray_address`` ("local", or a cluster's "ray://host:10001" / "host:6379") plays each
        episode as a Ray task instead; every node needs memp and the games at the same paths."""
        if agent not in AGENTS:
            raise ValueError(f"unknown ALFWorld agent {agent!r}; choose one of {', '.join(AGENTS)}")
        if agent == "llm":
            llm = llm or LLMSettings()
            llm.check()  # a missing setting fails here, once
        self.max_steps = max_steps
        self.workers = workers
        self.agent = agent
        self.llm = llm
        self._pool = None
        self._ray = None
        if ray_address is not None:
            self._ray = _ray_play(ray_address, workers)
        elif workers > 1:
            self._pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init, initargs=(max_steps,))

    def __call__(self, batch: list[tuple[EpisodeTask, list[RetrievalHit]]]) -> list[Trajectory]:
        args = [(t.id, [h.model_dump(mode="json") for h in hits], t.seed, self.max_steps, self.agent, self.llm)
                for t, hits in batch]
        if self._ray is not None:
            import ray

            results = ray.get([self._ray.remote(*a) for a in args])
        elif self._pool is None:
            results = [_play(*a) for a in args]
        else:
            results = list(self._pool.map(_play, *zip(*args))) if args else []
        return [Trajectory.model_validate(json.loads(r)) for r in results]

    def close(self) -> None:
        if self._ray is not None:
            import ray

            ray.shutdown()
        elif self._pool is not None:
            self._pool.shutdown()
        else:  # episodes ran in this process: release its client and cache file
            close_client()

    def __enter__(self) -> AlfworldPlayer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the experiments ------------------------------------------------------------------------

BUILDS = ("trajectory", "script", "proceduralization")
UPDATES = ("vanilla", "validation", "adjustment")


def _gold_job(games: list[str], seed: int) -> list[str]:
    from memp._errors import MempError
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
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(_gold_job, chunks, [seed] * workers))
    else:
        results = [_gold_job(chunks[0], seed)]
    order = {str(g): i for i, g in enumerate(games)}
    gold = sorted((Trajectory.model_validate_json(r) for chunk in results for r in chunk),
                  key=lambda t: order.get(t.metadata.get("game", ""), 0))
    # Ids derived from the game keep memories (and so retrieval ties) identical across runs.
    gold = [t.model_copy(update={"id": f"gold-{order.get(t.metadata.get('game', ''), i):05d}"})
            for i, t in enumerate(gold)]
    cache.write_text("".join(t.model_dump_json() + "\n" for t in gold))
    return gold


def fresh_memory(path: Path, embedder, **options):
    from memp.memory import Memory
    from memp.store import SQLiteStore

    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return Memory(SQLiteStore(path), embedder=embedder, **options)


def _has_records(out: Path, condition: str) -> bool:
    return any(r.condition == condition for r in load_records(out / "episodes.jsonl"))


def run_frozen(name: str, tasks: list[EpisodeTask], play: Player, out: Path, embedder, *,
               gold: list[Trajectory] | None, build: str = "proceduralization", retrieve: str = "query",
               k: int = 3, seed: int = 0, imported: list[dict] | None = None, progress=None) -> dict:
    """One condition with memory built from ``gold`` and kept fixed (``gold=None``: no memory).

    ``imported`` (the records of a memory export) is the memory instead, procedures as exported.
    """
    if (gold is None and imported is None) or k == 0:
        records = run_condition(Condition(name), tasks, play, out, progress=progress)
        return summarise(records)
    mem = fresh_memory(out / f"memory-{name.replace(' ', '-')}.db", embedder, build=build,
                       retrieve=retrieve, k=k, seed=seed)
    if imported is not None:
        mem.store.import_records(imported, namespace=mem.namespace)
    else:
        mem.add_many(gold)
    cond = Condition(name, build=build, retrieve=retrieve, k=k, memory="imported" if imported else "gold")
    records = run_condition(cond, tasks, play, out, memory=mem, progress=progress)
    mem.close()
    return summarise(records)


def run_builds(tasks: list[EpisodeTask], gold: list[Trajectory], play: Player, out: Path, embedder, *,
               retrieve: str = "query", k: int = 3, builds=("none", *BUILDS), progress=None) -> dict:
    """Table 1: the agent without memory, and with memory built from gold runs by each strategy."""
    results = {}
    for build in builds:
        name = "no memory" if build == "none" else build
        results[name] = run_frozen(name, tasks, play, out, embedder, gold=None if build == "none" else gold,
                                   build=build if build != "none" else "proceduralization",
                                   retrieve=retrieve, k=k, progress=progress)
    return results


def run_online(tasks: list[EpisodeTask], play: Player, out: Path, embedder, *, group_size: int = 10,
               build: str = "proceduralization", retrieve: str = "query", k: int = 3,
               updates=UPDATES, progress=None) -> dict:
    """Figure 3: memory starts empty and learns from the agent's own runs, group by group."""
    from memp.memory import Memory
    from memp.store import SQLiteStore

    curves = {}
    for update in updates:
        name = f"online {update}"
        path = out / f"memory-online-{update}.db"
        options = dict(build=build, retrieve=retrieve, update=update, k=k)
        # Resuming keeps the memory that the recorded groups built; a new run starts empty.
        mem = (Memory(SQLiteStore(path), embedder=embedder, **options) if _has_records(out, name)
               else fresh_memory(path, embedder, **options))
        cond = Condition(name, build=build, retrieve=retrieve, update=update, k=k, memory="empty")
        records = run_condition(cond, tasks, play, out, memory=mem, group_size=group_size, progress=progress)
        curves[update] = {"overall": summarise(records), "groups": by_group(records),
                          "memory": {"active": mem.store.count("default", status="active"),
                                     "deprecated": mem.store.count("default", status="deprecated"),
                                     "revisions": sum(1 for e in mem.store.events("default") if e.kind == "revised")}}
        mem.close()
    return curves
