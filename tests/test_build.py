import json

import pytest

from memp import LLMOutputError, UnknownStrategyError
from memp.build import Abstraction, make_builder
from memp.types import Step, Task, Trajectory

EXPECTED_SCRIPT = [
    "go to countertop",
    "take {object} from countertop",
    "go to sinkbasin",
    "clean {object} with sinkbasin",
    "go to {target}",
    "open {target}",
    "put {object} in/on {target}",
]


def test_script_keeps_effective_actions_with_variables(apple_run):
    p = make_builder("script").build(apple_run)
    # Dropped: the dead-end visit to countertop 1, 'look', the refused clean, the drawer detour.
    assert p.script == EXPECTED_SCRIPT
    assert p.bindings == {"object": "apple", "target": "fridge"}
    assert p.steps == []
    assert p.summary.startswith("To put a clean {object} in {target}: first go to countertop")
    assert "7 effective actions out of 12 steps" in p.summary
    assert p.provenance.trajectory_ids == [apple_run.id]
    assert p.provenance.builder == "script/rule"


def test_trajectory_keeps_every_step(apple_run):
    p = make_builder("trajectory").build(apple_run)
    assert p.steps == apple_run.steps
    assert p.builder == "trajectory"
    assert p.keywords == {"action": "put", "object": "apple", "target": "fridge", "modifier": "clean"}


def test_proceduralization_keeps_both(apple_run):
    p = make_builder("proceduralization").build(apple_run)
    assert p.steps == apple_run.steps and p.script == EXPECTED_SCRIPT
    text = p.render()
    assert "Script:" in text and "Trajectory:" in text


def test_same_script_from_a_different_object():
    from tests.conftest import clean_apple_trajectory

    a = make_builder("script").build(clean_apple_trajectory("apple", "fridge"))
    b = make_builder("script").build(clean_apple_trajectory("tomato", "cabinet"))
    assert a.script == b.script


def test_a_placement_taken_straight_back_leaves_no_trace():
    """An explorer cleans the apple, puts it at the target to see whether that finishes the task,
    takes it back, and goes to heat it: the script keeps only the heating and the last placement."""
    steps = [("go to countertop 1", "On the countertop 1, you see a apple 1."),
             ("take apple 1 from countertop 1", "You pick up the apple 1 from the countertop 1."),
             ("go to sinkbasin 1", "On the sinkbasin 1, you see nothing."),
             ("clean apple 1 with sinkbasin 1", "You clean the apple 1 using the sinkbasin 1."),
             ("go to fridge 1", "The fridge 1 is closed."),
             ("open fridge 1", "You open the fridge 1."),
             ("put apple 1 in/on fridge 1", "You put the apple 1 in/on the fridge 1."),
             ("take apple 1 from fridge 1", "You pick up the apple 1 from the fridge 1."),
             ("go to microwave 1", "The microwave 1 is closed."),
             ("heat apple 1 with microwave 1", "You heat the apple 1 using the microwave 1."),
             ("go to fridge 1", "The fridge 1 is open."),
             ("put apple 1 in/on fridge 1", "You put the apple 1 in/on the fridge 1.")]
    run = Trajectory(task=Task(text="put a hot apple in fridge."), reward=1.0,
                     steps=[Step(action=a, observation=o) for a, o in steps])
    assert make_builder("script").build(run).script == [
        "go to countertop", "take {object} from countertop", "go to microwave", "heat {object} with microwave",
        "go to {target}", "put {object} in/on {target}"]
    # Taking back something else, or from elsewhere, is not an undo.
    other = run.model_copy(update={"steps": run.steps[:7] + [Step(action="take apple 2 from fridge 1",
                                                                   observation="You pick up the apple 2.")]})
    script = make_builder("script").build(other).script
    assert "put {object} in/on {target}" in script and "clean {object} with sinkbasin" in script


def test_empty_trajectory_builds_nothing():
    assert make_builder("script").build(Trajectory(task=Task(text="x"))) is None


def test_unknown_builder_lists_choices():
    with pytest.raises(UnknownStrategyError, match="trajectory, script, proceduralization"):
        make_builder("summary")


def test_tool_style_actions_keep_numbers_when_asked():
    ab = Abstraction(strip_instance_numbers=False)
    steps = [Step(action="FlightSearch[Boston, Denver, 2022-03-16]", observation="F123 ..."),
             Step(action="AccommodationSearch[Denver]", observation="There is no accommodation")]
    assert ab.script(steps, {"dest": "denver"}) == ["FlightSearch[Boston, {dest}, 2022-03-16]"]


def test_llm_direct_script(apple_run, scripted_llm):
    reply = "Sure!\n```json\n" + json.dumps(
        {"summary": "Find it, clean it, put it.", "steps": ["find {object}", "clean {object} at sinkbasin",
                                                           "put {object} in {target}"]}) + "\n```"
    llm = scripted_llm([reply])
    p = make_builder("script", llm=llm).build(apple_run)
    assert p.script == ["find {object}", "clean {object} at sinkbasin", "put {object} in {target}"]
    assert p.summary == "Find it, clean it, put it."
    assert "{object} = apple" in llm.calls[0][1]["content"]
    assert p.provenance.builder == "script/llm:direct:scripted-test-double"


def test_llm_two_stage_script_uses_critical_steps(apple_run, scripted_llm):
    events = [{"index": i, "pre_state": "", "action": s.action, "new_state": "x"}
              for i, s in enumerate(apple_run.steps, 1)]
    llm = scripted_llm([json.dumps(events), json.dumps({"critical": [3, 7, 12, 3], "summary": "s"})])
    p = make_builder("proceduralization", llm=llm, mode="two_stage").build(apple_run)
    assert p.script == ["take {object} from countertop", "clean {object} with sinkbasin",
                        "put {object} in/on {target}"]
    assert len(llm.calls) == 2 and "Events:" in llm.calls[1][1]["content"]


def test_llm_garbage_is_reasked_once_then_fails(apple_run, scripted_llm):
    llm = scripted_llm(["I cannot do that.", "still no json"])
    with pytest.raises(LLMOutputError, match="no usable JSON after 2 tries"):
        make_builder("script", llm=llm).build(apple_run)
    assert len(llm.calls) == 2
    assert "could not be used" in llm.calls[1][-1]["content"]


def test_llm_out_of_range_critical_steps_are_rejected(apple_run, scripted_llm):
    llm = scripted_llm([json.dumps([{"index": 1}]), json.dumps({"critical": [99]})])
    with pytest.raises(LLMOutputError, match="between 1 and 12"):
        make_builder("script", llm=llm, mode="two_stage").build(apple_run)
