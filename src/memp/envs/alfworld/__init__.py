"""ALFWorld on the official engine: adapter, game generator, expert trajectories.

The engine itself (``alfworld`` + TextWorld) is the optional extra ``memp[alfworld]``; the text
helpers (``parse_goal``, grammar translation) work without it.
"""

from memp.envs.alfworld.env import DEFAULT_MAX_STEPS, AlfworldEnv, read_game_file
from memp.envs.alfworld.errors import (
    AlfworldNotInstalledError,
    EpisodeOverError,
    GameFileError,
    GenerationError,
    UnknownSplitError,
)
from memp.envs.alfworld.expert import ExpertRun, expert_trajectories, run_expert
from memp.envs.alfworld.games import SPLITS, generate_games, official_games
from memp.envs.alfworld.goals import TASK_TYPES, classify_goal, parse_goal
from memp.envs.alfworld.grammar import canonical_action, put_spelling, to_game_spelling

__all__ = [
    "DEFAULT_MAX_STEPS",
    "SPLITS",
    "TASK_TYPES",
    "AlfworldEnv",
    "AlfworldNotInstalledError",
    "EpisodeOverError",
    "ExpertRun",
    "GameFileError",
    "GenerationError",
    "UnknownSplitError",
    "canonical_action",
    "classify_goal",
    "expert_trajectories",
    "generate_games",
    "official_games",
    "parse_goal",
    "put_spelling",
    "read_game_file",
    "run_expert",
    "to_game_spelling",
]
