"""Episodes played in parallel: in this process, in worker processes, or as Ray tasks.

Retrieval and memory updates stay in the parent, which holds the memory; a worker gets the task
and the retrieved procedures and sends back the trajectory and its scores. The benchmark's player
keeps its costly pieces (a game engine, the travel database) per process, so a worker loads them
once for many episodes.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from memp._errors import MempError
from memp.experiments.llm import close_client
from memp.types import RetrievalHit, Trajectory

# (task, hits, max_steps) -> (trajectory, scores); must pickle, to reach worker processes.
EpisodePlayer = Callable[[Any, list[RetrievalHit], int], tuple[Trajectory, dict[str, Any]]]


def _stop_with_parent() -> None:
    """Linux: the kernel sends this worker SIGTERM when the process that started it dies.

    Without it, a suite killed with ``kill`` (no process group to signal) leaves its workers
    playing out their queued episodes, for minutes, with nobody to read the results.
    """
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Fresh (spawned) worker processes that stop when their parent dies."""
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_stop_with_parent)


def _episode(player: EpisodePlayer, task, hits: list[dict], max_steps: int) -> tuple[str, dict[str, Any]]:
    trajectory, scores = player(task, [RetrievalHit.model_validate(h) for h in hits], max_steps)
    return trajectory.model_dump_json(), scores


def _ray_episode(address: str, workers: int):
    """``_episode`` as a Ray remote function, on a local instance or a running cluster."""
    try:
        import ray
    except ImportError:
        raise MempError("running on Ray needs the ray extra: pip install 'memp[ray]'") from None
    local = address == "local"
    ray.init(address=None if local else address, num_cpus=workers if local else None,
             include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    return ray.remote(_episode)


class Players:
    """Plays batches of episodes with one player, on ``workers`` processes or on Ray.

    ``ray`` ("local", or a cluster's "ray://host:10001" / "host:6379") plays each episode as a Ray
    task; every node needs memp and the data at the same paths.
    """

    def __init__(self, player: EpisodePlayer, workers: int = 1, ray: str | None = None) -> None:
        self.player = player
        self._pool = None
        self._ray = None
        if ray is not None:
            self._ray = _ray_episode(ray, workers)
        elif workers > 1:
            self._pool = worker_pool(workers)

    def __call__(self, batch: Sequence[tuple[Any, list[RetrievalHit]]], max_steps: int
                 ) -> list[tuple[Trajectory, dict[str, Any]]]:
        args = [(self.player, task, [h.model_dump(mode="json") for h in hits], max_steps) for task, hits in batch]
        if self._ray is not None:
            import ray

            results = ray.get([self._ray.remote(*a) for a in args])
        elif self._pool is not None:
            results = list(self._pool.map(_episode, *zip(*args))) if args else []
        else:
            results = [_episode(*a) for a in args]
        return [(Trajectory.model_validate_json(t), scores) for t, scores in results]

    def close(self) -> None:
        if self._ray is not None:
            import ray

            ray.shutdown()
        elif self._pool is not None:
            self._pool.shutdown()
        close_client()  # episodes played in this process: release its client and cache file

    def __enter__(self) -> Players:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
