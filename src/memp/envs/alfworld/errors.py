"""Errors of the ALFWorld adapter, all under memp's own hierarchy.

    MempError
    ├── InvalidInputError
    │   ├── GameFileError          a game folder or file that the engine cannot load
    │   └── UnknownSplitError      a split name the generator or the data layout does not have
    ├── AlfworldNotInstalledError  the optional `alfworld` extra is missing
    ├── EpisodeOverError           step() after the episode ended
    └── GenerationError            no solvable game could be made from the floor plans asked for
"""

from __future__ import annotations

from memp._errors import InvalidInputError, MempError


class GameFileError(InvalidInputError):
    """The game file is missing, is not JSON, or lacks the fields the engine needs."""


class UnknownSplitError(InvalidInputError):
    """A split name that is not one of the known splits."""


class AlfworldNotInstalledError(MempError, ImportError):
    """The ALFWorld engine (the `alfworld` extra) is not installed."""


class EpisodeOverError(MempError):
    """An action was sent after the episode had ended (won or out of steps); call reset()."""


class GenerationError(MempError):
    """The generator could not produce a solvable game for the request."""
