"""The LLM-free ALFWorld agent: observation parsing, reading memory, and real engine episodes."""

from __future__ import annotations


import pytest

from memp.types import Procedure, RetrievalHit, Step

pytest.importorskip("alfworld", reason="needs the ALFWorld engine: pip install -e '.[alfworld]'")

from memp.agents.offline_alfworld import OfflineAlfworldAgent, World, norm, place_type  # noqa: E402

from tests.conftest import SHARED  # noqa: E402

OFFICIAL = SHARED / "alfworld" / "json_2.1.1"
needs_official = pytest.mark.skipif(not OFFICIAL.is_dir(), reason="needs ../shared/alfworld (official ALFWorld games)")


def test_world_reads_places_objects_and_hands():
    w = World(goal={"object": "apple", "target": "fridge"}, places=["countertop 1", "fridge 1"], admissible=[])
    w.observe("go to countertop 1", "You arrive at loc 3. On the countertop 1, you see a apple 1, and a mug 2.",
              {"admissible_commands": ["take apple 1 from countertop 1"]})
    assert w.location == "countertop 1" and w.contents["countertop 1"] == {"apple 1", "mug 2"}
    w.observe("take apple 1 from countertop 1", "You pick up the apple 1 from the countertop 1.", {})
    assert w.holding == "apple 1" and "apple 1" not in w.contents["countertop 1"]
    w.observe("go to fridge 1", "Nothing happens.", {})
    assert w.location == "countertop 1"  # a refused move goes nowhere
    w.observe("move apple 1 to fridge 1", "You move the apple 1 to the fridge 1.", {"won": True})
    assert w.holding is None and w.placed == {"apple 1"} and w.won


def test_both_placing_grammars_match_a_remembered_step():
    assert norm("put apple 1 in/on fridge 1") == norm("move apple 2 to fridge 1") == "move apple to fridge"


def _hit(builder: str, key: str, **fields) -> RetrievalHit:
    return RetrievalHit(procedure=Procedure(key=key, builder=builder, **fields), score=0.9)


def test_plan_binds_script_and_prefers_closest_task():
    clean = _hit("script", "put a clean mug in cabinet",
                 keywords={"action": "clean", "modifier": "clean", "object": "mug", "target": "cabinet"},
                 script=["take {object} from countertop", "go to sinkbasin", "clean {object} with sinkbasin",
                         "put {object} in/on {target}"], bindings={"object": "mug", "target": "cabinet"},
                 extra={"searched_in_vain": {"drawer": 2}})
    hot = _hit("script", "put a hot apple in fridge",
               keywords={"action": "heat", "modifier": "hot", "object": "apple", "target": "fridge"},
               script=["take {object} from fridge", "heat {object} with microwave"],
               bindings={"object": "apple", "target": "fridge"})
    goal = {"action": "clean", "modifier": "clean", "object": "apple", "target": "fridge"}
    plan = OfflineAlfworldAgent().plan([hot, clean], goal)
    # The clean procedure says what our task says, though the hot one shares the object.
    assert plan.lines == ["take apple from countertop", "go to sinkbasin", "clean apple with sinkbasin",
                          "put apple in/on fridge"]
    assert plan.search == ["fridge", "countertop"] and plan.avoid == {"drawer": 2}


def test_trajectory_memory_is_replayed_concretely():
    hit = _hit("trajectory", "put a mug in cabinet", bindings={"object": "mug", "target": "cabinet"},
               steps=[Step(action="go to shelf 1", observation="On the shelf 1, you see a mug 1."),
                      Step(action="look", observation="You are facing the shelf 1."),
                      Step(action="take mug 1 from shelf 1", observation="You pick up the mug 1 from the shelf 1."),
                      Step(action="go to cabinet 2", observation="Nothing happens.")])
    plan = OfflineAlfworldAgent().plan([hit], {"object": "cup", "target": "drawer"})
    assert plan.lines == ["go to shelf 1", "take cup 1 from shelf 1"]
    assert plan.search == ["shelf"]


def test_remembered_runs_count_where_the_object_was_found_and_where_it_was_not():
    hit = _hit("proceduralization", "put a mug in cabinet", bindings={"object": "mug", "target": "cabinet"},
               steps=[Step(action="go to drawer 1", observation="On the drawer 1, you see a pen 1."),
                      Step(action="go to drawer 2", observation="The drawer 2 is closed."),
                      Step(action="open drawer 2", observation="You open the drawer 2. In it, you see nothing."),
                      Step(action="go to shelf 1", observation="On the shelf 1, you see a mug 1."),
                      Step(action="take mug 1 from shelf 1", observation="You pick up the mug 1 from the shelf 1."),
                      Step(action="go to sidetable 1", observation="On the sidetable 1, you see nothing.")])
    plan = OfflineAlfworldAgent().plan([hit], {"object": "mug", "target": "cabinet"})
    # Visits after the object was taken are not part of the search.
    assert plan.found == {"shelf": 1} and plan.passed == {"drawer": 2}


