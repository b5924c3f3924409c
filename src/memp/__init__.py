"""memp: learnable, updatable, lifelong procedural memory for LLM agents."""

from memp._errors import (
    EmbeddingError,
    InvalidInputError,
    InvalidTrajectoryError,
    LLMError,
    LLMOutputError,
    MempError,
    NamespaceError,
    ProcedureNotFoundError,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    TrajectoryConflictError,
    UnknownStrategyError,
)
from memp.memory import Memory
from memp.types import (
    Event,
    Procedure,
    ProcedureStats,
    Provenance,
    RetrievalHit,
    Step,
    Task,
    Trajectory,
    UpdateReport,
)

__version__ = "0.1.0"

__all__ = [
    "EmbeddingError", "Event", "InvalidInputError", "InvalidTrajectoryError", "LLMError",
    "LLMOutputError", "Memory", "MempError", "NamespaceError", "Procedure", "ProcedureNotFoundError",
    "ProcedureStats", "Provenance", "RetrievalHit", "Step", "StoreCorruptError", "StoreError",
    "StoreVersionError", "Task", "Trajectory", "TrajectoryConflictError", "UnknownStrategyError", "UpdateReport",
]
