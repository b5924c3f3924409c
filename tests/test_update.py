import json

import pytest

from memp import LLMOutputError, Memory, UnknownStrategyError
from memp.build import make_builder
from memp.store import SQLiteStore
from memp.types import Step, Task, Trajectory
from memp.update import DeprecationRule, LLMAdjuster, RuleAdjuster, make_updater
from tests.conftest import clean_apple_trajectory


def failed_tomato_run(traj_id: str, refused: bool = True) -> Trajectory:
    steps = [Step(action="go to countertop 1", observation="On the countertop 1, you see a knife 1."),
             Step(action="go to cabinet 1", observation="On the cabinet 1, you see a tomato 1."),
             Step(action="take tomato 1 from cabinet 1", observation="You pick up the tomato 1 from the cabinet 1."),
             Step(action="go to sinkbasin 1", observation="On the sinkbasin 1, you see nothing.")]
    if refused:
        steps.append(Step(action="clean tomato 1 with sinkbasin 1", observation="Nothing happens."))
    return Trajectory(id=traj_id, task=Task(text="put a clean tomato in fridge."), steps=steps, reward=0.0)


@pytest.fixture
def memory(tmp_path, hashing):
    def make(update: str, build: str = "script", **kw) -> Memory:
        return Memory(SQLiteStore(tmp_path / f"{update}-{build}.db"), build=build, update=update,
                      embedder=hashing, **kw)
    return make


def test_vanilla_stores_failures_validation_never_does(memory):
    failed = clean_apple_trajectory(success=False)
    vanilla, validation = memory("vanilla"), memory("validation")
    assert vanilla.update(failed).added
    report = validation.update(failed)
    assert report.added == [] and "validation" in report.skipped
    assert validation.store.count("default") == 0
    # ...but the failed run itself is kept as evidence.
    assert validation.store.get_trajectory("default", failed.id) == failed


def test_duplicate_merges_provenance_instead_of_copying(memory):
    mem = memory("validation")
    first = mem.update(clean_apple_trajectory(traj_id="a"))
    second = mem.update(clean_apple_trajectory(traj_id="b"))
    other = mem.update(clean_apple_trajectory("tomato", "cabinet", traj_id="c"))
    assert second.merged == first.added and second.added == []
    assert other.added  # a different key is not similar enough to merge
    p = mem.store.get("default", first.added[0].split("@")[0])
    assert p.provenance.trajectory_ids == ["a", "b"]
    assert mem.store.count("default") == 2


def test_adjustment_writes_new_version_linked_to_failure(memory):
    mem = memory("adjustment")
    mem.update(clean_apple_trajectory(traj_id="gold"))
    hits = mem.retrieve("put a clean tomato in fridge.", k=1)
    report = mem.update(failed_tomato_run("fail-1"), used=hits)
    pid = hits[0].procedure.id
    assert report.revised == [f"{pid}@v2"] and report.added == []
    v1, v2 = mem.store.history("default", pid)
    assert v2.parent_version == 1 and v2.provenance.revised_from_failure == "fail-1"
    assert v2.provenance.trajectory_ids == ["gold", "fail-1"]
    # The run found the tomato in a cabinet, so the search step is replaced by what worked ...
    assert v1.script[:2] == ["go to countertop", "take {object} from countertop"]
    assert v2.script[1] == "take {object} from cabinet"
    # ... and the dead-end visit is remembered.
    assert v2.extra["searched_in_vain"] == {"countertop": 1}
    assert any("searched in vain: countertop" in n for n in v2.notes)
    assert v1.stats.uses == 1 and v1.stats.successes == 0
    revised = [e for e in mem.store.events("default", pid) if e.kind == "revised"]
    assert revised[0].trajectory_id == "fail-1"


def test_rule_adjuster_records_refused_step():
    p = make_builder("script").build(clean_apple_trajectory())
    run = failed_tomato_run("f")
    run.steps[2] = Step(action="take tomato 1 from countertop 1", observation="You pick up the tomato 1.")
    new = RuleAdjuster().revise(p, run)
    assert any("'clean {object} with sinkbasin' failed" in n and "Nothing happens" in n for n in new.notes)