def test_search_leaves_a_favoured_kind_once_enough_of_its_places_were_empty():
    places = [f"cabinet {i}" for i in range(1, 9)] + ["diningtable 1", "drawer 1"]
    world = World(goal={"object": "bowl", "target": "shelf"}, places=places, admissible=[])
    agent = OfflineAlfworldAgent()
    memory_says = agent.plan([_hit("script", "put a bowl in shelf", bindings={"object": "bowl"},
                                   script=["take {object} from cabinet", "put {object} in/on {target}"])],
                             {"object": "bowl", "target": "shelf"})
    order = []
    for _ in range(4):
        place = agent._next_place(world, memory_says, [])
        order.append(place)
        world.observe(f"go to {place}", f"On the {place}, you see a pen 1.", {})
    # Memory found bowls in a cabinet: cabinets first, Beta(2, 1); two empty ones bring the kind
    # to 2/5, below an untried kind's 1/2, so the search moves on rather than opening all eight.
    assert order[:2] == ["cabinet 1", "cabinet 2"] and place_type(order[2]) != "cabinet"
    world.observe("go to diningtable 1", "On the diningtable 1, you see a bowl 2.", {})
    world.observe("go to drawer 1", "On the drawer 1, you see nothing.", {})
    assert agent._next_place(world, memory_says, []) == "diningtable 1"  # seen there: go back for it


@needs_official
@pytest.mark.slow
def test_memory_wins_a_game_the_agent_loses_without_it(tmp_path, hashing):
    """Gold runs of the expert on official train games (cleaning lettuce) teach the agent where
    lettuce is kept and that it must be cleaned before it is placed."""
    from memp.envs.alfworld.env import AlfworldEnv
    from memp.experiments.alfworld import gold_trajectories, task_of_game
    from memp.memory import Memory
    from memp.store import SQLiteStore

    train = sorted((OFFICIAL / "train").glob("pick_clean_then_place_in_recep-Lettuce-*/*/"))
    gold = gold_trajectories(train, tmp_path / "gold.jsonl", workers=1)
    assert gold and all(t.success for t in gold)
    mem = Memory(SQLiteStore(tmp_path / "m.db"), embedder=hashing, build="proceduralization", k=3)
    mem.add_many(gold)
    game = next((OFFICIAL / "valid_seen").glob("pick_clean_then_place_in_recep-Lettuce-None-CounterTop-16/*/"))
    env = AlfworldEnv(game)
    without = OfflineAlfworldAgent(seed=0).run(env)
    env.load(game)
    hits = mem.retrieve(task_of_game(game))
    with_memory = OfflineAlfworldAgent(seed=0).run(env, hits)
    assert not without.success and len(without.steps) == 30
    assert with_memory.success and len(with_memory.steps) < 20
    assert with_memory.metadata["followed"] and with_memory.steps[-1].action.startswith(("put", "move"))


@needs_official
def test_loading_a_game_leaves_sys_argv_alone(monkeypatch):
    import sys

    from memp.envs.alfworld.env import AlfworldEnv

    monkeypatch.setattr(sys, "argv", ["memp", "out.jsonl"])
    AlfworldEnv(next((OFFICIAL / "valid_seen").glob("*/*/")))
    assert sys.argv == ["memp", "out.jsonl"]


class Kitchen:
    """A tiny stand-in for the engine: heat the apple and put it on the countertop.

    The sink offers to clean what is held, the microwave to heat it; nothing else matters."""

    PLACES = ["cabinet 1", "sinkbasin 1", "drawer 1", "microwave 1", "countertop 1", "shelf 1"]
    TASK = "heat some apple and put it in countertop"

    def __init__(self, max_steps: int = 30) -> None:
        self.max_steps = max_steps

    def reset(self):
        self.at, self.holding, self.hot, self.steps, self.won = None, None, False, 0, False
        self.apple_at = "shelf 1"
        return f"You are in the middle of a room. Your task is to: {self.TASK}.", self._info()

    def _info(self):
        commands = [f"go to {p}" for p in self.PLACES]
        if self.at == self.apple_at and self.holding is None:
            commands.append(f"take apple 1 from {self.at}")
        if self.holding and self.at:
            commands.append(f"move apple 1 to {self.at}")
            commands += {"sinkbasin 1": ["clean apple 1 with sinkbasin 1"],
                         "microwave 1": ["heat apple 1 with microwave 1"]}.get(self.at, [])
        return {"admissible_commands": commands, "won": self.won, "task": self.TASK,
                "goal": {"action": "heat", "modifier": "hot", "object": "apple", "target": "countertop"}}

    def step(self, action):
        self.steps += 1
        obs = "Nothing happens."
        if action.startswith("go to "):
            self.at = action[6:]
            seen = "a apple 1" if self.apple_at == self.at else "nothing"
            obs = f"You arrive at {self.at}. On the {self.at}, you see {seen}."
        elif action.startswith("take apple 1") and self.at == self.apple_at:
            self.holding, self.apple_at = "apple 1", None
            obs = f"You pick up the apple 1 from the {self.at}."
        elif action.startswith("move apple 1") and self.holding:
            self.holding, self.apple_at = None, self.at
            self.won = self.hot and self.at == "countertop 1"
            obs = f"You move the apple 1 to the {self.at}."
        elif action.startswith(("heat", "clean")) and action in self._info()["admissible_commands"]:
            self.hot = self.hot or action.startswith("heat")
            obs = f"You {action.split()[0]} the apple 1 using the {self.at}."
        done = self.won or self.steps >= self.max_steps
        return obs, float(self.won), done, self._info()


