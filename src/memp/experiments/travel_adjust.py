"""Adjustment from the evaluator's feedback, and a Memory set up for TravelPlanner.

``TravelAdjuster`` implements ``memp.update.Adjuster`` without a model: it reads the failed
constraints that ``trajectory_from_episode`` stores in ``trajectory.metadata['failures']`` and
writes a new version of the followed procedure with the check that guards each of them, placed
right after the search the check reads (or appended, with that search, when the script has none).
Failures no check can prevent (a venue outside the sandbox, say) teach nothing.

A failure can also withdraw a check (``Skip[kind, criterion]``). The budget is a sum of prices,
and a Filter only narrows the options a price is chosen from, so it can only raise that price.
When the budget fails, a Filter on a priced choice that guards none of the evaluator's
constraints (no failure calls for it) was all cost and no protection: the lesson withdraws it
(``withdrawals_for``). A success cannot teach that; only the failed run shows it.

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
    parse_skip,
    procedure_lines,
    skip_line,
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
    # Not occupancy: Prefer[accommodation, cheapest] already prices the units a party needs, so
    # dropping listings too small for the party only narrows the choice (see withdrawals_for).
    "Budget": CHEAPEST,
}
COMPLETE_INFORMATION_FIXES = (Check("city", "reachable"), Check("transportation", "same mode"),
                              Check("city", "has venues"))
# The checks some failure calls for; any other check protects no constraint.
GUARDS = frozenset(c for fixes in FIXES.values() for c in fixes) | frozenset(COMPLETE_INFORMATION_FIXES)
# The kinds of choice the budget adds up (the official total: legs, meals, stays).
PRICED = ("transportation", "flight", "accommodation", "restaurant")


def fixes_for(constraint: str, reason: str | None) -> tuple[Check, ...]:
    """The checks that would have prevented one failed constraint."""
    if constraint == "Complete Information":
        # A leg without transport, or too few cities: the route was not reachable.
        text = (reason or "").lower()
        if "transportation" in text or "city number" in text:
            return COMPLETE_INFORMATION_FIXES[:2]
        if any(f"no {what}" in text for what in ("attaction", "attraction", "meal", "accommodation")):
            return COMPLETE_INFORMATION_FIXES[2:]
        return ()
    return FIXES.get(constraint, ())


def withdrawals_for(constraint: str, applied: set[Check]) -> tuple[Check, ...]:
    """The applied checks one failed constraint withdraws: on a budget failure, the Filters on a
    priced choice that guard no constraint (they narrowed the choice and protected nothing).

    No failure calls for a check withdrawn here, so a later lesson never adds it back."""
    if constraint != "Budget":
        return ()
    return tuple(sorted(c for c in applied if c.verb == "Filter" and c.kind in PRICED and c not in GUARDS))


def insert_check(script: Sequence[str], check: Check, line: str | None = None) -> list[str]:
    """The script with ``check`` (or ``line`` about it, such as its Skip) after the last search it
    reads (appended with one if none)."""
    lines = list(script)
    new = line or check.line
    tools = KIND_TOOLS[check.kind]
    anchor = None
    for i, text in enumerate(lines):
        if tool_of(text) in tools:
            anchor = i
    if anchor is None:
        # Before the final Planner step, if any.
        end = len(lines) - 1 if lines and tool_of(lines[-1]) == "Planner" else len(lines)
        return [*lines[:end], f"{KIND_TOOL[check.kind]}[{{city}}]", new, *lines[end:]]
    # After the checks already attached to that search.
    at = anchor + 1
    while at < len(lines) and (parse_check(lines[at]) is not None or parse_skip(lines[at]) is not None):
        at += 1
    return [*lines[:at], new, *lines[at:]]


def withdraw_check(script: Sequence[str], check: Check) -> list[str]:
    """The script without ``check``'s lines, and with its Skip after the search it reads."""
    return insert_check([line for line in script if parse_check(line) != check], check, skip_line(check))


@dataclass(frozen=True)
class Fixed:
    """What a failed run teaches a procedure: its new script and notes, and the lines of the
    checks the taught procedure makes and of those it withdraws."""

    script: list[str]
    notes: list[str]
    checks: list[str]
    skipped: list[str]

    def extra(self) -> dict[str, list[str]]:
        """For the taught procedure's ``extra``: its checks, and its withdrawals if any."""
        return {"checks": self.checks, **({"skipped": self.skipped} if self.skipped else {})}


def _applied(procedure: Procedure, failed: Trajectory) -> set[Check]:
    """The checks the failed run made: those it reports (its procedures' union and what it
    explored), else the ones this procedure names."""
    lines = failed.metadata.get("checks")
    if lines is None:
        lines = procedure_lines(procedure)
    return {c for line in lines if (c := parse_check(str(line)))}


def with_fixes(procedure: Procedure, failed: Trajectory) -> Fixed | None:
    """``procedure`` taught the checks ``failed``'s failures call for, less those they withdraw.

    None when there is nothing new to teach: every such check is already there and every
    withdrawal already written (or no check can prevent those failures).
    """
    failures = failed.metadata.get("failures") or []
    lines = procedure_lines(procedure)
    present = {c for line in lines if (c := parse_check(line))}
    skipped = {c for line in lines if (c := parse_skip(line))}
    applied = _applied(procedure, failed)
    ab = travel_abstraction()
    script = list(procedure.script) or [s.action for s in procedure.steps if not ab.is_noop(s)]
    notes = list(procedure.notes)
    added: list[Check] = []
    withdrawn: list[Check] = []
    for failure in failures:
        name, reason = str(failure.get("constraint", "")), failure.get("reason")
        new = [c for c in fixes_for(name, reason) if c not in present and c not in added]
        gone = [c for c in withdrawals_for(name, applied) if c not in skipped and c not in withdrawn]
        for check in new:
            script = insert_check(script, check)
        for check in gone:
            script = withdraw_check(script, check)
        added += new
        withdrawn += gone
        taught = [f"added {', '.join(c.line for c in new)}"] if new else []
        if gone:
            taught.append(f"withdrew {', '.join(c.line for c in gone)} (it narrowed a priced choice "
                          "and guards no constraint)")
        if taught:
            notes.append(f"{name} failed ({str(reason or '')[:90]}): " + "; ".join(taught))
    if not added and not withdrawn:
        return None
    return Fixed(script, list(dict.fromkeys(notes))[-MAX_NOTES:],
                 checks=sorted(c.line for c in (present | set(added)) - set(withdrawn)),
                 skipped=sorted(skip_line(c) for c in skipped | set(withdrawn)))


class TravelAdjuster:
    """Revise a followed procedure from the constraints its run failed."""

    def revise(self, procedure: Procedure, failed: Trajectory) -> Procedure | None:
        fixed = with_fixes(procedure, failed)
        if fixed is None:
            # Nothing this adjuster can teach; repeated failures retire it by deprecation.
            return None
        return next_version(procedure, failed, script=fixed.script, notes=fixed.notes,
                            extra={**procedure.extra, **fixed.extra()})

    def lesson(self, built: Procedure, failed: Trajectory) -> Procedure | None:
        """A new procedure from a failed run that followed none: what it did, plus the checks
        its failures call for. So a failure from empty memory leaves evidence retrieval returns."""
        fixed = with_fixes(built, failed)
        if fixed is None:
            return None
        return built.model_copy(update={"script": fixed.script, "notes": fixed.notes, "extra": {
            **built.extra, **fixed.extra(), "lesson_from_failure": failed.id}})


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
