"""Every error memp raises on purpose.

    MempError
    ├── InvalidInputError          bad data handed to memp (also a ValueError)
    │   ├── InvalidTrajectoryError
    │   └── UnknownStrategyError
    ├── StoreError
    │   ├── StoreCorruptError      the file is not a memp database, or is damaged
    │   ├── StoreVersionError      written by a newer memp
    │   ├── NamespaceError
    │   ├── ProcedureNotFoundError (also a KeyError)
    │   └── TrajectoryConflictError a trajectory id already stored with other content
    ├── EmbeddingError
    └── LLMError
        └── LLMOutputError         the model answered, but not in a usable form

Each message says what went wrong and what to do about it.
"""

from __future__ import annotations


class MempError(Exception):
    """Base of every error memp raises on purpose."""


class InvalidInputError(MempError, ValueError):
    """Data handed to memp does not have the expected shape."""


class InvalidTrajectoryError(InvalidInputError):
    """A trajectory failed validation; nothing was stored."""


class UnknownStrategyError(InvalidInputError):
    """A build, retrieve or update strategy name that memp does not know."""


class StoreError(MempError):
    """The procedure store could not do what was asked."""


class StoreCorruptError(StoreError):
    """The database file is damaged or not a memp database."""


class StoreVersionError(StoreError):
    """The database was written by a newer memp schema."""


class NamespaceError(StoreError, ValueError):
    """A namespace name that is empty or malformed."""


class ProcedureNotFoundError(StoreError, KeyError):
    """No procedure with that id (or version) in that namespace."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "procedure not found"


class EmbeddingError(MempError):
    """The embedding model could not be loaded or run."""


class LLMError(MempError):
    """A call to the language model failed."""


class LLMOutputError(LLMError):
    """The model answered, but its answer could not be parsed."""


class TrajectoryConflictError(StoreError):
    """A trajectory id that is already stored with other content; the stored run is kept."""
