import json

import pytest

from memp import InvalidInputError, LLMOutputError, Memory, UnknownStrategyError
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


# --- failures with no procedure followed, credit, Beta deprecation ----------------------------


def explorer_failure(traj_id: str, obj: str = "apple", target: str = "fridge", action: str = "heat") -> Trajectory:
    """A run with no procedure: it found the object, tried cleaning and cooling, never won."""
    steps = [Step(action="go to cabinet 1", observation="The cabinet 1 is closed."),
             Step(action="open cabinet 1", observation="You open the cabinet 1. In it, you see nothing."),
             Step(action="go to countertop 1", observation=f"On the countertop 1, you see a {obj} 1."),
             Step(action=f"take {obj} 1 from countertop 1", observation=f"You pick up the {obj} 1 from the countertop 1."),
             Step(action="go to sinkbasin 1", observation="On the sinkbasin 1, you see nothing."),
             Step(action=f"clean {obj} 1 with sinkbasin 1", observation=f"You clean the {obj} 1 using the sinkbasin 1."),
             Step(action="go to drawer 2", observation="On the drawer 2, you see a pen 1."),
             Step(action=f"slice {obj} 1 with drawer 2", observation="Nothing happens.")]
    text = f"{action} some {obj} and put it in {target}"
    keywords = {"action": action, "object": obj, "target": target}
    return Trajectory(id=traj_id, task=Task(text=text, keywords=keywords), steps=steps, reward=0.0,
                      metadata={"followed": []})


def test_failure_with_nothing_followed_leaves_evidence_that_retrieval_returns(memory):
    from memp.update import is_evidence

    mem = memory("adjustment")
    report = mem.update(explorer_failure("f1"))
    assert len(report.added) == 1 and "failure evidence" in report.skipped
    hit = mem.retrieve("heat some apple and put it in fridge", k=1)[0]
    ev = hit.procedure
    assert is_evidence(ev) and ev.script == [] and ev.extra["failed_runs"] == 1
    assert ev.extra["tried_in_vain"] == {"clean {object} with sinkbasin": 1, "take {object} from countertop": 1}
    assert ev.extra["refused"] == {"slice {object} with drawer": 1}
    # The cabinet held nothing and the run did nothing there; at the drawer it tried something.
    assert ev.extra["searched_in_vain"] == {"cabinet": 1}
    assert "Pitfalls:" in ev.render() and "tried in vain: clean {object} with sinkbasin" in ev.render()
    # Validation learns nothing from the same run.
    assert memory("validation").update(explorer_failure("f1")).added == []


def test_evidence_of_one_kind_accumulates_in_one_record_and_a_success_retires_it(memory):
    mem = memory("adjustment")
    first = mem.update(explorer_failure("f1")).added[0]
    second = mem.update(explorer_failure("f2", obj="mug", target="cabinet"))
    pid = first.split("@")[0]
    assert second.added == [] and second.revised == [f"{pid}@v2"]
    head = mem.store.get("default", pid)
    assert head.extra["failed_runs"] == 2 and head.extra["tried_in_vain"]["clean {object} with sinkbasin"] == 2
    assert head.provenance.trajectory_ids == ["f1", "f2"]
    # Another kind of task (cooling) gets its own record.
    other = mem.update(explorer_failure("f3", action="cool"))
    assert other.added and other.added[0].split("@")[0] != pid
    # A success of the heating kind retires the heating evidence, not the cooling one.
    won = explorer_failure("w1", obj="egg", target="garbagecan").model_copy(update={"reward": 1.0, "success": True})
    report = mem.update(won)
    assert report.deprecated == [f"{pid}@v2"] and report.added
    assert mem.store.get("default", pid).status == "deprecated"
    assert mem.store.get("default", other.added[0].split("@")[0]).status == "active"


def test_outcome_counts_only_for_the_followed_procedure_never_for_evidence(memory):
    mem = memory("adjustment")
    mem.update(clean_apple_trajectory(traj_id="a"))
    mem.update(clean_apple_trajectory("tomato", "cabinet", traj_id="b"))
    mem.update(explorer_failure("f", action="clean"))
    from memp.update import is_evidence

    hits = mem.retrieve("put a clean tomato in fridge.", k=3)
    assert len(hits) == 3 and sum(is_evidence(h.procedure) for h in hits) == 1
    top, other = [h.procedure.id for h in hits if not is_evidence(h.procedure)]
    run = clean_apple_trajectory("tomato", "fridge", traj_id="won")
    run.metadata["followed"] = [f"{top}@v1"]
    mem.update(run, used=hits)
    uses = {h.procedure.id: mem.store.get("default", h.procedure.id).stats.uses for h in hits}
    assert uses[top] == 1 and uses[other] == 0 and sum(uses.values()) == 1


def test_beta_deprecation_spares_an_unlucky_start_but_not_a_bad_record():
    from memp.types import ProcedureStats
    from memp.update import below_probability

    rule = DeprecationRule(min_uses=3, min_success_rate=0.5, confidence=0.9)
    # Beta(1, 4) after 0 of 3: P(rate < .5) = 1 - .5**4 = 0.9375
    assert below_probability(0.5, ProcedureStats(uses=3, successes=0)) == pytest.approx(0.9375)
    assert rule.should_deprecate(ProcedureStats(uses=3, successes=0))
    assert not rule.should_deprecate(ProcedureStats(uses=4, successes=1))  # the plain rule would
    assert DeprecationRule().should_deprecate(ProcedureStats(uses=4, successes=1))
    assert rule.should_deprecate(ProcedureStats(uses=10, successes=2))
    assert "P(success rate < 0.5)" in rule.reason(ProcedureStats(uses=10, successes=2))
    with pytest.raises(InvalidInputError, match="strictly between 0 and 1"):
        DeprecationRule(confidence=1.0)