def _evidence(tried: dict[str, int], action: str = "heat") -> RetrievalHit:
    modifier = {"heat": "hot", "cool": "cool"}[action]
    return _hit("evidence", f"{action} some mug and put it in cabinet",
                keywords={"action": action, "modifier": modifier, "object": "mug", "target": "cabinet"},
                extra={"failed_runs": 2, "tried_in_vain": tried, "refused": {}, "searched_in_vain": {}})


def test_evidence_of_the_same_kind_steers_exploration_away_from_what_was_tried_in_vain():
    """Without memory the agent cleans the apple before it finds the microwave; evidence that
    cleaning was tried in vain on heating tasks makes it heat first and win sooner."""
    agent = OfflineAlfworldAgent(seed=5)
    alone = agent.run(Kitchen())
    assert alone.success and "clean apple 1 with sinkbasin 1" in [s.action for s in alone.steps]
    taught = agent.run(Kitchen(), [_evidence({"clean {object} with sinkbasin": 2})])
    assert taught.success and taught.metadata["followed"] == []
    assert "clean apple 1 with sinkbasin 1" not in [s.action for s in taught.steps]
    assert len(taught.steps) < len(alone.steps)
    # Evidence from another kind of task (cooling) says nothing about heating.
    other = agent.run(Kitchen(), [_evidence({"clean {object} with sinkbasin": 2}, action="cool")])
    assert [s.action for s in other.steps] == [s.action for s in alone.steps]


def test_what_was_tried_in_vain_is_still_tried_when_nothing_else_is_left():
    tried = {"clean {object} with sinkbasin": 3, "heat {object} with microwave": 1}
    run = OfflineAlfworldAgent(seed=5).run(Kitchen(), [_evidence(tried)])
    assert run.success and "heat apple 1 with microwave 1" in [s.action for s in run.steps]


def test_plan_keeps_evidence_apart_from_what_it_follows():
    ev = _evidence({"clean {object} with sinkbasin": 2})
    script = _hit("script", "heat some egg and put it in countertop",
                  keywords={"action": "heat", "modifier": "hot", "object": "egg", "target": "countertop"},
                  script=["take {object} from fridge", "heat {object} with microwave", "move {object} to {target}"],
                  bindings={"object": "egg", "target": "countertop"})
    goal = {"action": "heat", "modifier": "hot", "object": "apple", "target": "countertop"}
    plan = OfflineAlfworldAgent().plan([ev, script], goal)
    assert plan.followed == [script.procedure.ref] and plan.lines[1] == "heat apple with microwave"
    assert plan.in_vain == {"clean {object} with sinkbasin": 2}
    only_evidence = OfflineAlfworldAgent().plan([ev], goal)
    assert only_evidence.lines == [] and only_evidence.followed == [] and only_evidence.in_vain


def test_tour_tries_each_kind_of_place_once_before_a_second_of_a_kind():
    from collections import Counter

    from memp.agents.offline_alfworld import Plan

    offers = {"fridge 1": ["cool apple 1 with fridge 1"], "microwave 1": ["heat apple 1 with microwave 1"]}
    places = ["cabinet 1", "cabinet 2", "cabinet 3", "microwave 1", "fridge 1"]
    world = World(goal={"object": "apple", "target": "countertop"}, places=places, admissible=[],
                  location="cabinet 1", holding="apple 1")
    # Failure evidence of this kind of task heated in vain: the microwave waits for last.
    plan = Plan(lines=[], search=[], in_vain=Counter({"heat {object} with microwave": 1}))
    tour = OfflineAlfworldAgent()._tour(world, plan)
    actions = []
    obs = None
    try:
        while True:
            action = tour.send(obs) if actions else next(tour)
            actions.append(action)
            place = action[6:] if action.startswith("go to ") else world.location
            obs = "You arrive." if action.startswith("go to ") else "You cool the apple 1 using the fridge 1."
            world.observe(action, obs, {"admissible_commands": [f"go to {p}" for p in places] + offers.get(place, [])})
    except StopIteration as stop:
        assert stop.value is True
    # Not cabinet 2 after cabinet 1 (a cabinet offered nothing), not the microwave first.
    assert actions == ["go to fridge 1", "cool apple 1 with fridge 1"]
