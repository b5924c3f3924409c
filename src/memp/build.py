"""Build: how a trajectory becomes a procedure.

Three strategies, after the paper:
- ``TrajectoryBuilder`` keeps the run itself, step by step;
- ``ScriptBuilder`` distils it into a short, general script;
- ``ProceduralizationBuilder`` keeps both.

The LLM-free script is a real abstraction: keep the *effective* actions (drop steps whose
observation shows nothing happened, information-only actions, and exploration that led nowhere),
replace the task's entities by variables, keep order, and write a one-paragraph summary. An
explorer's tests (an object placed and taken straight back) leave no trace, and neither do the
changes it had made before its last test, since they did not finish the task. With an
LLM, the script comes from the ``script_direct`` prompt or from the two-stage variant of the
paper's code (steps -> events -> critical steps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol

from memp import prompts
from memp._errors import UnknownStrategyError
from memp.keywords import KeywordExtractor, RuleKeywordExtractor
from memp.llm import LLM
from memp.types import Procedure, Provenance, Step, Trajectory

BUILDER_VERSION = "1"

# Observations that mean the action changed nothing. Environments add their own phrasings.
NOOP_PATTERNS = (
    r"^\s*$",
    r"nothing happens",
    r"^you can'?t",
    r"^i don'?t understand",
    r"^that'?s not a verb",
    r"^invalid action",
    r"^error\b",
    r"^there is no\b",
)
INFO_VERBS = frozenset({"look", "inventory", "examine", "think", "think:", "help", "check"})
MOVE_PREFIXES = ("go to ", "walk to ", "go ")
# Keywords that describe the task rather than name an entity: never turned into variables.
NON_ENTITY_KEYS = frozenset({"action", "modifier", "constraint", "constraints"})
TOGGLE_VERBS = frozenset({"open", "close"})
# Placing something and taking it straight back leaves the world as it was: an explorer's test
# ("is this enough to finish?") that a script need not repeat.
PLACE_VERBS = frozenset({"put", "move"})
TAKE_VERBS = frozenset({"take"})
_LINK_WORDS = frozenset({"in", "on", "in/on", "to", "into", "onto", "from"})


class Builder(Protocol):
    name: str

    def build(self, trajectory: Trajectory) -> Procedure | None:
        """A procedure from the trajectory, or None when there is nothing to keep."""
        ...


# --- the LLM-free abstraction ------------------------------------------------------------


@dataclass
class Abstraction:
    """How actions are cleaned up and generalised; environments tune it."""

    noop_patterns: tuple[str, ...] = NOOP_PATTERNS
    info_verbs: frozenset[str] = INFO_VERBS
    strip_instance_numbers: bool = True
    _noop: re.Pattern = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._noop = re.compile("|".join(f"(?:{p})" for p in self.noop_patterns), re.IGNORECASE)

    def is_noop(self, step: Step) -> bool:
        return bool(self._noop.search(step.observation.strip()))

    def verb(self, action: str) -> str:
        return action.strip().split(" ", 1)[0].lower()

    def is_move(self, action: str) -> bool:
        return action.lower().startswith(MOVE_PREFIXES)

    def effective_steps(self, steps: list[Step]) -> list[Step]:
        """The steps that moved the task forward, in order."""
        kept = [s for s in steps if not self.is_noop(s) and self.verb(s.action) not in self.info_verbs]
        kept = self._drop_tested_changes(kept)
        while True:
            # A move followed directly by another move was exploration that found nothing to do;
            # dropping a pointless open/close can expose such a pair, hence the loop.
            pruned = self._drop_taken_back(kept)
            pruned = [s for i, s in enumerate(pruned) if not self._dead_end_move(pruned, i)]
            pruned = [s for i, s in enumerate(pruned) if not self._pointless_toggle(pruned, i)]
            if len(pruned) == len(kept):
                return kept
            kept = pruned

    def _dead_end_move(self, steps: list[Step], i: int) -> bool:
        if not self.is_move(steps[i].action):
            return False
        return i + 1 == len(steps) or self.is_move(steps[i + 1].action)

    def _drop_tested_changes(self, steps: list[Step]) -> list[Step]:
        """Without the changes made before the last placement that was taken straight back.

        Such a placement tests whether the task is done yet; it was not, so what had been done
        to the object until then did not finish it: the change that did comes after the last
        test. (Moves, toggles, takes and placements stay; the rules below prune those.)"""
        tests = [i for i in range(len(steps) - 1) if self._takes_back(steps[i].action, steps[i + 1].action)]
        if not tests:
            return steps
        last = tests[-1]
        keep = (*PLACE_VERBS, *TAKE_VERBS, *TOGGLE_VERBS)
        return [s for i, s in enumerate(steps)
                if i > last or self.is_move(s.action) or self.verb(s.action) in keep]

    def _drop_taken_back(self, steps: list[Step]) -> list[Step]:
        """Without each placement that the next step takes back (same thing, same place)."""
        kept: list[Step] = []
        for s in steps:
            if kept and self._takes_back(kept[-1].action, s.action):
                kept.pop()
                continue
            kept.append(s)
        return kept

    def _takes_back(self, placed: str, taken: str) -> bool:
        if self.verb(placed) not in PLACE_VERBS or self.verb(taken) not in TAKE_VERBS:
            return False
        def args(action: str) -> list[str]:
            return [w for w in action.lower().split()[1:] if w not in _LINK_WORDS]
        return args(placed) == args(taken)

    def _pointless_toggle(self, steps: list[Step], i: int) -> bool:
        """An open/close of a place that nothing later touches before the agent moves on."""
        verb = self.verb(steps[i].action)
        if verb not in TOGGLE_VERBS:
            return False
        place = steps[i].action.split(" ", 1)[1] if " " in steps[i].action else ""
        for later in steps[i + 1:]:
            if self.is_move(later.action):
                return True
            if place and place in later.action and self.verb(later.action) not in TOGGLE_VERBS:
                return False
        return True

    def bindings(self, keywords: dict[str, str], steps: list[Step]) -> dict[str, str]:
        """Variables for the task entities that actually occur in the actions."""
        text = " ".join(s.action.lower() for s in steps)
        out = {}
        for key, value in keywords.items():
            value = value.strip().lower()
            if key in NON_ENTITY_KEYS:
                continue
            if value and " " not in key and re.search(rf"\b{re.escape(value)}\b", text):
                out[key] = value
        return out

    def generalise(self, action: str, bindings: dict[str, str]) -> str:
        """Replace bound entities by {variables}; drop instance numbers such as 'drawer 2'."""
        out = action.strip()
        # Longer values first, so 'apple slice' wins over 'apple'.
        for key, value in sorted(bindings.items(), key=lambda kv: -len(kv[1])):
            suffix = r"(?:\s+\d+)?" if self.strip_instance_numbers else ""
            out = re.sub(rf"\b{re.escape(value)}\b{suffix}", "{" + key + "}", out, flags=re.IGNORECASE)
        if self.strip_instance_numbers:
            out = re.sub(r"\b([a-z]+) \d+\b", r"\1", out)
        return out

    def instantiate(self, script_step: str, bindings: dict[str, str]) -> str:
        out = script_step
        for key, value in bindings.items():
            out = out.replace("{" + key + "}", value)
        return out

    def script(self, steps: list[Step], bindings: dict[str, str]) -> list[str]:
        lines: list[str] = []
        for s in self.effective_steps(steps):
            line = self.generalise(s.action, bindings)
            if not lines or lines[-1] != line:
                lines.append(line)
        return lines


def summarise(task_text: str, script: list[str], n_steps: int, bindings: dict[str, str]) -> str:
    """A one-paragraph prose rendering of a script."""
    goal = Abstraction(strip_instance_numbers=False).generalise(task_text.rstrip("."), bindings)
    if not script:
        return f"To {goal[0].lower() + goal[1:]}: no effective action was recorded."
    body = script[0] if len(script) == 1 else (
        "first " + ", then ".join(script[:-1]) + f", and finally {script[-1]}"
    )
    return (f"To {goal[0].lower() + goal[1:]}: {body}. "
            f"({len(script)} effective actions out of {n_steps} steps.)")


# --- the strategies ------------------------------------------------------------------------


class _BaseBuilder:
    name = "base"
    keeps_steps = False
    keeps_script = False

    def __init__(
        self,
        llm: LLM | None = None,
        mode: Literal["direct", "two_stage"] = "direct",
        keywords: KeywordExtractor | None = None,
        abstraction: Abstraction | None = None,
    ) -> None:
        if mode not in ("direct", "two_stage"):
            raise UnknownStrategyError(f"unknown script mode {mode!r}; use 'direct' or 'two_stage'")
        self.llm = llm
        self.mode = mode
        self.keywords = keywords or RuleKeywordExtractor()
        self.abstraction = abstraction or Abstraction()

    def build(self, trajectory: Trajectory) -> Procedure | None:
        if not trajectory.steps:
            return None
        keywords = self.keywords.extract(trajectory.task)
        bindings = self.abstraction.bindings(keywords, trajectory.steps)
        script = self.abstraction.script(trajectory.steps, bindings)
        summary = summarise(trajectory.task.text, script, len(trajectory.steps), bindings)
        if self.keeps_script and self.llm is not None:
            script, summary = self._llm_script(trajectory, bindings)
        return Procedure(
            key=trajectory.task.text,
            task_type=trajectory.task.type,
            keywords=keywords,
            script=script,
            summary=summary,
            steps=list(trajectory.steps) if self.keeps_steps else [],
            bindings=bindings,
            builder=self.name,
            provenance=Provenance(
                trajectory_ids=[trajectory.id],
                models=[trajectory.model] if trajectory.model else [],
                agents=[trajectory.agent] if trajectory.agent else [],
                builder=self._builder_tag(),
                builder_version=BUILDER_VERSION,
            ),
        )

    def _builder_tag(self) -> str:
        how = "rule" if self.llm is None else f"llm:{self.mode}:{getattr(self.llm, 'model', '?')}"
        return f"{self.name}/{how}"

    def _llm_script(self, trajectory: Trajectory, bindings: dict[str, str]) -> tuple[list[str], str]:
        from memp.llm import schemas
        from memp.llm.parse import complete_json

        steps = [s.model_dump() for s in trajectory.steps]
        if self.mode == "direct":
            messages = prompts.render("script_direct", task=trajectory.task.text, bindings=bindings, steps=steps)
            data = complete_json(self.llm, messages, validate=_validate_direct, schema=schemas.DirectScript)
            return data["steps"], data["summary"]
        events = complete_json(
            self.llm,
            prompts.render("script_events", task=trajectory.task.text, steps=steps),
            validate=lambda d: _validate_events(d, len(steps)),
            schema=schemas.events_reply(len(steps)),
        )
        chosen = complete_json(
            self.llm,
            prompts.render("script_critical", task=trajectory.task.text, events=events),
            validate=lambda d: _validate_critical(d, len(steps)),
            schema=schemas.critical_reply(len(steps)),
        )
        script = []
        for index in chosen["critical"]:
            line = self.abstraction.generalise(trajectory.steps[index - 1].action, bindings)
            if not script or script[-1] != line:
                script.append(line)
        return script, chosen["summary"]


class TrajectoryBuilder(_BaseBuilder):
    """Keep the trajectory itself. (The abstract script is stored too, for deduplication, but an
    agent given a trajectory procedure sees only the steps: see ``Procedure.render``.)"""

    name = "trajectory"
    keeps_steps = True


class ScriptBuilder(_BaseBuilder):
    """Distil the trajectory into a short general script."""

    name = "script"
    keeps_script = True


class ProceduralizationBuilder(_BaseBuilder):
    """Both the concrete steps and the script."""

    name = "proceduralization"
    keeps_steps = True
    keeps_script = True


BUILDERS: dict[str, type[_BaseBuilder]] = {
    b.name: b for b in (TrajectoryBuilder, ScriptBuilder, ProceduralizationBuilder)
}


def make_builder(name: str, **kwargs) -> _BaseBuilder:
    if name not in BUILDERS:
        raise UnknownStrategyError(
            f"unknown build strategy {name!r}; choose one of: {', '.join(BUILDERS)}"
        )
    return BUILDERS[name](**kwargs)


# --- validation of model output --------------------------------------------------------------


def _validate_direct(data: object) -> dict:
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object with 'summary' and 'steps'")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s.strip() for s in steps):
        raise ValueError("'steps' must be a non-empty list of strings")
    summary = data.get("summary")
    if not isinstance(summary, str):
        raise ValueError("'summary' must be a string")
    return {"steps": [s.strip() for s in steps], "summary": summary.strip()}


def _validate_events(data: object, n_steps: int) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data = data["events"]  # the reply schema wraps the array (OpenAI wants an object on top)
    if not isinstance(data, list) or not data:
        raise ValueError("expected a non-empty JSON array of events")
    events = []
    for i, e in enumerate(data, 1):
        if not isinstance(e, dict):
            raise ValueError(f"event {i} is not an object")
        events.append({
            "index": int(e.get("index", i)),
            "pre_state": str(e.get("pre_state", "")),
            "action": str(e.get("action", "")),
            "new_state": str(e.get("new_state", "")),
        })
    if any(not 1 <= e["index"] <= n_steps for e in events):
        raise ValueError(f"event indices must lie between 1 and {n_steps}")
    return events


def _validate_critical(data: object, n_steps: int) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("critical"), list):
        raise ValueError("expected an object with a 'critical' list of step indices")
    try:
        critical = [int(i) for i in data["critical"]]
    except (TypeError, ValueError):
        raise ValueError("'critical' must hold step numbers") from None
    if not critical or any(not 1 <= i <= n_steps for i in critical):
        raise ValueError(f"'critical' must hold step numbers between 1 and {n_steps}")
    return {"critical": sorted(dict.fromkeys(critical)), "summary": str(data.get("summary", "")).strip()}
