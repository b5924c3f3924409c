import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memp import InvalidTrajectoryError
from memp.types import MAX_TEXT_CHARS, Procedure, Step, Task, Trajectory, trajectory_from_json


def test_success_defaults_to_full_reward():
    task = Task(text="do it")
    assert Trajectory(task=task, reward=1.0).success is True
    assert Trajectory(task=task, reward=0.9).success is False
    assert Trajectory(task=task, reward=0.5, success=True).success is True


@pytest.mark.parametrize("raw, fragment", [
    ('{"task": {"text": "x"}, "steps": [{"action": "  "}]}', "action is empty"),
    ('{"task": {"text": "x"}, "reward": 1.5}', "reward"),
    ('{"task": {"text": "x"}, "reward": -0.1}', "reward"),
    ('{"task": {"text": ""}}', "task text is empty"),
    ('{"steps": []}', "task"),
    ('{"task": {"text": "x"}, "steps": "go"}', "steps"),
    ('{"task": {"text": "x"}, "bogus": 1}', "bogus"),
    ('[1, 2]', "must be a JSON object"),
    ('{"task": ', "not valid JSON"),
])
def test_bad_trajectories_name_the_problem(raw, fragment):
    with pytest.raises(InvalidTrajectoryError, match=fragment):
        trajectory_from_json(raw)


def test_non_utf8_bytes_are_rejected_with_offset():
    raw = b'{"task": {"text": "caf\xe9"}}'
    with pytest.raises(InvalidTrajectoryError, match="not UTF-8.*offset 22"):
        trajectory_from_json(raw)


def test_huge_observation_is_rejected():
    obs = "x" * (MAX_TEXT_CHARS + 1)
    raw = json.dumps({"task": {"text": "t"}, "steps": [{"action": "look", "observation": obs}]})
    assert len(raw) > 1_000_000
    with pytest.raises(InvalidTrajectoryError, match="more than the"):
        trajectory_from_json(raw)


texts = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())


@settings(max_examples=60, deadline=None)
@given(task=texts, actions=st.lists(texts, max_size=5), obs=st.lists(st.text(max_size=30), max_size=5),
       reward=st.floats(0, 1))
def test_trajectory_json_round_trip(task, actions, obs, reward):
    steps = [Step(action=a, observation=o) for a, o in zip(actions, obs)]
    t = Trajectory(task=Task(text=task, keywords={"object": "x"}), steps=steps, reward=reward)
    assert trajectory_from_json(t.model_dump_json()) == t


def test_procedure_round_trip_and_render_by_builder(apple_run):
    p = Procedure(key="put a clean apple in fridge.", script=["take {object}"], steps=apple_run.steps[:2],
                  builder="trajectory", notes=["avoid the drawer"])
    assert Procedure.model_validate_json(p.model_dump_json()) == p
    # A trajectory procedure shows steps, not the script; a script one the reverse.
    assert "Script:" not in p.render() and "> go to countertop 1" in p.render()
    s = p.model_copy(update={"builder": "script"})
    assert "1. take {object}" in s.render() and "> go to" not in s.render()
    assert "Pitfalls:\n  - avoid the drawer" in s.render()
