"""ALFWorld-format games made from the files shipped in the ``alfworld`` package.

What the package ships, and what each piece is used for:

- ``gen/layouts/FloorPlanN-objects.json``: the object and receptacle types of ALFRED scene N;
- ``gen/layouts/FloorPlanN-openable.json``: the scene's receptacles with their ids and the pose from
  which the agent reaches them (-> receptacle locations);
- ``gen/layouts/FloorPlanN-layout.npy``: the reachable floor points (-> start pose, and places for
  receptacles that the openable file does not list, like stove burners);
- ``gen/constants.py``: which object types each receptacle type accepts, which objects can be
  heated, cooled, cleaned or toggled, the train/test floor plans, which rooms suit which task;
- ``gen/goal_library.py``: the PDDL goal and the two task-text templates of each task type;
- ``data/alfred.pddl`` and ``data/alfred.twl2``: the domain and grammar written into every game.

A game is a folder ``<split>/<task_type>-<Object>-None-<Target>-<scene>/<trial>/`` with
``initial_state.pddl``, ``traj_data.json`` and ``game.tw-pddl``, like the official data. Every game
is played by the package's expert before it is kept, and everything is drawn from a random
generator seeded by (split, seed, index), so the same arguments give the same games.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from memp.envs.alfworld.errors import AlfworldNotInstalledError, GenerationError, UnknownSplitError
from memp.envs.alfworld.goals import TASK_TYPES

GENERATOR_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "seen", "unseen")

# Static receptacles a desk lamp stands on (lamps are not pickupable, so ALFRED's receptacle table
# does not list them).
_LAMP_HOLDERS = ("Desk", "SideTable", "Dresser", "Shelf", "CoffeeTable", "DiningTable", "TVStand")
# Receptacle types with several instances in a kitchen when the openable file has none of them.
_SYNTH_COUNTS = {"StoveBurner": 4, "Cabinet": 3, "Drawer": 3, "Shelf": 2}
# How many objects a receptacle holds at the start: appliances hold one thing at most, as in the
# official games, where microwaves and toasters are nearly always empty.
_CAPACITY = {"Microwave": 1, "Toaster": 1, "CoffeeMachine": 1, "StoveBurner": 1, "GarbageCan": 2,
             "SinkBasin": 2, "BathtubBasin": 2}
_DEFAULT_CAPACITY = 5
_MAX_INSTANCES = 3  # ALFRED's MAX_NUM_OF_OBJ_INSTANCES
# Types found in the floor-plan files that ALFRED's constants do not know; skipped.
_IGNORED_TYPES = {"Faucet", "Lamp", "ShowerCurtain", "ShowerHead"}
# The appliance of each state-change task: the parent receptacle must be something else.
_APPLIANCE = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
# Basins are where things get washed, never where a task puts them (as in ALFRED's data), and
# nothing is put away clean in a microwave.
_NOT_A_TARGET = {"SinkBasin", "BathtubBasin"}
_NOT_A_TARGET_FOR = {"pick_clean_then_place_in_recep": {"Microwave"}}
_ABILITY = {
    "pick_clean_then_place_in_recep": "Cleanable",
    "pick_heat_then_place_in_recep": "Heatable",
    "pick_cool_then_place_in_recep": "Coolable",
}


# --- the package's data --------------------------------------------------------------------


@dataclass(frozen=True)
class _Alfred:
    constants: Any
    goals: dict[str, Any]
    layouts: Path
    domain: str
    grammar: str


@lru_cache(maxsize=1)
def _alfred() -> _Alfred:
    from memp.envs.alfworld.env import import_alfworld

    import_alfworld()
    try:
        import alfworld.gen.constants as constants
        import alfworld.gen.goal_library as goal_library
    except ImportError as err:  # pragma: no cover - depends on the install
        raise AlfworldNotInstalledError(
            f"the game generator needs the alfworld package ({err}); "
            "install memp with the extra: pip install 'memp[alfworld]'"
        ) from None
    root = Path(constants.__file__).resolve().parent.parent
    return _Alfred(
        constants=constants,
        goals=goal_library.gdict,
        layouts=root / "gen" / "layouts",
        domain=(root / "data" / "alfred.pddl").read_text(encoding="utf-8"),
        grammar=(root / "data" / "alfred.twl2").read_text(encoding="utf-8"),
    )


def split_scenes(split: str) -> list[int]:
    """Floor plans of a split: train and seen share ALFRED's train scenes, unseen uses the rest."""
    if split not in SPLITS:
        raise UnknownSplitError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    c = _alfred().constants
    numbers = c.TRAIN_SCENE_NUMBERS if split in ("train", "seen") else c.TEST_SCENE_NUMBERS
    return sorted(n for n in numbers if (_alfred().layouts / f"FloorPlan{n}-objects.json").exists())


