"""The nouns of memp: Task, Step, Trajectory, Procedure, RetrievalHit, Event, UpdateReport.

All are pydantic models, so they validate on construction and round-trip through JSON.
Validation errors surface as pydantic's ``ValidationError``; the helpers at the bottom turn raw
input into memp's own ``InvalidTrajectoryError`` with a message that names the field.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from memp._errors import InvalidTrajectoryError

# A single text field larger than this is almost always a bug upstream (a whole web page or a
# binary blob pasted as an observation); refusing it keeps one bad run from bloating the store.
MAX_TEXT_CHARS = 1_000_000

ProcedureStatus = Literal["active", "deprecated"]
BuildName = Literal["trajectory", "script", "proceduralization"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


def _check_size(value: str, field: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise ValueError(
            f"{field} has {len(value):,} characters, more than the {MAX_TEXT_CHARS:,} allowed; "
            "trim it before recording the trajectory"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Task(_Model):
    """What the agent was asked to do."""

    text: str = Field(description="The task description as the agent saw it.")
    type: str | None = Field(default=None, description="Task family, when the environment knows it.")
    keywords: dict[str, str] = Field(
        default_factory=dict,
        description="Structured facts of the task (e.g. action, object, target), used by AveFact.",
    )
    env: str | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("task text is empty; give the task description the agent received")
        return _check_size(v, "task text")


class Step(_Model):
    """One turn of an agent: what it thought, what it did, what it saw."""

    action: str
    observation: str = ""
    thought: str | None = None

    @field_validator("action")
    @classmethod
    def _action(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("step action is empty; every step must record the action taken")
        return _check_size(v, "step action")

    @field_validator("observation", "thought")
    @classmethod
    def _texts(cls, v: str | None) -> str | None:
        return None if v is None else _check_size(v, "step text")


class Trajectory(_Model):
    """One finished attempt at a task."""

    id: str = Field(default_factory=new_id)
    task: Task
    steps: list[Step] = Field(default_factory=list)
    reward: float = Field(default=0.0, ge=0.0, le=1.0)
    success: bool | None = Field(
        default=None, description="Defaults to reward == 1 when not given."
    )
    agent: str | None = None
    model: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = Field(default=None, description="Set when the run broke.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_success(self) -> Trajectory:
        if self.success is None:
            # Assigning through object.__setattr__ avoids re-running validation recursively.
            object.__setattr__(self, "success", self.reward >= 1.0)
        return self

    @property
    def env(self) -> str | None:
        return self.task.env


class ProcedureStats(_Model):
    """How a procedure fared since it was (re)activated; every use is also an Event."""

    uses: int = Field(default=0, ge=0)
    successes: int = Field(default=0, ge=0)

    @property
    def failures(self) -> int:
        return self.uses - self.successes

    @property
    def success_rate(self) -> float | None:
        return None if self.uses == 0 else self.successes / self.uses


class Provenance(_Model):
    """Where a procedure came from."""

    trajectory_ids: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    builder: str = ""
    builder_version: str = ""
    revised_from_failure: str | None = Field(
        default=None, description="Id of the failed trajectory that caused this version."
    )
    imported_from: str | None = None
    derived_from: str | None = Field(
        default=None, description="Ref (id@vN) of the procedure this one copies, filed under the "
                                  "task of a failed run that retrieval had not given it to.",
    )


class Procedure(_Model):
    """A unit of procedural memory: how a kind of task was (or should be) done."""

    id: str = Field(default_factory=new_id, description="Stable across versions.")
    version: int = Field(default=1, ge=1)
    parent_version: int | None = None
    namespace: str = "default"
    key: str = Field(description="The task description this procedure answers.")
    task_type: str | None = None
    keywords: dict[str, str] = Field(default_factory=dict)
    script: list[str] = Field(
        default_factory=list, description="Abstract steps, with {variables} for task entities."
    )
    summary: str = ""
    steps: list[Step] = Field(default_factory=list, description="Concrete trajectory excerpt.")
    bindings: dict[str, str] = Field(
        default_factory=dict, description="Variable -> value in the source trajectory."
    )
    notes: list[str] = Field(default_factory=list, description="Pitfalls learned from failures.")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Environment-specific knowledge (JSON-serialisable)."
    )
    builder: str = "trajectory"
    status: ProcedureStatus = "active"
    status_reason: str | None = None
    stats: ProcedureStats = Field(default_factory=ProcedureStats)
    provenance: Provenance = Field(default_factory=Provenance)
    embedding: list[float] | None = Field(default=None, repr=False)
    keyword_embeddings: dict[str, list[float]] = Field(default_factory=dict, repr=False)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("procedure key is empty; it must be the task description")
        return _check_size(v, "procedure key")

    @property
    def ref(self) -> str:
        return f"{self.id}@v{self.version}"

    def render(self, include_steps: bool | None = None, max_observation: int = 160) -> str:
        """The text an agent sees in its prompt: script and/or concrete steps, plus pitfalls."""
        if include_steps is None:
            include_steps = self.builder in ("trajectory", "proceduralization")
        show_script = self.builder in ("script", "proceduralization") or not self.steps
        lines = [f"Task: {self.key}"]
        if show_script and self.script:
            if self.summary:
                lines.append(f"Summary: {self.summary}")
            lines.append("Script:")
            lines += [f"  {i}. {s}" for i, s in enumerate(self.script, 1)]
        if include_steps and self.steps:
            lines.append("Trajectory:")
            for s in self.steps:
                obs = s.observation.replace("\n", " ")
                if len(obs) > max_observation:
                    obs = obs[: max_observation - 3] + "..."
                lines.append(f"  > {s.action}")
                if obs:
                    lines.append(f"    {obs}")
        if self.notes:
            lines.append("Pitfalls:")
            lines += [f"  - {n}" for n in self.notes]
        return "\n".join(lines)


class RetrievalHit(_Model):
    """A procedure returned for a task, with the retriever's score (higher is closer)."""

    procedure: Procedure
    score: float
    retriever: str = ""


