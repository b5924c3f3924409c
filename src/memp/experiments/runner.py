"""The experiment runner: tasks × conditions, seeded, resumable, parallel.

A *condition* says how memory is used: which build, retrieve and update strategies, how many
procedures (k), or no memory at all. Episodes of a condition run in *groups* (the paper updates
memory after each group of t tasks): within a group memory is frozen, so its episodes can run in
parallel processes; after the group, the trajectories update memory one by one in task order.
That makes a run independent of which worker finishes first: same seed, same results.

Every finished episode is one line of ``episodes.jsonl``; a rerun skips the groups already
recorded (their memory updates are already in that condition's database), so an interrupted run
resumes where it stopped. A broken episode is recorded as failed with its error; the run goes on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from memp.memory import Memory
from memp.types import RetrievalHit, Task, Trajectory


@dataclass(frozen=True)
class Condition:
    """One way of running the agent. ``build=None`` means no memory."""

    name: str
    build: str | None = None
    retrieve: str = "query"
    update: str | None = None  # None: memory stays as built (frozen)
    k: int = 1
    memory: str = "gold"  # which memory to start from: "gold" (expert-built), "empty", ...

    def config(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EpisodeTask:
    """A task to play: an id the environment understands (e.g. a game path) and its description."""

    id: str
    task: Task
    seed: int = 0


@dataclass
class EpisodeRecord:
    condition: str
    task_id: str
    seed: int
    group: int
    success: bool
    steps: int
    reward: float
    error: str | None
    trajectory_id: str
    task_type: str | None = None
    retrieved: list[str] = field(default_factory=list)
    tokens: int = 0
    cost_usd: float = 0.0  # only what was fetched from the network, at the configured price


# Plays a batch of (task, retrieved procedures) and returns their trajectories, in order.
Player = Callable[[list[tuple[EpisodeTask, list[RetrievalHit]]]], list[Trajectory]]


def load_records(path: Path) -> list[EpisodeRecord]:
    """Every record of an ``episodes.jsonl``; a line cut short by a crash is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                records.append(EpisodeRecord(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut short by a crash: that group is simply run again
    return records


def run_condition(
    condition: Condition,
    tasks: Sequence[EpisodeTask],
    play: Player,
    out_dir: Path,
    *,
    memory: Memory | None = None,
    group_size: int | None = None,
    progress: Progress | None = None,
) -> list[EpisodeRecord]:
    """Run one condition over the tasks; returns every record, old and new."""
    out_dir.mkdir(parents=True, exist_ok=True)
    episodes_path = out_dir / "episodes.jsonl"
    done = [r for r in load_records(episodes_path) if r.condition == condition.name]
    done_groups = {r.group for r in done}
    size = group_size or len(tasks) or 1
    groups = [list(tasks[i:i + size]) for i in range(0, len(tasks), size)]
    bar = progress.add_task(condition.name, total=len(tasks), completed=sum(
        len(g) for i, g in enumerate(groups) if i in done_groups)) if progress else None
    records = list(done)
    for index, group in enumerate(groups):
        if index in done_groups:
            continue
        batch = [(t, _retrieve(memory, condition, t.task)) for t in group]
        trajectories = play(batch)
        new = []
        for (task, hits), trajectory in zip(batch, trajectories):
            if memory is not None and condition.update is not None:
                memory.update(trajectory, used=hits)
            new.append(EpisodeRecord(
                condition=condition.name, task_id=task.id, seed=task.seed, group=index,
                success=bool(trajectory.success), steps=len(trajectory.steps), reward=trajectory.reward,
                error=trajectory.error, trajectory_id=trajectory.id, task_type=task.task.type,
                retrieved=[h.procedure.ref for h in hits],
                tokens=int(trajectory.metadata.get("tokens", 0) or 0),
                cost_usd=float((trajectory.metadata.get("usage") or {}).get("cost_usd", 0.0) or 0.0),
            ))
        with (out_dir / "trajectories.jsonl").open("a", encoding="utf-8") as fh:
            for trajectory in trajectories:
                fh.write(json.dumps({"condition": condition.name, **trajectory.model_dump(mode="json")}) + "\n")
        with episodes_path.open("a", encoding="utf-8") as fh:
            for record in new:
                fh.write(json.dumps(asdict(record)) + "\n")
        records += new
        if progress is not None:
            progress.advance(bar, len(group))
    return records


def _retrieve(memory: Memory | None, condition: Condition, task: Task) -> list[RetrievalHit]:
    if memory is None or condition.build is None or condition.k == 0:
        return []
    return memory.retrieve(task, k=condition.k)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn())


# --- summaries -----------------------------------------------------------------------------


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def summarise(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    n = len(records)
    wins = [r for r in records if r.success]
    return {
        "n": n,
        "success_rate": round(len(wins) / n, 4) if n else 0.0,
        "success_ci95": wilson(len(wins), n),
        "avg_steps": round(sum(r.steps for r in records) / n, 2) if n else 0.0,
        "avg_steps_success": round(sum(r.steps for r in wins) / len(wins), 2) if wins else None,
        "errors": sum(1 for r in records if r.error),
        "tokens": sum(r.tokens for r in records),
        "cost_usd": round(sum(r.cost_usd for r in records), 6),
    }


def by_group(records: Sequence[EpisodeRecord]) -> list[dict[str, Any]]:
    groups = sorted({r.group for r in records})
    return [{"group": g, **summarise([r for r in records if r.group == g])} for g in groups]


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    """Summaries as a Markdown table; with ``per_seed`` rates, a column of them too."""
    seeds = any(len(s.get("per_seed") or []) > 1 for s in rows.values())
    columns = ["condition", "n", "success", "95% CI", *(["per seed"] if seeds else []), "avg steps", "avg steps (won)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for name, s in rows.items():
        lo, hi = s["success_ci95"]
        won = "-" if s["avg_steps_success"] is None else f"{s['avg_steps_success']:.1f}"
        per_seed = f" {' / '.join(f'{v:.2f}' for v in s.get('per_seed') or [])} |" if seeds else ""
        lines.append(f"| {name} | {s['n']} | {s['success_rate']:.3f} | {lo:.2f}–{hi:.2f} |{per_seed} "
                     f"{s['avg_steps']:.1f} | {won} |")
    return "\n".join(lines) + "\n"
