"""Gold trajectories from the engine's experts.

Two experts ship with alfworld 0.4.2. The handcoded one explores like a person would, reading the
observations and the engine's facts; it speaks the package's grammar (``move X to Y``), so it is fed
admissible commands in that spelling and its actions are translated back into the game's. The
planner expert (Fast Downward on the full game state) is the fallback when the handcoded one gets
stuck. Only winning runs are kept as gold.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Literal

from memp.envs.alfworld.env import AlfworldEnv, read_traj_data
from memp.envs.alfworld.errors import GameFileError
from memp.envs.alfworld.grammar import canonical_action, put_spelling, to_game_spelling
from memp.types import Step, Task, Trajectory

ExpertName = Literal["handcoded", "planner"]


@dataclass
class ExpertRun:
    """One expert episode: the actions and what the game answered."""

    expert: ExpertName
    won: bool
    steps: list[tuple[str, str]] = field(default_factory=list)
    intro: str = ""
    task: str = ""
    error: str | None = None


@contextmanager
def _seeded_global_random(seed: int) -> Iterator[None]:
    # The handcoded expert breaks ties with the global `random` module; seeding it (and restoring
    # it afterwards) makes its runs reproducible without disturbing the caller's random state.
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


def run_handcoded(env: AlfworldEnv, game_path: str | Path, *, seed: int = 0) -> ExpertRun:
    """Play the handcoded expert on a game until it wins, gives up or the step limit ends it."""
    from alfworld.agents.expert import HandCodedAgentFailed, HandCodedAgentTimeout, HandCodedTWAgent

    if read_traj_data(game_path) is None:
        raise GameFileError(f"{game_path}: the handcoded expert needs traj_data.json beside the game")
    env.load(game_path)
    agent = HandCodedTWAgent(max_steps=env.max_steps + 5)
    path = env.game_path
    agent.reset(str(path))
    obs, info = env.reset()
    run = ExpertRun(expert="handcoded", won=False, intro=obs, task=env.task)
    with _seeded_global_random(seed):
        try:
            agent.observe(obs)
            action = "look"  # the expert's first move in alfworld's own wrapper
            done = False
            while not done:
                command = to_game_spelling(action, info["admissible_commands"], env.style)
                obs, _, done, info = env.step(command)
                run.steps.append((command, obs))
                if info["won"]:
                    run.won = True
                    break
                view = dict(
                    feedback=obs,
                    facts=info["facts"],
                    # The expert tests for "move X to Y" among the admissible commands...
                    admissible_commands=[canonical_action(c) for c in info["admissible_commands"]],
                )
                # ...but tracks what it holds by looking for "put" in its last action.
                action = agent.act(view, 0, info["won"], put_spelling(command))
        except (HandCodedAgentFailed, HandCodedAgentTimeout):
            run.error = "the handcoded expert gave up"
        except (IndexError, KeyError, ValueError) as err:  # its heuristics can fail on odd states
            run.error = f"the handcoded expert failed: {type(err).__name__}: {err}"
    return run


def run_planner(env: AlfworldEnv, game_path: str | Path) -> ExpertRun:
    """Plan once from the initial state with the engine's planner and play the plan."""
    env.load(game_path)
    obs, info = env.reset()
    run = ExpertRun(expert="planner", won=False, intro=obs, task=env.task)
    inner = env._inner
    try:
        plan = inner._pddl_state.replan(inner._entity_infos)
    except Exception as err:  # Fast Downward reports failure in several ways
        run.error = f"the planner failed: {type(err).__name__}: {err}"
        return run
    if not plan:
        run.error = "the planner found no plan"
        return run
    for command in plan:
        obs, _, done, info = env.step(to_game_spelling(command, info["admissible_commands"], env.style))
        run.steps.append((command, obs))
        if info["won"]:
            run.won = True
            break
        if done:
            run.error = "the plan did not win within the step limit"
            break
    return run


def run_expert(
    env: AlfworldEnv,
    game_path: str | Path,
    *,
    experts: Sequence[ExpertName] = ("handcoded", "planner"),
    seed: int = 0,
) -> ExpertRun:
    """Try the experts in order and return the first winning run (or the last failed one)."""
    run = ExpertRun(expert=experts[0] if experts else "handcoded", won=False, error="no expert")
    for name in experts:
        run = run_handcoded(env, game_path, seed=seed) if name == "handcoded" else run_planner(env, game_path)
        if run.won:
            return run
    return run


def run_to_trajectory(run: ExpertRun, game_path: str | Path, task_type: str | None) -> Trajectory:
    """A winning expert run as a memp Trajectory (reward 1.0)."""
    from memp.envs.alfworld.goals import parse_goal

    return Trajectory(
        task=Task(text=run.task, type=task_type, keywords=parse_goal(run.task), env="alfworld"),
        steps=[Step(action=a, observation=o) for a, o in run.steps],
        reward=1.0 if run.won else 0.0,
        agent=f"alfworld-expert:{run.expert}",
        finished_at=datetime.now(timezone.utc),
        metadata={"game": str(game_path), "intro": run.intro},
    )


def expert_trajectories(
    game_paths: Iterable[str | Path],
    *,
    max_steps: int = 50,
    experts: Sequence[ExpertName] = ("handcoded", "planner"),
    seed: int = 0,
    env: AlfworldEnv | None = None,
) -> list[Trajectory]:
    """Gold trajectories: the expert's winning runs on the given games (losing runs are dropped).

    The handcoded expert goes first and the planner takes over the games it does not win; the step
    limit applies to each attempt. Games are played in order, so the result is reproducible.
    """
    env = env or AlfworldEnv(max_steps=max_steps, facts=True)
    if not env.facts:
        raise ValueError("the expert needs an AlfworldEnv created with facts=True")
    gold: list[Trajectory] = []
    for i, game in enumerate(game_paths):
        run = run_expert(env, game, experts=experts, seed=seed + i)
        if run.won:
            gold.append(run_to_trajectory(run, game, env.task_type))
    return gold