def test_llm_adjuster_reflects_on_a_failure_with_nothing_followed(tmp_path, hashing, scripted_llm):
    from memp.update import is_evidence

    reply = json.dumps({"analysis": "cleaning does not heat", "tried_in_vain": ["clean apple 1 with sinkbasin 1"],
                        "refused": ["slice apple 1 with drawer 2"], "try_instead": ["a microwave"],
                        "pitfall": "heating needs a place that heats"})
    llm = scripted_llm(["not json", reply])
    mem = Memory(SQLiteStore(tmp_path / "r.db"), build="script", update="adjustment", embedder=hashing,
                 adjuster=LLMAdjuster(llm))
    report = mem.update(explorer_failure("f1"))
    ev = mem.store.get("default", report.added[0].split("@")[0])
    assert is_evidence(ev) and ev.extra["tried_in_vain"] == {"clean apple 1 with sinkbasin 1": 1}
    assert ev.notes == ["heating needs a place that heats", "try instead: a microwave"]
    assert ev.extra["analysis"] == "cleaning does not heat"
    assert "Failed run on the task: heat some apple and put it in fridge" in llm.calls[0][-1]["content"]
    # A reply that names nothing is refused (asked again, then an error), and memory is unchanged.
    empty = json.dumps({"analysis": "", "tried_in_vain": [], "refused": [], "try_instead": [], "pitfall": ""})
    broken = Memory(SQLiteStore(tmp_path / "e.db"), build="script", update="adjustment", embedder=hashing,
                    adjuster=LLMAdjuster(scripted_llm([empty, empty])))
    with pytest.raises(LLMOutputError):
        broken.update(explorer_failure("f2"))
    assert broken.store.count("default") == 0


@pytest.mark.parametrize("update", ["vanilla", "validation", "adjustment"])
def test_a_run_reported_again_changes_nothing(memory, update):
    mem = memory(update)
    mem.add(clean_apple_trajectory(traj_id="gold"))
    hits = mem.retrieve("put a clean tomato in fridge.", k=1)
    failed, won = failed_tomato_run("fail-1", refused=False), clean_apple_trajectory("apple", "cabinet", traj_id="win")
    first = [mem.update(failed, used=hits), mem.update(won, used=hits)]
    before = (mem.store.get("default", hits[0].procedure.id), mem.store.count_events("default"),
              mem.store.count("default"))
    again = [mem.update(failed.model_copy(), used=hits), mem.update(won, used=hits)]
    assert before == (mem.store.get("default", hits[0].procedure.id), mem.store.count_events("default"),
                      mem.store.count("default"))
    assert (before[0].stats.uses, before[0].stats.successes) == (2, 1)  # each run counted once
    assert all(r.added == r.merged == r.revised == r.deprecated == [] for r in again)
    assert all("already recorded" in r.skipped for r in again)
    assert any(r.added or r.merged or r.revised for r in first)


def test_add_many_adds_a_run_once_however_often_it_comes(memory):
    mem = memory("validation")
    runs = [clean_apple_trajectory(traj_id="a"), clean_apple_trajectory("tomato", "cabinet", traj_id="b")]
    reports = mem.add_many([runs[0], runs[0], runs[1]])
    assert [bool(r.added) for r in reports] == [True, False, True]
    assert "already recorded" in reports[1].skipped
    events = mem.store.count_events("default")
    again = mem.add_many(runs)
    assert all("already recorded" in r.skipped and not r.merged for r in again)
    assert mem.store.count_events("default") == events and mem.store.count("default") == 2


def missed_clean_run(traj_id: str) -> Trajectory:
    """A cleaning task, worded as the stored cleaning procedure's is, explored in vain."""
    run = explorer_failure(traj_id, obj="tomato", target="cabinet", action="clean")
    return run.model_copy(update={"task": Task(text="put a clean tomato in cabinet.")})


def test_a_failure_that_missed_its_kind_of_procedure_files_a_copy_under_its_task(memory):
    mem = memory("adjustment")
    source = mem.update(clean_apple_trajectory(traj_id="gold")).added[0]
    failed = missed_clean_run("f1")
    report = mem.update(failed)
    assert len(report.added) == 1 and report.revised == [] and "filed under its task" in report.skipped
    copy = mem.store.get("default", report.added[0].split("@")[0])
    original = mem.store.get("default", source.split("@")[0])
    assert copy.key == failed.task.text and copy.keywords["object"] == "tomato"
    assert copy.script == original.script and copy.steps == original.steps and copy.script
    assert copy.provenance.derived_from == source and copy.provenance.trajectory_ids == ["f1"]
    assert copy.provenance.revised_from_failure == "f1"
    assert copy.stats.uses == 0 and original.stats.uses == 0  # nothing was followed: no credit
    assert mem.retrieve(failed.task.text, k=1)[0].procedure.id == copy.id
    # The same miss again merges into the copy rather than filing another.
    again = mem.update(missed_clean_run("f2"))
    assert again.added == [] and again.merged == [copy.ref]
    # A kind memory holds no procedure for still leaves evidence; validation learns nothing.
    from memp.update import is_evidence

    heat = mem.update(explorer_failure("f3", obj="tomato", target="cabinet", action="heat"))
    assert is_evidence(mem.store.get("default", heat.added[0].split("@")[0]))
    assert memory("validation").update(failed).added == []
