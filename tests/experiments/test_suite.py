"""The suite runner on a toy benchmark: no engine, no data, seconds in all."""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path

import pytest

from memp._errors import InvalidInputError
from memp.experiments.suite import OWN, TRAIN, Condition, Settings, load_records, run_suite
from memp.experiments.tables import paper_tables

from .toy import ToyBenchmark, embedder

CONDITIONS = [
    Condition("no memory"),
    Condition("proceduralization", "expert"),
    Condition("online vanilla", "empty", update="vanilla"),
    Condition("agent-built memory", "own"),
    Condition("self-taught validation", "empty", update="validation", train_passes=2),
    Condition("self-taught vanilla", "empty", update="vanilla", train_passes=2),
]
SETTINGS = Settings(seeds=(0, 1), group_size=3, update_every=3, train_max_steps=45)


def _run(out: Path, settings: Settings = SETTINGS, bench: ToyBenchmark | None = None, conditions=CONDITIONS):
    return run_suite(bench or ToyBenchmark(), out, settings, conditions, embedder(), show_progress=False)


def _numbers(records) -> list[dict]:
    """Records without random ids (of trajectories and procedures), in a fixed order."""
    rows = [{**{k: v for k, v in asdict(r).items() if k != "trajectory_id"}, "retrieved": len(r.retrieved)}
            for r in records]
    return sorted(rows, key=lambda r: (r["set"], r["condition"], r["seed"], r["task_id"], r["group"]))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    return out, _run(out)


def test_every_condition_plays_every_held_out_task_for_every_seed(suite):
    _, run = suite
    bench = ToyBenchmark()
    for cond in CONDITIONS:
        for seed in (0, 1):
            rows = [r for r in run.records if r.set == "test" and r.condition == cond.name and r.seed == seed]
            assert sorted(r.task_id for r in rows) == sorted(t.id for t in bench.prepare(seed).held_out["test"])
    # The agent's own runs on the train tasks are played once: both seeds share the train set.
    assert len([r for r in run.records if r.condition == OWN]) == bench.n_train


def test_memory_from_winning_runs_helps_and_no_memory_is_chance(suite):
    _, run = suite
    t = paper_tables(run.records, ("test",), (0, 1), ToyBenchmark.summarise, retrieve="query", k=3, ks=(0, 3))
    rate = {name: row["success_rate"] for name, row in t["table1_build"]["test"].items()}
    assert rate["proceduralization"] == 1.0 > rate["no memory"]
    assert t["figure5a_transfer"]["test"]["agent-built memory"]["success_rate"] == 1.0
    assert 0 < rate["no memory"] < 0.7  # the toy's 30 % chance, on 24 episodes