def test_deprecation_after_three_failed_uses_then_restore(memory):
    mem = memory("validation")
    pid = mem.update(clean_apple_trajectory()).added[0].split("@")[0]
    for i in range(3):
        hits = mem.retrieve("put a clean apple in fridge.", k=1)
        assert hits and hits[0].procedure.id == pid
        report = mem.update(failed_tomato_run(f"f{i}"), used=hits)
    assert report.deprecated == [f"{pid}@v1"]
    assert mem.retrieve("put a clean apple in fridge.", k=1) == []
    p = mem.store.get("default", pid)
    assert p.status == "deprecated" and "0 successes in 3 uses" in p.status_reason
    mem.store.set_status("default", pid, "active", reason="fixed by hand")
    assert mem.retrieve("put a clean apple in fridge.", k=1)[0].procedure.id == pid


def test_deprecation_spares_procedures_that_mostly_work(memory):
    mem = memory("validation")
    mem.update(clean_apple_trajectory())
    outcomes = [True, False, True, False, True]
    for i, ok in enumerate(outcomes):
        hits = mem.retrieve("put a clean apple in fridge.", k=1)
        run = clean_apple_trajectory(success=ok, traj_id=f"r{i}")
        assert not mem.update(run, used=hits).deprecated
    assert mem.store.count("default", status="active") == 1


def test_adjusted_lineage_that_keeps_failing_is_retired(memory):
    mem = memory("adjustment", deprecation=DeprecationRule(min_uses=3, min_success_rate=0.5))
    mem.update(clean_apple_trajectory())
    reports = []
    for i in range(3):
        hits = mem.retrieve("put a clean tomato in fridge.", k=1)
        reports.append(mem.update(failed_tomato_run(f"f{i}"), used=hits))
    assert [len(r.revised) for r in reports] == [1, 1, 1]
    assert reports[-1].deprecated and mem.retrieve("put a clean tomato in fridge.", k=1) == []


def test_followed_metadata_picks_the_procedure_to_revise(memory):
    mem = memory("adjustment")
    mem.update(clean_apple_trajectory(traj_id="a"))
    mem.update(clean_apple_trajectory("tomato", "cabinet", traj_id="b"))
    hits = mem.retrieve("put a clean tomato in fridge.", k=2)
    run = failed_tomato_run("f")
    run.metadata["followed"] = [hits[1].procedure.ref]
    report = mem.update(run, used=hits)
    assert report.revised == [f"{hits[1].procedure.id}@v2"]


def test_llm_adjuster_and_its_failure_leaves_memory_unchanged(tmp_path, hashing, scripted_llm):
    reply = json.dumps({"analysis": "the tomato was not on the countertop", "summary": "look in cabinets",
                        "steps": ["go to cabinet", "take {object} from cabinet"], "pitfall": "check cabinets first"})
    llm = scripted_llm([reply])
    mem = Memory(SQLiteStore(tmp_path / "a.db"), build="script", update="adjustment", embedder=hashing,
                 adjuster=LLMAdjuster(llm))
    mem.update(clean_apple_trajectory())
    hits = mem.retrieve("put a clean tomato in fridge.", k=1)
    mem.update(failed_tomato_run("f1"), used=hits)
    head = mem.store.get("default", hits[0].procedure.id)
    assert head.version == 2 and head.script == ["go to cabinet", "take {object} from cabinet"]
    assert head.notes == ["check cabinets first"] and head.extra["analysis"].startswith("the tomato")
    assert "Failed run on the task: put a clean tomato in fridge." in llm.calls[0][-1]["content"]

    broken = Memory(SQLiteStore(tmp_path / "b.db"), build="script", update="adjustment", embedder=hashing,
                    adjuster=LLMAdjuster(scripted_llm(["no idea", "still no idea"])))
    broken.update(clean_apple_trajectory())
    hits = broken.retrieve("put a clean tomato in fridge.", k=1)
    before = list(broken.store.export_records())
    with pytest.raises(LLMOutputError):
        broken.update(failed_tomato_run("f2"), used=hits)
    assert list(broken.store.export_records()) == before


def test_unknown_updater():
    with pytest.raises(UnknownStrategyError, match="vanilla, validation, adjustment"):
        make_updater("reflexion", builder=None, embedder=None)