class Event(_Model):
    """An entry of a procedure's history; the log that makes every change traceable."""

    seq: int | None = None
    namespace: str
    procedure_id: str
    version: int
    kind: Literal[
        "created", "merged", "revised", "used", "deprecated", "restored", "imported"
    ]
    trajectory_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)


class UpdateReport(_Model):
    """What one ``update`` call did to memory; refs are ``id@vN``."""

    trajectory_id: str
    added: list[str] = Field(default_factory=list)
    merged: list[str] = Field(default_factory=list)
    revised: list[str] = Field(default_factory=list)
    deprecated: list[str] = Field(default_factory=list)
    skipped: str | None = None


# --- input helpers: raw data -> validated models, with memp's own error type -----------------


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(p) for p in e["loc"]) or "(root)"
        parts.append(f"{loc}: {e['msg']}")
    more = len(err.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def trajectory_from_dict(data: Any) -> Trajectory:
    """Validate a decoded JSON object as a Trajectory, or raise InvalidTrajectoryError."""
    if not isinstance(data, dict):
        raise InvalidTrajectoryError(
            f"a trajectory must be a JSON object, got {type(data).__name__}"
        )
    try:
        return Trajectory.model_validate(data)
    except ValidationError as err:
        raise InvalidTrajectoryError(f"invalid trajectory: {_describe(err)}") from None


def trajectory_from_json(raw: str | bytes) -> Trajectory:
    """Parse one trajectory from JSON text or UTF-8 bytes."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidTrajectoryError(
                f"trajectory is not UTF-8 text (bad byte at offset {err.start}); "
                "re-encode the file as UTF-8"
            ) from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InvalidTrajectoryError(
            f"trajectory is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    return trajectory_from_dict(data)