def _room(scene: int) -> str:
    for room, numbers in _alfred().constants.SCENE_TYPE.items():
        if scene in numbers:
            return room
    raise GenerationError(f"floor plan {scene} belongs to no known room type")


# --- a scene's contents ----------------------------------------------------------------------


@dataclass
class _Receptacle:
    id: str
    type: str
    loc: tuple[int, int, int, int]


@dataclass
class _Scene:
    number: int
    types: set[str]
    receptacles: list[_Receptacle]
    points: list[tuple[float, float]]

    @property
    def receptacle_types(self) -> set[str]:
        return {r.type for r in self.receptacles}


def _fmt(v: float) -> str:
    return f"{v:+06.2f}"


def _loc_of(x: float, z: float, rotation: float, horizon: float) -> tuple[int, int, int, int]:
    step = _alfred().constants.AGENT_STEP_SIZE
    return (round(x / step), round(z / step), round(rotation / 90) % 4, int(horizon))


def _static_receptacle_types() -> set[str]:
    c = _alfred().constants
    return set(c.VAL_RECEPTACLE_OBJECTS) - set(c.MOVABLE_RECEPTACLES)


def _load_scene(number: int, rng: random.Random) -> _Scene:
    import numpy as np

    layouts = _alfred().layouts
    try:
        types = set(json.loads((layouts / f"FloorPlan{number}-objects.json").read_text()))
        openable = json.loads((layouts / f"FloorPlan{number}-openable.json").read_text())
        points = [(float(x), float(z)) for x, z in np.load(layouts / f"FloorPlan{number}-layout.npy")]
    except (OSError, ValueError) as err:
        raise GenerationError(f"floor plan {number} cannot be read from the alfworld package: {err}")
    static = _static_receptacle_types()
    receptacles: list[_Receptacle] = []
    for rid, (x, z, rotation, horizon) in sorted(openable.items()):
        parts = rid.split("|")
        rtype = parts[4] if len(parts) > 4 else parts[0]
        if rtype not in static:
            continue
        if len(parts) > 4:  # basins: name the fixture after the basin ("Sink|...|SinkBasin")
            parts[0] = rtype.replace("Basin", "")
            rid = "|".join(parts)
        receptacles.append(_Receptacle(rid, rtype, _loc_of(x, z, rotation, horizon)))
    # Receptacle types the scene has but the openable file does not place (burners, toasters,
    # coffee machines, ...) stand at reachable points drawn from the floor layout.
    present = {r.type for r in receptacles}
    for rtype in sorted((types & static) - present):
        for _ in range(_SYNTH_COUNTS.get(rtype, 1)):
            x, z = rng.choice(points)
            y = rng.uniform(0.0, 1.6)
            rid = f"{rtype}|{_fmt(x)}|{_fmt(y)}|{_fmt(z)}"
            if rtype.endswith("Basin"):
                rid = f"{rtype.replace('Basin', '')}|{_fmt(x)}|{_fmt(y)}|{_fmt(z)}|{rtype}"
            receptacles.append(_Receptacle(rid, rtype, _loc_of(x, z, rng.randrange(4) * 90, 30)))
    types = {t for t in types if t not in _IGNORED_TYPES}
    return _Scene(number, types, receptacles, points)


# --- tasks -----------------------------------------------------------------------------------


@dataclass
class _TaskSpec:
    task_type: str
    object: str
    parent: str = ""
    toggle: str = ""


def _pickupable(scene: _Scene) -> set[str]:
    c = _alfred().constants
    held = set().union(*c.VAL_RECEPTACLE_OBJECTS.values())
    return {t for t in scene.types if t in held and t in c.OBJECTS_SET}


def _holders(scene: _Scene, otype: str) -> list[_Receptacle]:
    accepts = _alfred().constants.VAL_RECEPTACLE_OBJECTS
    return [r for r in scene.receptacles if otype in accepts.get(r.type, ())]