def test_online_memory_is_updated_after_each_batch_in_task_order(suite):
    out, run = suite
    rows = [r for r in run.records if r.condition == "online vanilla" and r.seed == 0]
    assert [r.group for r in rows] == [i // 3 for i in range(len(rows))]
    sizes = [r.memory["active"] + r.memory["deprecated"] for r in rows]
    # Vanilla keeps every run (a batch's three runs are in memory after it), none before.
    assert sizes[0] == sizes[2] > 0 and sizes == sorted(sizes)
    assert all(r.memory is None for r in run.records if r.condition == "proceduralization")


def test_self_taught_learns_on_the_training_stream_then_plays_frozen(suite):
    out, run = suite
    for seed in (0, 1):
        stream = [r for r in run.records if r.set == TRAIN and r.condition == "self-taught validation"
                  and r.seed == seed]
        assert len(stream) == 2 * ToyBenchmark().n_train  # two passes
        first, second = stream[:9], stream[9:]
        assert sorted(r.task_id for r in first) == sorted(r.task_id for r in second)
        assert [r.task_id for r in first] != [r.task_id for r in second]  # each pass in its own order
        assert all(r.scores["max_steps"] == 45 for r in stream)  # the training step budget
        assert all(r.memory is not None for r in stream)
        # Validation keeps only won runs, so what it learned makes later training episodes win.
        assert sum(r.success for r in second) > sum(r.success for r in first)
        held = [r for r in run.records if r.set == "test" and r.condition == "self-taught validation"
                and r.seed == seed]
        assert all(r.memory is None and r.retrieved and r.scores["max_steps"] == 30 for r in held)
        # Frozen: the kept memory holds what the last training batch left, nothing from the held-out runs.
        db = out / f"seed-{seed}" / "self-taught" / "self-taught-validation.db"
        with sqlite3.connect(db) as con:
            active = con.execute("SELECT COUNT(*) FROM procedures WHERE status = 'active'").fetchone()[0]
        assert active == stream[-1].memory["active"] > 0


def test_self_taught_memory_learns_after_every_training_episode(suite):
    out, run = suite
    stream = [r for r in run.records if r.set == TRAIN and r.condition == "self-taught vanilla" and r.seed == 0]
    sizes = [r.memory["active"] + r.memory["deprecated"] for r in stream]
    # Within one group of update_every (3) episodes memory grows: updates do not wait for the batch.
    assert sizes[0] == 1 and len(set(sizes[:3])) > 1
    assert sizes == sorted(sizes)  # vanilla keeps every run


def test_self_taught_streams_played_side_by_side_learn_what_each_learns_alone(suite, tmp_path):
    out, run = suite
    taught = [c for c in CONDITIONS if c.self_taught]
    alone = [r for c in taught for r in _run(tmp_path / c.name.replace(" ", "-"), conditions=[c]).records]
    together = [r for r in run.records if r.condition in {c.name for c in taught}]
    assert _numbers(alone) == _numbers(together)


def test_learning_curves_carry_memory_size_and_the_report_shows_them(suite, tmp_path):
    out, run = suite
    from memp.experiments import report
    from memp.experiments.paper import PaperConfig

    bench = ToyBenchmark()
    t = paper_tables(run.records, bench.sets, (0, 1), bench.summarise, retrieve="query", k=3, ks=(0, 3))
    curve = t["self_taught_training"]["validation"]
    assert [p["group"] for p in curve] == list(range(6)) and all(p["n"] == 6 for p in curve)
    assert curve[-1]["success_rate"] > curve[0]["success_rate"] and curve[-1]["active"] >= curve[0]["active"]
    results = {"agent": "toy", "versions": {}, "seconds": 1.0, "seconds_all_runs": 1.0, "machine": {"cores": 1},
               "usage": t["usage"], "source": "toy", "gold_runs": 3, "n_train_games": 9, "n_test_games": 12,
               "agent_built_runs": 3}
    report.write_report(tmp_path, results, t, bench, PaperConfig(seeds=(0, 1), passes=2, group_size=3))
    md = (tmp_path / "report.md").read_text()
    assert "## Self-taught memory" in md and "memory per group (active / deprecated / revisions)" in md
    assert (tmp_path / "self_taught_training.png").stat().st_size > 0
    assert (tmp_path / "report.html").read_text().count("data:image/png;base64,") >= 3


def test_a_rerun_plays_nothing_and_an_interrupted_run_resumes_to_the_same_numbers(suite, tmp_path):
    out, run = suite
    episodes = out / "seed-0" / "episodes.jsonl"
    before = episodes.read_text()
    assert _numbers(_run(out).records) == _numbers(run.records)
    assert episodes.read_text() == before  # nothing played again
    # A crash: the last 7 lines of a condition lost and one cut short. The rerun plays only those.
    fresh = tmp_path / "resumed"
    shutil.copytree(out, fresh)
    lines = before.splitlines()
    frozen = [i for i, line in enumerate(lines) if '"condition": "proceduralization"' in line]
    kept = [line for i, line in enumerate(lines) if i not in frozen[-7:]]
    (fresh / "seed-0" / "episodes.jsonl").write_text("\n".join(kept) + "\n" + lines[frozen[-7]][:40])
    resumed = _run(fresh)
    assert _numbers(resumed.records) == _numbers(run.records)
    assert len(load_records(fresh / "seed-0" / "episodes.jsonl")) == len(lines)


def test_a_folder_with_other_settings_or_from_an_earlier_memp_is_refused_untouched(suite, tmp_path):
    out, _ = suite
    before = (out / "suite.json").read_text()
    with pytest.raises(InvalidInputError, match="other settings"):
        _run(out, bench=ToyBenchmark(n_test=10))
    with pytest.raises(InvalidInputError, match="other settings"):
        _run(out, Settings(seeds=(0, 1), group_size=4, update_every=3))
    assert (out / "suite.json").read_text() == before
    old = tmp_path / "old"
    (old / "seed-0").mkdir(parents=True)
    (old / "seed-0" / "records-validation.jsonl").write_text('{"set": "validation"}\n')
    with pytest.raises(InvalidInputError, match="earlier memp"):
        _run(old)
    assert [p.name for p in old.iterdir()] == ["seed-0"]


def test_the_same_seeds_give_the_same_numbers_with_worker_processes(suite, tmp_path):
    _, run = suite
    conditions = [c for c in CONDITIONS if c.name in ("proceduralization", "online vanilla", "self-taught validation")]
    parallel = _run(tmp_path, Settings(seeds=(0, 1), group_size=3, update_every=3, train_max_steps=45, workers=2),
                    conditions=conditions)
    names = {c.name for c in conditions}
    assert _numbers(parallel.records) == _numbers([r for r in run.records if r.condition in names])


def test_bad_conditions_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InvalidInputError, match="unique"):
        _run(tmp_path / "a", conditions=[Condition("x"), Condition("x")])
    with pytest.raises(InvalidInputError, match="memory-from"):
        _run(tmp_path / "b", conditions=[Condition("imported memory", "imported")])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert json.loads(json.dumps(asdict(Condition("c")))) == asdict(Condition("c"))


