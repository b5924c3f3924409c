"""Where games come from: the official data (``ALFWORLD_DATA``) or memp's generator."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from memp.envs.alfworld.env import AlfworldEnv
from memp.envs.alfworld.errors import GameFileError, GenerationError, UnknownSplitError
from memp.envs.alfworld.expert import ExpertName, run_expert
from memp.envs.alfworld.generate import SPLITS, draft_game, split_scenes, write_game

OFFICIAL_SPLITS: tuple[str, ...] = ("train", "valid_seen", "valid_unseen")
# Generated splits under the names of the official ones they stand in for.
SPLIT_ALIASES = {"valid_seen": "seen", "valid_unseen": "unseen"}
_MAX_ATTEMPTS = 25


def find_games(root: str | Path) -> list[Path]:
    """Game folders (holding game.tw-pddl and traj_data.json) under ``root``, sorted."""
    root = Path(root)
    games = {p.parent for p in root.rglob("game.tw-pddl") if (p.parent / "traj_data.json").exists()}
    # ALFWorld's own loader skips these kinds, which its text engine does not support.
    return sorted(g for g in games if "movable" not in str(g) and "Sliced" not in str(g))


def official_games(split: str, data_dir: str | Path | None = None) -> list[Path]:
    """Official game folders ``$ALFWORLD_DATA/json_2.1.1/<split>/*/*/``.

    ``split`` is train, valid_seen or valid_unseen. ``data_dir`` defaults to ``$ALFWORLD_DATA``.
    """
    if split not in OFFICIAL_SPLITS:
        raise UnknownSplitError(
            f"unknown official split {split!r}; choose one of {', '.join(OFFICIAL_SPLITS)}"
        )
    base = data_dir if data_dir is not None else os.environ.get("ALFWORLD_DATA")
    if not base:
        raise GameFileError("ALFWORLD_DATA is not set; point it at the official ALFWorld data")
    folder = Path(base) / "json_2.1.1" / split
    if not folder.is_dir():
        raise GameFileError(f"no official {split} games at {folder}")
    return sorted(
        p.parent
        for p in folder.glob("*/*/game.tw-pddl")
        if "movable" not in p.parent.parent.name and "Sliced" not in p.parent.parent.name
    )


_WORKER_ENV: dict[int, AlfworldEnv] = {}


def _generate_one(
    split: str,
    seed: int,
    index: int,
    task_type: str | None,
    root: Path,
    max_steps: int,
    experts: tuple[ExpertName, ...],
) -> Path:
    """Draw games for one index until the expert wins one; write it and return its folder."""
    env = _WORKER_ENV.get(max_steps)
    if env is None:  # one engine per process and step limit, reused across games
        env = _WORKER_ENV[max_steps] = AlfworldEnv(max_steps=max_steps, facts=True)
    for attempt in range(_MAX_ATTEMPTS):
        draft = draft_game(split, seed, index, task_type=task_type, attempt=attempt)
        folder = write_game(draft, root)
        try:
            env.load(folder)
        except GameFileError:
            run = None  # a draw the engine rejects is replaced like an unsolvable one
        else:
            _, info = env.reset()
            run = None if info["won"] else run_expert(env, folder, experts=experts, seed=seed + index)
        if run is not None and run.won:
            write_game(draft, root, walkthrough=[a for a, _ in run.steps])
            return folder
        shutil.rmtree(folder)
    raise GenerationError(
        f"no solvable {task_type or 'game'} for index {index} of split {split!r} "
        f"after {_MAX_ATTEMPTS} draws"
    )


def generate_games(
    split: str,
    n: int,
    seed: int,
    out_dir: str | Path,
    *,
    task_types: list[str] | None = None,
    max_steps: int = 100,
    experts: tuple[ExpertName, ...] = ("handcoded",),
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Generate ``n`` solvable games of ``split`` (train, seen or unseen) under ``out_dir/split``.

    Task types take turns (all six appear once n >= 6) unless ``task_types`` restricts them. Each
    game is played by the package's expert within ``max_steps``; a draw the expert cannot win is
    replaced by the next draw for the same index. Returns the game folders, in index order.

    The check uses the handcoded expert by default: it is deterministic and takes a second or two,
    while the planner can take minutes on large kitchens (and a time limit would make the output
    depend on the machine). Pass ``experts=("handcoded", "planner")`` to admit games only the
    planner solves. Every index is drawn on its own, so ``workers`` > 1 processes give the same
    games as one.
    """
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise UnknownSplitError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    split_scenes(split)  # fail early on a broken install
    root = Path(out_dir) / split
    root.mkdir(parents=True, exist_ok=True)
    jobs = [
        (split, seed, i, task_types[i % len(task_types)] if task_types else None, root, max_steps, experts)
        for i in range(n)
    ]
    games: list[Path] = []
    try:
        if workers <= 1:
            for job in jobs:
                games.append(_generate_one(*job))
                if progress:
                    progress(len(games), n)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_generate_one, *job) for job in jobs]
                for done, _ in enumerate(as_completed(futures), 1):
                    if progress:
                        progress(done, n)
                games = [f.result() for f in futures]
    finally:
        # Task folders left empty by rejected draws (removed here, not in the workers, which
        # may be writing into the same folder).
        for folder in root.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return games