def _candidate_tasks(scene: _Scene, task_type: str) -> list[_TaskSpec]:
    """Every (object, target) this scene allows for the task type, by ALFRED's rules."""
    c = _alfred().constants
    if _room(scene.number) not in c.GOALS_VALID[task_type]:
        return []
    accepts = c.VAL_RECEPTACLE_OBJECTS
    objects = sorted(_pickupable(scene))
    rtypes = sorted(scene.receptacle_types)
    out: list[_TaskSpec] = []
    if task_type == "look_at_obj_in_light":
        if "DeskLamp" not in scene.types or not any(t in rtypes for t in _LAMP_HOLDERS):
            return []
        return [_TaskSpec(task_type, o, toggle="DeskLamp") for o in objects if _holders(scene, o)]
    appliance = _APPLIANCE.get(task_type)
    if appliance and appliance not in rtypes:
        return []
    for o in objects:
        if task_type in _ABILITY and o not in c.VAL_ACTION_OBJECTS[_ABILITY[task_type]]:
            continue
        for r in rtypes:
            if o not in accepts.get(r, ()) or r == appliance or r in _NOT_A_TARGET:
                continue
            if r in _NOT_A_TARGET_FOR.get(task_type, ()):
                continue
            # The object must be able to start somewhere other than the target.
            if any(h.type != r for h in _holders(scene, o)):
                out.append(_TaskSpec(task_type, o, parent=r))
    return out


def _task_text(spec: _TaskSpec, rng: random.Random) -> str:
    template = rng.choice(_alfred().goals[spec.task_type]["templates"])
    return template.format(
        obj=spec.object.lower(), recep=spec.parent.lower(), toggle=spec.toggle.lower(), mrecep=""
    )


# --- placing objects and writing PDDL --------------------------------------------------------


def _mangle(name: str) -> str:
    """PDDL-safe names, spelled as ALFWorld spells them (so its demangler reads them back)."""
    out = []
    table = {"-": "_minus_", "|": "_bar_", "+": "_plus_", ".": "_dot_", ",": "_comma_"}
    for ch in name:
        out.append(table.get(ch, ch))
    return "".join(out)


def _loc_name(loc: tuple[int, int, int, int]) -> str:
    return _mangle("loc|%d|%d|%d|%d" % loc)


@dataclass
class _Placement:
    id: str
    type: str
    receptacle: _Receptacle | None
    loc: tuple[int, int, int, int]


@dataclass
class _Layout:
    scene: _Scene
    spec: _TaskSpec
    objects: list[_Placement] = field(default_factory=list)
    start: tuple[int, int, int, int] = (0, 0, 0, 30)


def _place_objects(scene: _Scene, spec: _TaskSpec, rng: random.Random) -> _Layout:
    c = _alfred().constants
    layout = _Layout(scene, spec)
    load: dict[str, int] = {}
    used_ids: set[str] = set()

    def new_id(otype: str, near: _Receptacle | None) -> str:
        while True:
            if near is not None:
                x, z = near.loc[0] * 0.25, near.loc[1] * 0.25
            else:
                x, z = rng.choice(scene.points)
            dx, y, dz = rng.uniform(-0.6, 0.6), rng.uniform(0, 1.9), rng.uniform(-0.6, 0.6)
            oid = f"{otype}|{_fmt(x + dx)}|{_fmt(y)}|{_fmt(z + dz)}"
            if oid not in used_ids:
                used_ids.add(oid)
                return oid

    def place(otype: str, holders: Sequence[_Receptacle]) -> bool:
        free = [r for r in holders if load.get(r.id, 0) < _CAPACITY.get(r.type, _DEFAULT_CAPACITY)]
        if not free:
            return False
        r = rng.choice(free)
        load[r.id] = load.get(r.id, 0) + 1
        layout.objects.append(_Placement(new_id(otype, r), otype, r, r.loc))
        return True

    # The task's own objects first, so that they always find room.
    # Not in the target (the goal would hold at the start) nor in the task's appliance (a hot task
    # would start with the object in the microwave, a cool one with it already cold).
    appliance = _APPLIANCE.get(spec.task_type)
    target_holders = [h for h in _holders(scene, spec.object) if h.type not in (spec.parent, appliance)]
    least = 2 if spec.task_type == "pick_two_obj_and_place" else 1
    n_target = rng.randint(least, _MAX_INSTANCES)
    placed = sum(place(spec.object, target_holders) for _ in range(n_target))
    if placed == 0 or (spec.task_type == "pick_two_obj_and_place" and placed < 2):
        raise GenerationError("no room for the task's object")
    if spec.toggle:
        holders = [r for r in scene.receptacles if r.type in _LAMP_HOLDERS]
        for _ in range(rng.randint(1, 2)):
            place(spec.toggle, holders)
    for otype in sorted(_pickupable(scene) - {spec.object}):
        holders = _holders(scene, otype)
        if spec.object == otype or not holders:
            continue
        for _ in range(rng.randint(1, _MAX_INSTANCES)):
            place(otype, holders)
    # Scenery (windows, chairs, switches, floor lamps...): present, but in no receptacle.
    scenery = sorted(scene.types - _pickupable(scene) - _static_receptacle_types() - {spec.toggle})
    for otype in scenery:
        if otype not in c.OBJECTS_SET or otype in c.RECEPTACLES:
            continue
        x, z = rng.choice(scene.points)
        loc = _loc_of(x, z, rng.randrange(4) * 90, 30)
        layout.objects.append(_Placement(new_id(otype, None), otype, None, loc))
    x, z = rng.choice(scene.points)
    layout.start = _loc_of(x, z, rng.randrange(4) * 90, 30)
    return layout


