"""Adjustment from the evaluator's feedback, and a Memory set up for TravelPlanner.

``TravelAdjuster`` implements ``memp.update.Adjuster`` without a model: it reads the failed
constraints that ``trajectory_from_episode`` stores in ``trajectory.metadata['failures']`` and
writes a new version of the followed procedure with the check that guards each of them, placed
right after the search the check reads (or appended, with that search, when the script has none).
Failures no check can prevent (a venue outside the sandbox, say) teach nothing.

``TravelAdjustmentUpdater`` (what ``travel_memory`` uses for ``update="adjustment"``) also learns
from a failed run that followed no procedure, which the generic updater skips: it stores the run's
own procedure with the checks its failures call for (``TravelAdjuster.lesson``). So from empty
memory the planner's first failures already leave evidence that later retrieval returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from memp.embed import Embedder
from memp.envs.travelplanner.procedures import (
    KIND_TOOL,
    KIND_TOOLS,
    Check,
    parse_check,
    procedure_lines,
    tool_of,
    travel_abstraction,
)
from memp.memory import Memory
from memp.types import Procedure, ProcedureStats, Trajectory
from memp.update import AdjustmentUpdater, DeprecationRule, next_version

MAX_NOTES = 6
CHEAPEST = (Check("transportation", "cheapest"), Check("flight", "cheapest"),
            Check("accommodation", "cheapest"), Check("restaurant", "cheapest"))
# Failed constraint (the evaluator's paper name) -> the checks that prevent it.
FIXES: dict[str, tuple[Check, ...]] = {
    "Minimum Nights Stay": (Check("accommodation", "minimum nights"),),
    "Room Rule": (Check("accommodation", "house rule"),),
    "Room Type": (Check("accommodation", "room type"),),
    "Cuisine": (Check("restaurant", "cuisine"),),
    "Transportation": (Check("transportation", "rule"),),
    "Non-conf. Transportation": (Check("transportation", "same mode"),),
    "Diverse Restaurants": (Check("restaurant", "not visited"),),
    "Diverse Attractions": (Check("attraction", "not visited"),),
    "Reasonable City Route": (Check("city", "reachable"),),
    "Budget": CHEAPEST + (Check("accommodation", "occupancy"),),
}


def fixes_for(constraint: str, reason: str | None) -> tuple[Check, ...]:
    """The checks that would have prevented one failed constraint."""
    if constraint == "Complete Information":
        # A leg without transport, or too few cities: the route was not reachable.
        text = (reason or "").lower()
        if "transportation" in text or "city number" in text:
            return (Check("city", "reachable"), Check("transportation", "same mode"))
        if any(f"no {what}" in text for what in ("attaction", "attraction", "meal", "accommodation")):
            return (Check("city", "has venues"),)
        return ()
    return FIXES.get(constraint, ())


def insert_check(script: Sequence[str], check: Check) -> list[str]:
    """The script with ``check`` after the last search it reads (appended with one if none)."""
    lines = list(script)
    tools = KIND_TOOLS[check.kind]
    anchor = None
    for i, line in enumerate(lines):
        if tool_of(line) in tools:
            anchor = i
    if anchor is None:
        # Before the final Planner step, if any.
        end = len(lines) - 1 if lines and tool_of(lines[-1]) == "Planner" else len(lines)
        return [*lines[:end], f"{KIND_TOOL[check.kind]}[{{city}}]", check.line, *lines[end:]]
    # After the checks already attached to that search.
    at = anchor + 1
    while at < len(lines) and parse_check(lines[at]) is not None:
        at += 1
    return [*lines[:at], check.line, *lines[at:]]


def with_fixes(procedure: Procedure, failed: Trajectory) -> tuple[list[str], list[str], list[Check]] | None:
    """(script, notes, checks added): ``procedure`` taught the checks ``failed``'s failures call for.

    None when every such check is already there (or no check can prevent those failures).
    """
    failures = failed.metadata.get("failures") or []
    present = {c for line in procedure_lines(procedure) if (c := parse_check(line))}
    ab = travel_abstraction()
    script = list(procedure.script) or [s.action for s in procedure.steps if not ab.is_noop(s)]
    notes = list(procedure.notes)
    added: list[Check] = []
    for failure in failures:
        name, reason = str(failure.get("constraint", "")), failure.get("reason")
        new = [c for c in fixes_for(name, reason) if c not in present and c not in added]
        for check in new:
            script = insert_check(script, check)
        added += new
        if new:
            notes.append(f"{name} failed ({str(reason or '')[:90]}): added " + ", ".join(c.line for c in new))
    if not added:
        return None
    return script, list(dict.fromkeys(notes))[-MAX_NOTES:], added


def _checks(procedure: Procedure, added: list[Check]) -> list[str]:
    present = {c.line for line in procedure_lines(procedure) if (c := parse_check(line))}
    return sorted(present | {c.line for c in added})


class TravelAdjuster:
    """Revise a followed procedure from the constraints its run failed."""

    def revise(self, procedure: Procedure, failed: Trajectory) -> Procedure | None:
        fixed = with_fixes(procedure, failed)
        if fixed is None:
            # Nothing this adjuster can teach; repeated failures retire it by deprecation.
            return None
        script, notes, added = fixed
        return next_version(procedure, failed, script=script, notes=notes,
                            extra={**procedure.extra, "checks": _checks(procedure, added)})

    def lesson(self, built: Procedure, failed: Trajectory) -> Procedure | None:
        """A new procedure from a failed run that followed none: what it did, plus the checks
        its failures call for. So a failure from empty memory leaves evidence retrieval returns."""
        fixed = with_fixes(built, failed)
        if fixed is None:
            return None
        script, notes, added = fixed
        return built.model_copy(update={"script": script, "notes": notes, "extra": {
            **built.extra, "checks": _checks(built, added), "lesson_from_failure": failed.id}})


@dataclass(frozen=True)
class PosteriorDeprecation(DeprecationRule):
    """Retire a procedure once its record makes a success rate below ``min_success_rate``
    likely: P(rate < min_success_rate) >= ``confidence`` under Beta(1 + successes, 1 + failures).

    The planner follows the union of k procedures and on training queries explores on top, so a
    failed run is weak evidence against any one of them; the paper's rule (3 uses, rate < 0.5)
    retires a procedure after 0 successes in 3 uses, which from empty memory throws away the few
    successes memory has before they can prove themselves. This one waits for 0 in 4, 1 in 7 ...
    """

    confidence: float = 0.95

    def should_deprecate(self, stats: ProcedureStats) -> bool:
        return stats.uses >= self.min_uses and self.belief_below(stats) >= self.confidence

    def belief_below(self, stats: ProcedureStats) -> float:
        """P(success rate < min_success_rate) under the Beta(1 + s, 1 + f) posterior."""
        return _beta_cdf(self.min_success_rate, 1 + stats.successes, 1 + stats.failures)

    def reason(self, stats: ProcedureStats) -> str:
        return (f"{stats.successes} successes in {stats.uses} uses: P(success rate < {self.min_success_rate}) "
                f"= {self.belief_below(stats):.3f} >= {self.confidence}")


def _beta_cdf(x: float, a: int, b: int) -> float:
    """The Beta(a, b) CDF at x for whole a, b: P(Binomial(a + b - 1, x) >= a)."""
    n = a + b - 1
    return sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a, n + 1))


class TravelAdjustmentUpdater(AdjustmentUpdater):
    """Adjustment, plus a lesson from a failed run that followed no procedure.

    The generic updater revises only what was followed, so from empty memory a failure would
    teach nothing; here it stores the run's procedure with the checks its failures call for.
    """

    adjuster: TravelAdjuster

    def _learn(self, store, namespace, trajectory, used, report):
        if trajectory.success or self._followed(trajectory, used):
            return super()._learn(store, namespace, trajectory, used, report)
        built = self.builder.build(trajectory)
        taught = self.adjuster.lesson(built, trajectory) if built is not None else None
        if taught is None:
            report.skipped = "failed run followed no procedure, and no check would have prevented its failures"
            return []
        return [taught]


def travel_memory(location: str | Path, *, build: str = "proceduralization", retrieve: str = "avefact",
                  update: str = "adjustment", embedder: Embedder | None = None, k: int = 3,
                  seed: int = 0, **options) -> Memory:
    """A Memory with TravelPlanner's script abstraction and the evaluator-driven adjuster."""
    memory = Memory.open(location, namespace=options.pop("namespace", "travelplanner"), build=build,
                         retrieve=retrieve, update=update, embedder=embedder, k=k, seed=seed,
                         abstraction=travel_abstraction(), adjuster=TravelAdjuster(), **options)
    if update == "adjustment":
        generic = memory.updater
        memory.updater = TravelAdjustmentUpdater(
            builder=generic.builder, embedder=generic.embedder, adjuster=generic.adjuster,
            deprecation=generic.deprecation, dedup_threshold=generic.dedup_threshold)
    return memory
