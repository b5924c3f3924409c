"""An LLM-free ALFWorld agent that acts only on what it observes.

It reads the observation text and the admissible commands, never the game's hidden state, and
has no built-in knowledge of ALFWorld's task types: it does not know that heating needs a
microwave or where apples are kept. From the task sentence it reads only the slots the sentence
names (object, target, tool, and "two").

Without memory it explores: it searches for the object, opens what is closed, takes the object
when it sees it, puts it at the target, and when that does not win, carries the object around
trying whatever each place offers to do with it. Two task-agnostic habits keep that short: the
search treats each kind of place as a chance of holding the object that every empty place of the
kind lowers (so a dozen empty cabinets send it elsewhere), and the tour tries one place of each
kind before a second place of a kind already tried (places of one kind offer alike).

With memory it follows the top retrieved procedure:
- a *script* (script or proceduralization memory) is a list of abstract actions, bound to the
  current task's object and target and executed wherever the world allows them;
- a *trajectory* (trajectory memory) is replayed step by step with the entities swapped;
and all retrieved procedures tell the search where to look: the kinds of place where their runs
found the object raise a kind's chance, the places their runs passed on the way and the places
adjustment recorded as searched in vain lower it. When the procedure runs out or a step cannot
be done, the agent falls back to exploring.

Failure evidence (``memp.update.is_evidence``: what earlier failed runs of the same kind of task
tried in vain) steers the tour: actions tried in vain are tried after every other one, and the
kinds of place where they were tried are visited last. Only evidence whose task asks for the same
thing (same action and modifier) counts, since what was useless for one goal may be the key to
another.

The policy is a generator: it yields an action and receives the observation, which keeps each
behaviour (go somewhere, find and take, do something somewhere) a short readable function.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from memp.build import Abstraction
from memp.envs.alfworld.grammar import canonical_action
from memp.types import Procedure, RetrievalHit, Step, Task, Trajectory, utcnow
from memp.update import is_evidence, kind_of

ENTITY = re.compile(r"\b([a-z]+) (\d+)\b")
SEE = re.compile(r"you see (.*?)(?:\.|$)", re.IGNORECASE)
PICKED = re.compile(r"you pick up the ([a-z]+ \d+)", re.IGNORECASE)
PLACED = re.compile(r"you (?:put|move) the ([a-z]+ \d+) (?:in/on|to) the ([a-z]+ \d+)", re.IGNORECASE)
NOTHING = "nothing happens"
# Verbs every household game has for moving around and moving things; anything else that
# mentions the held object is something the place offers to *do* to it.
BASIC_VERBS = {"go", "open", "close", "take", "put", "move", "examine", "look", "inventory", "help"}

Policy = Generator[str, str, bool]


def place_type(entity: str) -> str:
    return entity.rsplit(" ", 1)[0] if ENTITY.fullmatch(entity) else entity


def norm(action: str) -> str:
    """Canonical spelling without instance numbers: how a remembered action is matched."""
    return re.sub(r" \d+\b", "", canonical_action(action))


@dataclass
class Plan:
    """What memory says about the current task."""

    lines: list[str]
    search: list[str]  # place types where such objects were found, most promising first
    avoid: Counter = field(default_factory=Counter)  # place type -> remembered visits there in vain
    found: Counter = field(default_factory=Counter)  # place type -> remembered runs that found it there
    passed: Counter = field(default_factory=Counter)  # place type -> remembered visits before finding it
    followed: list[str] = field(default_factory=list)
    in_vain: Counter = field(default_factory=Counter)  # generalised actions tried in vain


@dataclass
class World:
    """Everything the agent knows, all of it read from observations."""

    goal: dict[str, str]
    places: list[str]
    admissible: list[str]
    location: str | None = None
    holding: str | None = None
    contents: dict[str, set[str]] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    sightings: set[str] = field(default_factory=set)  # places where a goal object was seen
    placed: set[str] = field(default_factory=set)
    tried: set[tuple[str, str]] = field(default_factory=set)
    # What each place offered to do with the object held there: (place, held) -> commands.
    offers: dict[tuple[str, str | None], list[str]] = field(default_factory=dict)
    won: bool = False

    @property
    def obj(self) -> str:
        return self.goal.get("object", "")

    @property
    def target(self) -> str | None:
        return self.goal.get("target")

    def holds_goal_object(self) -> bool:
        return self.holding is not None and place_type(self.holding) == self.obj

    def observe(self, action: str, obs: str, info: dict[str, Any]) -> None:
        self.admissible = list(info.get("admissible_commands", self.admissible))
        self.won = self.won or bool(info.get("won"))
        text = obs.strip()
        if text.lower().startswith(NOTHING):
            return
        if action.startswith("go to "):
            self.location = action[6:]
        if self.location and (seen := SEE.search(text)):
            self.contents[self.location] = {" ".join(m) for m in ENTITY.findall(seen.group(1))}
            self.visited.add(self.location)
            if any(place_type(i) == self.obj for i in self.contents[self.location]):
                self.sightings.add(self.location)
        if m := PICKED.search(text):
            self.holding = m.group(1)
            for items in self.contents.values():
                items.discard(m.group(1))
        if m := PLACED.search(text):
            self.holding = None
            self.contents.setdefault(m.group(2), set()).add(m.group(1))
            if place_type(m.group(2)) == self.target and place_type(m.group(1)) == self.obj:
                self.placed.add(m.group(1))


class OfflineAlfworldAgent:
    """See the module docstring. ``run(env, memory)`` plays one episode."""

    name = "offline-alfworld"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.abstraction = Abstraction()

    # --- the episode ------------------------------------------------------------------------

    def run(self, env, memory: list[RetrievalHit] | None = None) -> Trajectory:
        started = utcnow()
        obs, info = env.reset()
        task = info.get("task", "")
        goal = dict(info.get("goal") or {})
        world = World(goal=goal, places=self._places(obs, info), admissible=info.get("admissible_commands", []))
        plan = self.plan(memory, goal) if memory else None
        policy = self._policy(world, plan)
        steps: list[Step] = []
        done, reward, error = False, 0.0, None
        try:
            action = next(policy)
            while not done:
                obs, reward, done, info = env.step(action)
                steps.append(Step(action=action, observation=obs))
                world.observe(action, obs, info)
                if done:
                    break
                action = policy.send(obs)
        except StopIteration:
            pass  # the policy has nothing left to try; the episode ends short of the limit
        except Exception as err:  # an engine failure is recorded in the trajectory, not raised
            error = f"{type(err).__name__}: {err}"
        return Trajectory(
            task=Task(text=task or "unknown task", type=info.get("task_type"), keywords=goal, env="alfworld"),
            steps=steps, reward=float(reward), success=bool(world.won), agent=self.name,
            started_at=started, finished_at=utcnow(), error=error,
            metadata={"seed": self.seed, "followed": plan.followed if plan else [],
                      "game": info.get("game_path")},
        )

    def _places(self, obs: str, info: dict[str, Any]) -> list[str]:
        places = [c[6:] for c in info.get("admissible_commands", []) if c.startswith("go to ")]
        if not places:
            seen = SEE.search(obs)
            places = [" ".join(m) for m in ENTITY.findall(seen.group(1))] if seen else []
        random.Random(self.seed).shuffle(places)
        return places

    # --- reading memory ---------------------------------------------------------------------

    def plan(self, hits: list[RetrievalHit], goal: dict[str, str]) -> Plan | None:
        current = {k: goal[k] for k in ("object", "target", "tool") if k in goal}
        # Only a procedure for the same kind of task is followed (what it asks for, not what of):
        # one for another kind would do the wrong thing well. The others still give search hints.
        followable = [h for h in hits if not is_evidence(h.procedure) and kind_of(h.procedure.keywords) == kind_of(goal)]
        lines: list[str] = []
        followed: list[str] = []
        if followable:
            top = self._closest(followable, goal).procedure
            if top.builder == "trajectory" or not top.script:
                lines = self._replay_lines(top, current)
            else:
                lines = [self.abstraction.instantiate(line, current) for line in top.script]
                lines = [line for line in lines if "{" not in line]
            followed = [top.ref] if lines else []
        search: list[str] = []
        avoid: Counter = Counter()
        in_vain: Counter = Counter()
        found: Counter = Counter()
        passed: Counter = Counter()
        for hit in hits:
            kinds = self._found_at(hit.procedure)
            for kind in kinds:
                if kind not in search:
                    search.append(kind)
            found.update(kinds)
            avoid.update(hit.procedure.extra.get("searched_in_vain", {}))
            passed.update(self._searched_before(hit.procedure))
            if is_evidence(hit.procedure) and kind_of(hit.procedure.keywords) == kind_of(goal):
                in_vain.update(hit.procedure.extra.get("tried_in_vain", {}))
                in_vain.update(hit.procedure.extra.get("refused", {}))
        if not (lines or search or avoid or in_vain):
            return None
        return Plan(lines=lines, search=search, avoid=avoid, found=found, passed=passed,
                    followed=followed, in_vain=in_vain)

    def _closest(self, hits: list[RetrievalHit], goal: dict[str, str]) -> RetrievalHit:
        """The hit whose remembered task says most of what ours says (ties: retrieval order)."""
        def agreement(hit: RetrievalHit) -> int:
            kw = hit.procedure.keywords
            # What is to be done counts more than what it is done to.
            return sum(2 if k in ("action", "modifier") else 1 for k, v in goal.items() if kw.get(k) == v)
        return max(hits, key=agreement)

    def _replay_lines(self, procedure: Procedure, current: dict[str, str]) -> list[str]:
        """The remembered run's actions, concrete, with its entities swapped for ours."""
        lines = []
        for step in procedure.steps:
            if self.abstraction.is_noop(step) or self.abstraction.verb(step.action) in self.abstraction.info_verbs:
                continue
            action = step.action
            for var, value in procedure.bindings.items():
                if var in current:
                    action = re.sub(rf"\b{re.escape(value)}\b", current[var], action)
            lines.append(action)
        return lines

    def _found_at(self, procedure: Procedure) -> list[str]:
        """Kinds of place where the remembered object was taken from, then where it was seen."""
        kinds = []
        for line in procedure.script:
            m = re.match(r"take \{object\} from ([a-z]+)", line)
            if m:
                kinds.append(m.group(1))
        obj = procedure.bindings.get("object")
        location = None
        for step in procedure.steps:
            if step.action.startswith("go to "):
                location = place_type(step.action[6:])
            if obj and location and re.search(rf"\b{obj} \d+", step.observation) and location not in kinds:
                kinds.append(location)
        return kinds

    def _searched_before(self, procedure: Procedure) -> Counter:
        """Kinds of place the remembered run visited, before it took its object, without seeing it."""
        obj = procedure.bindings.get("object")
        vain: Counter = Counter()
        if not obj:
            return vain
        seen = re.compile(rf"\b{re.escape(obj)} \d+")
        location, saw = None, False
        for step in procedure.steps:
            if step.action.startswith("go to "):
                if location and not saw:
                    vain[location] += 1
                location, saw = place_type(step.action[6:]), False
            saw = saw or bool(seen.search(step.observation))
            if step.action.startswith(f"take {obj} "):
                break
        return vain

    # --- behaviours -------------------------------------------------------------------------

    def _policy(self, world: World, plan: Plan | None) -> Policy:
        if plan is not None and plan.lines:
            finished = yield from self._follow(world, plan)
            if finished or world.won:
                return True
        return (yield from self._explore(world, plan))

    def _goto(self, world: World, place: str) -> Policy:
        if world.location != place:
            obs = yield f"go to {place}"
            if NOTHING in obs.lower():
                world.visited.add(place)  # unreachable: never try it again
                return False
        if f"open {place}" in world.admissible and place not in world.visited:
            yield f"open {place}"
        world.visited.add(place)
        return True

    def _next_place(self, world: World, plan: Plan | None, first: list[str]) -> str | None:
        """Where an unplaced goal object was seen, else the unvisited place most likely to hold one.

        Each kind of place is an arm with a Beta(1 + found, 1 + in vain) chance of holding the
        object: memory's runs count where they found it and where they looked in vain, and this
        episode's visits count too. So a kind memory favours is tried first, but a dozen empty
        cabinets send the search elsewhere instead of through the thirteenth. Ties go to the kinds
        ``first`` names, then to memory's order, then to the seeded order of places."""
        for place, items in world.contents.items():
            if any(place_type(i) == world.obj and i not in world.placed for i in items) and place != world.location:
                return place
        fresh = [p for p in world.places if p not in world.visited]
        if not fresh:
            return None
        found = Counter(place_type(p) for p in world.sightings)
        vain = Counter(place_type(p) for p in world.visited if p not in world.sightings)
        if plan is not None:
            found.update(plan.found)
            vain.update(plan.avoid + plan.passed)
        order = [*first, *(plan.search if plan else [])]

        def promise(place: str) -> tuple[float, int]:
            kind = place_type(place)
            chance = (1 + found[kind]) / (2 + found[kind] + vain[kind])
            return -chance, order.index(kind) if kind in order else len(order)
        return min(fresh, key=promise)

    def _acquire(self, world: World, plan: Plan | None, first: list[str] = ()) -> Policy:
        """Find and take an instance of the goal object not already placed."""
        while not world.holds_goal_object():
            take = next((c for c in world.admissible
                         if c.startswith(f"take {world.obj} ") and c.split(" from ")[0][5:] not in world.placed), None)
            if take:
                yield take
                continue
            if world.holding:  # hands full with something else: put it down here
                drop = next((c for c in world.admissible if norm(c).startswith(f"move {place_type(world.holding)} to")), None)
                if drop is None:
                    return False
                yield drop
                continue
            place = self._next_place(world, plan, list(first))
            if place is None:
                return False
            yield from self._goto(world, place)
        return True

    def _place(self, world: World) -> Policy:
        """Put the held object at (an instance of) the target."""
        if world.target is None or world.holding is None:
            return False
        for place in [p for p in world.places if place_type(p) == world.target]:
            yield from self._goto(world, place)
            held = world.holding
            put = next((c for c in world.admissible if norm(c) == f"move {place_type(held)} to {world.target}"), None)
            if put:
                yield put
                return True
        return False

    def _do_somewhere(self, world: World, line: str, hint: str | None) -> Policy:
        """Do a remembered action where the world offers it: here, or at the kind of place it names."""
        wanted = norm(line)
        kinds = [w for w in wanted.split()[1:] if any(place_type(p) == w for p in world.places)]
        if hint:
            kinds.insert(0, hint)
        candidates = [p for p in world.places if place_type(p) in kinds] if kinds else list(world.places)
        for place in [world.location, *candidates]:
            if place is None:
                continue
            if place != world.location:
                yield from self._goto(world, place)
            command = next((c for c in world.admissible if norm(c) == wanted), None)
            if command:
                obs = yield command
                return NOTHING not in obs.lower()
        return False

    def _follow(self, world: World, plan: Plan) -> Policy:
        hint = None
        for line in plan.lines:
            if world.won:
                return True
            verb = self.abstraction.verb(line)
            if verb == "go":
                place = line[6:]
                if ENTITY.fullmatch(place) and f"go to {place}" in world.admissible:
                    yield from self._goto(world, place)
                else:
                    hint = place_type(place)
                continue
            if verb in ("open", "close"):
                if line in world.admissible:
                    yield line
                continue
            if verb == "take":
                if line in world.admissible and world.holding is None:
                    yield line
                kinds = [place_type(line.split(" from ")[-1])] if " from " in line else []
                ok = yield from self._acquire(world, plan, kinds)
            elif verb in ("put", "move"):
                ok = yield from self._place(world)
            else:
                if world.obj in line and not world.holds_goal_object():
                    if not (yield from self._acquire(world, plan)):
                        return False
                ok = yield from self._do_somewhere(world, line, hint)
            hint = None
            if not ok:
                return False
        return world.won

    def _explore(self, world: World, plan: Plan | None) -> Policy:
        wanted = 2 if world.goal.get("modifier") == "two" else 1
        fresh = True  # whether the held object may have changed since it was last at the target
        while not world.won:
            if len(world.placed) >= wanted and not world.holds_goal_object():
                # Everything is at the target, yet the task is not done: the object must be
                # changed first. Take one back.
                if not (yield from self._take_back(world)):
                    return False
                fresh = False
            if not world.holds_goal_object():
                if not (yield from self._acquire(world, plan)):
                    return False
                fresh = True
            if world.target and fresh and (yield from self._place(world)):
                continue
            if not (yield from self._tour(world, plan)):
                return False
            fresh = True
        return True

    def _take_back(self, world: World) -> Policy:
        placed = sorted(world.placed)[-1]
        place = next((p for p, items in world.contents.items() if placed in items), None)
        if place is None:
            return False
        yield from self._goto(world, place)
        take = next((c for c in world.admissible if c.startswith(f"take {placed} from")), None)
        if take is None:
            return False
        yield take
        world.placed.discard(placed)
        return world.holds_goal_object()

    def _tour(self, world: World, plan: Plan | None) -> Policy:
        """Carry the object around, trying what each place offers to do with it.

        Places of a kind not yet tried with the held object come first (places of one kind offer
        alike), then kinds memory's procedures mention, and last the kinds where failure evidence
        tried its actions in vain; those actions themselves wait for a second round. A place is
        not visited again once everything it offers for the held object has been tried."""
        mentioned = set(" ".join(plan.lines).split()) if plan else set()
        in_vain = plan.in_vain if plan else Counter()
        kinds = {place_type(p) for p in world.places}
        useless = Counter(w for action in in_vain for w in action.split() if w in kinds)
        rank = {p: i for i, p in enumerate(world.places)}

        def order(place: str) -> tuple:
            kind = place_type(place)
            tried_kind = any(place_type(q) == kind for q, held in world.offers if held == world.holding)
            return (place != world.location, tried_kind, kind not in mentioned, useless[kind], rank.get(place, -1))

        for skip in ((in_vain, Counter()) if in_vain else (Counter(),)):
            done: set[str] = set()
            while not world.won:
                left = [p for p in {world.location, *world.places} - done
                        if p is not None and self._worth_visiting(world, p, skip)]
                if not left:
                    break
                place = min(left, key=order)
                done.add(place)
                if place != world.location and not (yield from self._goto(world, place)):
                    continue
                world.offers[(place, world.holding)] = self._offered(world)
                for command in self._to_try(world, place, skip):
                    world.tried.add((place, command))
                    obs = yield command
                    if world.won:
                        return True
                    if NOTHING not in obs.lower() and world.target:
                        return True  # something changed: go and try the target again
        return world.won

    def _offered(self, world: World) -> list[str]:
        """What the current place offers to do with the held object (or with a tool)."""
        held = world.holding or ""
        return [c for c in world.admissible
                if c.split(" ", 1)[0] not in BASIC_VERBS and (held in c or c.startswith("use "))]

    def _to_try(self, world: World, place: str, in_vain: Counter) -> list[str]:
        """The place's offers not tried here yet, without those tried in vain before."""
        bindings = {k: world.goal[k] for k in ("object", "target", "tool") if k in world.goal}
        return [c for c in world.offers.get((place, world.holding), [])
                if (place, c) not in world.tried
                and not (in_vain and self.abstraction.generalise(c, bindings) in in_vain)]

    def _worth_visiting(self, world: World, place: str, in_vain: Counter) -> bool:
        """Unknown places are; a known one only while it offers something left to try."""
        if (place, world.holding) not in world.offers:
            return True
        return bool(self._to_try(world, place, in_vain))