def _problem(layout: _Layout, trial: str) -> str:
    c = _alfred().constants
    static = _static_receptacle_types()
    otypes = sorted(c.OBJECTS_SET - static)
    rtypes = sorted(static)
    spec = layout.spec
    recs = layout.scene.receptacles
    locations = sorted({r.loc for r in recs} | {o.loc for o in layout.objects} | {layout.start})
    scene_otypes = sorted({o.type for o in layout.objects})

    objects = ["agent1 - agent"]
    objects += [f"{t}Type - otype" for t in otypes]
    objects += [f"{t}Type - rtype" for t in rtypes]
    objects += [f"{_mangle(o.id)} - object" for o in layout.objects]
    objects += [f"{_mangle(r.id)} - receptacle" for r in recs]
    objects += [f"{_loc_name(loc)} - location" for loc in locations]

    init: list[str] = []
    init += [f"(receptacleType {_mangle(r.id)} {r.type}Type)" for r in recs]
    init += [f"(objectType {_mangle(o.id)} {o.type}Type)" for o in layout.objects]
    for rtype in sorted(layout.scene.receptacle_types):
        accepted = c.VAL_RECEPTACLE_OBJECTS.get(rtype, set())
        init += [f"(canContain {rtype}Type {t}Type)" for t in scene_otypes if t in accepted]
    held = set().union(*c.VAL_RECEPTACLE_OBJECTS.values())
    abilities = {
        "cleanable": "Cleanable",
        "heatable": "Heatable",
        "coolable": "Coolable",
        "sliceable": "Sliceable",
    }
    for o in layout.objects:
        name = _mangle(o.id)
        if o.type in held:
            init.append(f"(pickupable {name})")
        if o.type in c.MOVABLE_RECEPTACLES_SET:
            init.append(f"(isReceptacleObject {name})")
        for predicate, group in abilities.items():
            if o.type in c.VAL_ACTION_OBJECTS[group]:
                init.append(f"({predicate} {name})")
        if o.type in c.VAL_ACTION_OBJECTS["Toggleable"] and o.receptacle is not None:
            init.append(f"(toggleable {name})")
        if o.receptacle is not None:
            init.append(f"(inReceptacle {name} {_mangle(o.receptacle.id)})")
            # ALFRED counts what starts in the fridge as cold (its generator does the same).
            if o.receptacle.type == "Fridge" and o.type == spec.object:
                init.append(f"(isCool {name})")
        init.append(f"(objectAtLocation {name} {_loc_name(o.loc)})")
    init += [f"(openable {_mangle(r.id)})" for r in recs if r.type in c.OPENABLE_CLASS_SET]
    init += [f"(receptacleAtLocation {_mangle(r.id)} {_loc_name(r.loc)})" for r in recs]
    init.append(f"(atLocation agent1 {_loc_name(layout.start)})")

    goal = _alfred().goals[spec.task_type]["pddl"].format(
        obj=spec.object, recep=spec.parent, toggle=spec.toggle, mrecep=""
    )
    goal = goal.replace("#", "-")
    sep = "\n        "
    return (
        f"\n(define (problem plan_{trial})\n(:domain alfred)\n(:objects\n"
        f"        {sep.join(objects)}\n        )\n"
        f"    (:init\n        {sep.join(init)}\n        )\n"
        f"{goal}\n"
    )


