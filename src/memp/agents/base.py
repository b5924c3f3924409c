"""The Agent protocol: play one episode of an environment, optionally guided by memory."""

from __future__ import annotations

from typing import Any, Protocol

from memp.types import RetrievalHit, Trajectory


class Environment(Protocol):
    """A text environment: reset to a task, then act until done."""

    def reset(self) -> tuple[str, dict[str, Any]]:
        ...

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        ...


class Agent(Protocol):
    name: str

    def run(self, env: Environment, memory: list[RetrievalHit] | None = None) -> Trajectory:
        """Play one episode from ``env.reset()`` to the end; return what happened."""
        ...