def test_reused_generated_games_come_back_in_the_order_they_were_drawn(tmp_path):
    """A demo run on games generated before plays them as the first run did, not sorted by type."""
    from memp.envs.alfworld.generate import trial_name
    from memp.experiments.alfworld import _generate

    drawn = ["pick_heat_then_place_in_recep-Egg-None-Fridge-5", "look_at_obj_in_light-Book-None-DeskLamp-3",
             "pick_and_place_simple-Mug-None-Shelf-1", "pick_cool_then_place_in_recep-Apple-None-Sink-2"]
    for i, name in enumerate(drawn):  # the second draw was retried: its folder carries the attempt
        game = tmp_path / "unseen" / name / trial_name("unseen", 1, i, attempt=3 if i == 1 else 0)
        game.mkdir(parents=True)
        (game / "game.tw-pddl").write_text("{}")
        (game / "traj_data.json").write_text("{}")
    games = _generate("unseen", 3, 1, str(tmp_path))
    assert [Path(g).parent.name for g in games] == drawn[:3]


def test_the_report_shows_only_the_conditions_a_run_played(suite, tmp_path):
    out, run = suite
    from memp.experiments import report
    from memp.experiments.paper import PaperConfig

    bench = ToyBenchmark()
    played = [r for r in run.records if r.condition != "proceduralization"]  # as after --only
    t = paper_tables(played, bench.sets, (0, 1), bench.summarise, retrieve="query", k=3, ks=(0, 3))
    results = {"agent": "toy", "versions": {}, "seconds": 1.0, "seconds_all_runs": 1.0, "machine": {"cores": 1},
               "usage": t["usage"], "source": "toy", "gold_runs": 3, "n_train_games": 9, "n_test_games": 12,
               "agent_built_runs": 3}
    report.write_report(tmp_path, results, t, bench, PaperConfig(seeds=(0, 1), passes=2, group_size=3))
    md = (tmp_path / "report.md").read_text()
    table1 = md.split("## Table 1")[1].split("\n## ")[0]
    assert "| no memory |" in table1 and "| proceduralization |" not in table1 and "| script |" not in table1
    assert "| expert-built memory |" not in md  # the self-taught table's scale row, not played either


def test_an_online_curve_comes_with_memory_off_on_the_same_tasks_per_group(suite, tmp_path):
    out, run = suite
    from memp.experiments import report
    from memp.experiments.paper import PaperConfig

    bench = ToyBenchmark()
    t = paper_tables(run.records, bench.sets, (0, 1), bench.summarise, retrieve="query", k=3, ks=(0, 3))
    name = bench.sets[0]
    online = [r for r in run.records if r.condition == "online vanilla" and r.set == name]
    off = {(r.seed, r.task_id): r.success for r in run.records if r.condition == "no memory" and r.set == name}
    baseline = t["figure3_memory_off"][name]
    assert [p["group"] for p in baseline] == [p["group"] for p in t["figure3_update"][name]["vanilla"]]
    for point in baseline:
        tasks = [(r.seed, r.task_id) for r in online if r.group == point["group"]]
        assert point["n"] == len(tasks)
        assert point["success_rate"] == pytest.approx(sum(off[k] for k in tasks) / len(tasks), abs=1e-4)
    results = {"agent": "toy", "versions": {}, "seconds": 1.0, "seconds_all_runs": 1.0, "machine": {"cores": 1},
               "usage": t["usage"], "source": "toy", "gold_runs": 3, "n_train_games": 9, "n_test_games": 12,
               "agent_built_runs": 3}
    report.write_report(tmp_path, results, t, bench, PaperConfig(seeds=(0, 1), passes=2, group_size=3))
    assert "| memory off, same tasks |" in (tmp_path / "report.md").read_text()
