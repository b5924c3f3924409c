"""ALFWorld on the official text engine (alfworld 0.4.2 + TextWorld's PDDL environment).

``AlfworldEnv`` plays one game at a time and can be re-pointed at another game with ``load`` (the
planner library is loaded once per instance). It asks the engine only for what an agent needs —
whether the game is won and the admissible commands — because every extra info costs time on each
step; facts (hidden state) are off unless an expert needs them.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memp.envs.alfworld.errors import AlfworldNotInstalledError, EpisodeOverError, GameFileError
from memp.envs.alfworld.goals import classify_goal, normalise_task_text, parse_goal
from memp.envs.alfworld.grammar import grammar_style, to_game_spelling

DEFAULT_MAX_STEPS = 30
_GAME_KEYS = ("pddl_domain", "grammar", "pddl_problem")


def import_alfworld() -> None:
    """Import the alfworld package without its side effect on ``ALFWORLD_DATA``.

    ``import alfworld`` sets ``ALFWORLD_DATA`` to a cache folder when it is unset, which would make
    code that checks the variable believe official data is there; the variable is put back.
    """
    before = os.environ.get("ALFWORLD_DATA")
    try:
        import alfworld  # noqa: F401
    except ImportError as err:
        raise AlfworldNotInstalledError(
            f"the ALFWorld engine is not installed ({err}); install memp with the extra: "
            "pip install 'memp[alfworld]'"
        ) from None
    finally:
        if before is None:
            os.environ.pop("ALFWORLD_DATA", None)


def _engine() -> tuple[Any, Any, Any]:
    """Import the engine lazily, so memp works without the `alfworld` extra."""
    import_alfworld()
    try:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs import PddlEnv
    except ImportError as err:  # pragma: no cover - depends on the install
        raise AlfworldNotInstalledError(
            f"the ALFWorld engine is not installed ({err}); install memp with the extra: "
            "pip install 'memp[alfworld]'"
        ) from None
    return textworld, PddlEnv, AlfredDemangler


def read_game_file(game_path: str | Path) -> dict[str, Any]:
    """Read and check a game.tw-pddl file (or the folder holding one)."""
    path = Path(game_path)
    if path.is_dir():
        path = path / "game.tw-pddl"
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GameFileError(f"no game file at {path}; expected an ALFWorld game.tw-pddl") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GameFileError(f"cannot read game file {path}: {err}") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise GameFileError(
            f"game file {path} is not valid JSON ({err.msg} at line {err.lineno}); "
            "regenerate it or fetch the game again"
        ) from None
    missing = [k for k in _GAME_KEYS if not isinstance(data, dict) or not isinstance(data.get(k), str)]
    if missing:
        raise GameFileError(f"game file {path} lacks {', '.join(missing)}; it is not a tw-pddl game")
    return data


def read_traj_data(game_path: str | Path) -> dict[str, Any] | None:
    """The traj_data.json beside a game (task type, pddl_params), or None when absent."""
    path = Path(game_path)
    folder = path if path.is_dir() else path.parent
    try:
        return json.loads((folder / "traj_data.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


class _CachedCommandGrammar:
    """Memoises the derivation of command templates, the engine's main cost per step.

    TextWorld re-derives every admissible command's template through its grammar parser on every
    step. For ALFRED's command templates the result depends only on which entities fill the
    placeholders and on static facts (``receptacleatlocation``), so it can be cached; templates
    with grammar symbols (``#...#``) or other queries go to the engine as before.
    """

    def __init__(self, grammar: Any) -> None:
        self._grammar = grammar
        self._cache: dict[tuple[Any, ...], str] = {}

    @staticmethod
    def _cacheable(start: str) -> bool:
        if "#" in start:
            return False
        if "|" in start:
            return "receptacleatlocation(" in start and start.count("(") == 1
        return True

    def derive(self, start: str, context: dict[str, Any] | None = None) -> str:
        context = context or {}
        if not self._cacheable(start):
            return self._grammar.derive(start, context)
        variables = context.get("variables", {})
        # Only the placeholders the template names matter ("go to" ignores where the agent is).
        used = set(re.findall(r"[A-Za-z_]\w*", start))
        key = (start, tuple(sorted((k, v.id) for k, v in variables.items() if k in used)))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._grammar.derive(start, context)
        return hit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._grammar, name)


class _InitialState:
    """A game's initial state, restorable without parsing the PDDL problem again.

    TextWorld's reset re-translates the whole problem with Fast Downward (twice: once for play,
    once for replanning), over a second per reset. The translation of one problem never changes, so
    the translated tasks are kept: restoring reloads them into the planner library and puts back
    a copy of the initial facts.
    """

    _MUTABLE = ("_facts", "_vars_by_name", "_vars_by_type", "_var_counts")

    def __init__(self, pddl_state: Any) -> None:
        self._state = pddl_state
        self._saved = {k: copy.deepcopy(getattr(pddl_state, k)) for k in self._MUTABLE}

    def restore(self) -> Any:
        state = copy.copy(self._state)
        for key, value in self._saved.items():
            setattr(state, key, copy.deepcopy(value))
        state.downward_lib.load_sas(state.sas.encode("utf-8"))
        state.downward_lib.load_sas_replan(state.sas_replan.encode("utf-8"))
        return state


@dataclass
class _LoadedGame:
    """What loading a game file gives the engine; kept to load the same game again for free."""

    data: dict[str, Any]
    logic: Any
    entity_infos: dict[str, Any]
    initial: _InitialState
    task_type: str | None


class AlfworldEnv:
    """One ALFWorld game on the official engine, with a step limit.

    ``reset() -> (observation, info)`` and ``step(action) -> (observation, reward, done, info)``;
    ``info`` carries ``admissible_commands``, ``won``, ``steps``, ``task`` (text), ``task_type``,
    ``goal`` (parsed slots) and ``game_path``. An action the engine does not know gets the engine's
    own "Nothing happens."; placing actions are first translated into the game's spelling.
    """

    def __init__(
        self,
        game_path: str | Path | None = None,
        max_steps: int = DEFAULT_MAX_STEPS,
        *,
        facts: bool = False,
        translate_actions: bool = True,
        cache_commands: bool = True,
        restore_reset: bool = True,
        keep_games: int = 0,
    ) -> None:
        """``keep_games`` > 0 keeps that many loaded games in memory (least recently used
        first out), so loading one of them again costs nothing: an experiment plays each game
        under many conditions, and the PDDL translation of a load is most of an episode's time."""
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        self.max_steps = max_steps
        self.facts = facts
        self.translate_actions = translate_actions
        self.cache_commands = cache_commands
        self.restore_reset = restore_reset
        if keep_games < 0:
            raise ValueError(f"keep_games must be 0 or more, got {keep_games}")
        self.keep_games = keep_games
        self._games: OrderedDict[Path, _LoadedGame] = OrderedDict()
        textworld, pddl_env, demangler = _engine()
        infos = textworld.EnvInfos(won=True, admissible_commands=True, facts=facts)
        self._inner = pddl_env(infos)
        self._env = demangler(self._inner, shuffle=False)
        self._initial: _InitialState | None = None  # the game's start, restored by reset()
        self.game_path: Path | None = None
        self.task = ""
        self.task_type: str | None = None
        self.goal: dict[str, str] = {}
        self.style = "move"
        self.steps = 0
        self.done = True
        self._state: Any = None
        if game_path is not None:
            self.load(game_path)

    # --- game loading -----------------------------------------------------------------------

    def load(self, game_path: str | Path) -> None:
        """Point the environment at another game (a game.tw-pddl file or its folder)."""
        path = Path(game_path)
        if path.is_dir():
            path = path / "game.tw-pddl"
        game = self._games.get(path.resolve()) if self.keep_games else None
        if game is None:
            game = self._load_from_file(path)
            if self.keep_games:
                self._games[path.resolve()] = game
                while len(self._games) > self.keep_games:
                    self._games.popitem(last=False)
        else:
            self._games.move_to_end(path.resolve())
        inner = self._inner
        inner._game_file, inner._game_data, inner.walkthrough = str(path), game.data, game.data.get("walkthrough")
        inner._logic, inner._entity_infos = game.logic, game.entity_infos
        inner._pddl_state = None  # every reset starts from the saved initial state
        self._initial = game.initial
        self.game_path = path
        self.style = grammar_style(game.data["grammar"])
        self.task_type = game.task_type
        self.done = True

    def _load_from_file(self, path: Path) -> _LoadedGame:
        read_game_file(path)  # a clear error for a missing or broken file, before the engine's
        argv = list(sys.argv)  # the PDDL translator overwrites sys.argv; give the caller's back
        try:
            self._env.load(str(path))
        # The engine raises many kinds on a malformed problem, and its PDDL translator even
        # calls sys.exit: neither may take the caller down with it.
        except (Exception, SystemExit) as err:
            raise GameFileError(
                f"the engine cannot load {path}: {type(err).__name__}: {err}"
            ) from None
        finally:
            sys.argv[:] = argv
        if self.cache_commands:
            self._inner._logic.grammar = _CachedCommandGrammar(self._inner._logic.grammar)
        traj = read_traj_data(path) or {}
        return _LoadedGame(
            data=self._inner._game_data, logic=self._inner._logic, entity_infos=self._inner._entity_infos,
            # The state the engine just parsed is pristine: it is the start every reset restores.
            initial=_InitialState(self._inner._pddl_state),
            task_type=traj.get("task_type") if isinstance(traj, dict) else None,
        )

    # --- episode --------------------------------------------------------------------------

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "admissible_commands": list(self._state["admissible_commands"]),
            "won": bool(self._state["won"]),
            "steps": self.steps,
            "task": self.task,
            "task_type": self.task_type,
            "goal": dict(self.goal),
            "game_path": str(self.game_path),
        }
        if self.facts:
            info["facts"] = self._state["facts"]
        return info

    def reset(self) -> tuple[str, dict[str, Any]]:
        """Start the game over; returns the intro text (rooms and task) and the info dict."""
        if self.game_path is None:
            raise GameFileError("no game loaded; pass game_path or call load() first")
        if self.restore_reset:
            self._state = self._reset_from(self._initial.restore())
        else:  # the engine's own reset, which parses the problem again
            self._state = self._env.reset()
        obs = self._state.feedback
        self.task = normalise_task_text(obs) if "your task is to:" in obs.lower() else ""
        self.goal = parse_goal(self.task)
        self.task_type = self.task_type or classify_goal(self.task)
        self.steps = 0
        self.done = False
        return obs, self._info()

    def _reset_from(self, pddl_state: Any) -> Any:
        """PddlEnv.reset, but starting from an already built initial state."""
        from textworld.core import GameState

        inner = self._inner
        inner._pddl_state = pddl_state
        inner.prev_state = None
        inner.state = GameState()
        inner._last_action = None
        inner._moves = 0
        context = {
            "state": pddl_state,
            "facts": list(pddl_state.facts),
            "variables": {},
            "mapping": {},
            "entity_infos": inner._entity_infos,
        }
        inner.state.feedback = inner._logic.grammar.derive("#intro#", context)
        inner.state.raw = inner.state.feedback
        inner._gather_infos()
        return inner.state

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Play one action; the episode ends when the game is won or ``max_steps`` are used."""
        if self.done:
            raise EpisodeOverError(
                f"the episode is over (won or {self.max_steps} steps used); call reset()"
            )
        action = str(action)
        if self.translate_actions:
            action = to_game_spelling(action, self._state["admissible_commands"], self.style)
        self._state, _, _ = self._env.step(action)
        self.steps += 1
        won = bool(self._state["won"])
        self.done = won or self.steps >= self.max_steps
        info = self._info()
        info["truncated"] = self.done and not won
        return self._state.feedback, (1.0 if won else 0.0), self.done, info

    @property
    def admissible_commands(self) -> list[str]:
        return [] if self._state is None else list(self._state["admissible_commands"])

    def close(self) -> None:
        self._env.close()

    def __enter__(self) -> AlfworldEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