# --- the generator ---------------------------------------------------------------------------


@dataclass
class GameDraft:
    """A game before it is checked: what to write, and where."""

    folder: str
    trial: str
    task_type: str
    task_text: str
    pddl_params: dict[str, Any]
    scene: int
    problem: str
    rng_seed: str


def draft_game(
    split: str, seed: int, index: int, task_type: str | None = None, attempt: int = 0
) -> GameDraft:
    """Draw one game (unchecked). The draw depends only on its arguments."""
    scenes = split_scenes(split)
    rng_seed = f"memp-alfworld:{GENERATOR_VERSION}:{split}:{seed}:{index}:{attempt}"
    rng = random.Random(rng_seed)
    task_type = task_type or TASK_TYPES[index % len(TASK_TYPES)]
    order = list(scenes)
    rng.shuffle(order)
    for number in order:
        scene = _load_scene(number, rng)
        tasks = _candidate_tasks(scene, task_type)
        if not tasks:
            continue
        spec = rng.choice(tasks)
        try:
            layout = _place_objects(scene, spec, rng)
        except GenerationError:
            continue
        trial = trial_name(split, seed, index, attempt)
        target = spec.toggle if task_type == "look_at_obj_in_light" else spec.parent
        return GameDraft(
            folder=f"{task_type}-{spec.object}-None-{target}-{number}",
            trial=trial,
            task_type=task_type,
            task_text=_task_text(spec, rng),
            pddl_params={
                "mrecep_target": "",
                "object_sliced": False,
                "object_target": spec.object,
                "parent_target": spec.parent,
                "toggle_target": spec.toggle,
            },
            scene=number,
            problem=_problem(layout, trial),
            rng_seed=rng_seed,
        )
    raise GenerationError(f"no floor plan of split {split!r} allows a {task_type} task")


def write_game(draft: GameDraft, root: Path, walkthrough: list[str] | None = None) -> Path:
    """Write the three files of a game under ``root``; returns the game folder."""
    folder = root / draft.folder / draft.trial
    folder.mkdir(parents=True, exist_ok=True)
    grammar = _alfred().grammar.replace("UNKNOWN GOAL", draft.task_text)
    (folder / "initial_state.pddl").write_text(draft.problem, encoding="utf-8")
    traj = {
        "task_id": draft.trial,
        "task_type": draft.task_type,
        "pddl_params": draft.pddl_params,
        "scene": {"floor_plan": f"FloorPlan{draft.scene}", "scene_num": draft.scene},
        # No people wrote these; the templated text stands in for ALFRED's annotation.
        "turk_annotations": {
            "anns": [{"task_desc": draft.task_text.capitalize() + ".", "high_descs": [], "votes": []}]
        },
        "memp": {"generator_version": GENERATOR_VERSION, "rng_seed": draft.rng_seed},
    }
    (folder / "traj_data.json").write_text(json.dumps(traj, indent=1), encoding="utf-8")
    game = {
        "pddl_domain": _alfred().domain,
        "grammar": grammar,
        "pddl_problem": draft.problem,
        "solvable": walkthrough is not None,
        "walkthrough": walkthrough,
    }
    (folder / "game.tw-pddl").write_text(json.dumps(game), encoding="utf-8")
    return folder


def trial_name(split: str, seed: int, index: int, attempt: int = 0) -> str:
    """A generated game's trial folder: its split, seed and draw index (and the retry, if any)."""
    return f"trial_memp_{split}_s{seed}_{index:05d}" + (f"_{attempt}" if attempt else "")


_TRIAL = re.compile(r"trial_memp_.+_s\d+_(\d{5})(?:_\d+)?")


def draw_index(game: str | Path) -> int | None:
    """The draw index in a generated game's trial folder (``trial_name``); None for other games."""
    found = _TRIAL.fullmatch(Path(game).name)
    return int(found.group(1)) if found else None
