"""The TravelPlanner paper suite (`memp experiment paper --env travelplanner`), in a tiny configuration."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict

import pytest
from typer.testing import CliRunner

from memp._errors import InvalidInputError
from memp.agents.offline_travel import OfflineTravelPlanner
from memp.envs.travelplanner.env import TravelEnv
from memp.envs.travelplanner.evaluator import evaluate
from memp.experiments import travelplanner
from memp.experiments.paper import PaperConfig, run_paper
from memp.experiments.suite import EpisodeRecord, load_records
from memp.experiments.tables import wilson
from memp.llm.errors import LLMConfigError

from .conftest import needs_data

pytestmark = needs_data

TINY = PaperConfig(seeds=(0, 1), n_train=1, n_test=4, n_validation=4, ks=(0, 1, 3), group_size=3,
                   embedder="hashing")
N = 4 * len(TINY.seeds)  # queries per set, pooled over the seeds
SETS = ["test_generated", "validation"]
METRICS = ("commonsense_micro", "commonsense_macro", "hard_micro", "hard_macro", "final_pass_rate",
           "delivery_rate")
FIGURES = ("table1_build", "table2_retrieve", "figure3_update", "figure3_from_expert", "figure5a_transfer",
           "figure5b_k")


def _numbers(results: dict) -> dict:
    """Everything but the timings."""
    return {k: v for k, v in results.items() if k not in ("seconds", "seconds_all_runs", "machine")}


def _records(folder, seed: int) -> list[dict]:
    """A seed's records without random ids (trajectories', procedures')."""
    rows = [{**asdict(r), "trajectory_id": None, "retrieved": len(r.retrieved)}
            for r in load_records(folder / f"seed-{seed}" / "episodes.jsonl")]
    return sorted(rows, key=lambda r: (r["set"], r["condition"], r["task_id"]))


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("tp-paper")
    return out, run_paper("travelplanner", out, TINY, progress=False)


def test_every_table_has_its_rows_and_sound_intervals(suite):
    _, r = suite
    expected = {
        "table1_build": ["no memory", "trajectory", "script", "proceduralization"],
        "table2_retrieve": ["none", "random", "query", "avefact", "hybrid"],
        "figure5a_transfer": ["no memory", "agent-built memory", "expert-built memory"],
        "figure5b_k": ["k=0", "k=1", "k=3"],
    }
    for key, rows in expected.items():
        assert list(r[key]) == SETS, key
        for name in SETS:
            table = r[key][name]
            assert list(table) == rows, (key, name)
            for row in table.values():
                assert row["n"] == N
                assert all(0 <= row[m] <= 1 for m in METRICS)
                lo, hi = row["final_pass_ci95"]
                assert 0 <= lo <= row["final_pass_rate"] <= hi <= 1
                assert (lo, hi) == wilson(round(row["final_pass_rate"] * N), N)
                assert row["steps"] > 0
                assert set(row["final_pass_by_seed"]) == {"0", "1"}
    for name in SETS:
        # Shared rows are the same condition, not a rerun.
        assert r["table2_retrieve"][name]["none"] == r["table1_build"][name]["no memory"]
        assert r["table2_retrieve"][name]["avefact"] == r["table1_build"][name]["proceduralization"]
        assert r["figure5b_k"][name]["k=3"] == r["table1_build"][name]["proceduralization"]
        # The planner checks nothing without memory: it never passes alone; expert memory helps.
        t1 = r["table1_build"][name]
        assert t1["no memory"]["final_pass_rate"] == 0
        assert t1["proceduralization"]["commonsense_micro"] > t1["no memory"]["commonsense_micro"]
    # Figure 3: per-group curves of the three updaters, groups of 3 over 4 queries per seed.
    for key in ("figure3_update", "figure3_from_expert"):
        for name in SETS:
            curves = r[key][name]
            assert list(curves) == ["vanilla", "validation", "adjustment"]
            for groups in curves.values():
                assert [g["group"] for g in groups] == [0, 1]
                assert [g["n"] for g in groups] == [6, 2]
                assert all(0 <= g["final_pass_rate"] <= 1 and g["steps"] > 0 for g in groups)
    for name in SETS:
        memory = r["figure3_memory"][name]
        assert [m["seed"] for m in memory["vanilla"]] == [0, 1]
        # Validation keeps only passing runs, and there are none from empty memory without
        # exploration; vanilla keeps every run, and adjustment turns each failure into a lesson.
        assert all(m["active"] == 0 for m in memory["validation"])
        assert all(m["active"] > 0 for u in ("vanilla", "adjustment") for m in memory[u])
    assert r["data"]["0"]["expert_runs"] == 45 + 1 and r["data"]["0"]["validation"] == 4


def test_files_and_report(suite):
    out, r = suite
    pngs = [f"{key}_{name}.png" for key in FIGURES for name in SETS]
    for name in ("results.json", "report.md", "report.html", *pngs):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "results.json").read_text()) == r
    md = (out / "report.md").read_text()
    for text in ("Table 1", "Table 2", "Figure 3", "Figure 5a", "Figure 5b", "GPT-4o", "71.93", "LLM-free",
                 "| no memory | 8 |", "sentence-transformers" if "sentence-transformers" in r["versions"] else "memp"):
        assert text in md, text
    assert "headline claims" in md and "memory from a stronger agent lifts a weaker one" in md
    assert [len(r["claims"][name]) for name in SETS] == [5, 5]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(pngs)
    # the seeds' data; every figure per set; the two curve tables per set; the paper's Tables 1 and 2
    assert html.count("<table>") == 1 + 2 * len(FIGURES) + 2 * 2 + 2
    assert r["config"]["seeds"] == [0, 1] and r["config"]["ks"] == [0, 1, 3]


def test_pooled_metrics_are_the_official_evaluation(db):
    """summarise() over per-query records gives what evaluate() gives over the plans."""
    sets = travelplanner.datasets(db, 0, 1, 4, 4)
    queries = sets["validation"] + sets["test_generated"]
    runs = [OfflineTravelPlanner().run(TravelEnv(q, db)) for q in queries]
    records = [EpisodeRecord("c", "s", str(i), 0, 0, bool(t.success), len(t.steps), t.reward, None, t.id,
                             scores=travelplanner.query_record(q, t, db, 0))
               for i, (q, t) in enumerate(zip(queries, runs))]
    ours = travelplanner.summarise(records)
    official = evaluate(queries, [t.metadata["plan"] for t in runs], db)
    for key in METRICS:
        assert ours[key] == pytest.approx(official[key], abs=1e-4), key


def test_same_seed_same_numbers_also_in_parallel(suite, tmp_path):
    out, first = suite
    again = run_paper("travelplanner", tmp_path, TINY, workers=2, progress=False)  # episodes in 2 processes
    assert _numbers(again) == _numbers(first)
    for seed in TINY.seeds:
        assert _records(tmp_path, seed) == _records(out, seed)


def test_resume_plays_only_what_is_missing(suite, tmp_path, monkeypatch):
    out, first = suite
    shutil.copytree(out, tmp_path / "run")
    played = []
    real = travelplanner.TravelPlayer.__call__

    def counting(self, task, hits, max_steps):
        played.append(task.id)
        return real(self, task, hits, max_steps)

    monkeypatch.setattr(travelplanner.TravelPlayer, "__call__", counting)
    assert _numbers(run_paper("travelplanner", tmp_path / "run", TINY, progress=False)) == _numbers(first)
    assert played == []
    # A condition lost (say, a crash before its lines were written) is played again, alone.
    path = tmp_path / "run" / "seed-1" / "episodes.jsonl"
    lines = path.read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["condition"] != "retrieve random"
            or json.loads(line)["set"] != "validation"]
    path.write_text("\n".join(kept) + "\n" + '{"set": "validation", "condi')  # and a line cut short
    assert len(kept) == len(lines) - 4
    assert _numbers(run_paper("travelplanner", tmp_path / "run", TINY, progress=False)) == _numbers(first)
    assert len(played) == 4
    # Other settings in the same folder are refused rather than mixed in.
    with pytest.raises(InvalidInputError, match="other settings"):
        run_paper("travelplanner", tmp_path / "run", PaperConfig(seeds=(0,), n_test=5, embedder="hashing"),
                  progress=False)


def test_cli_runs_the_suite(tmp_path, monkeypatch):
    from memp.cli.main import app

    out = tmp_path / "tp"
    args = ["experiment", "paper", "--env", "travelplanner", "--out", str(out), "--seeds", "3",
            "--n-train", "0", "--n-test", "2", "--n-validation", "2", "--embedder", "hashing", "--workers", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "results.json" in result.output
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["seeds"] == [3] and saved["config"]["n_test"] == 2
    assert saved["config"]["n_validation"] == 2 and saved["config"]["embedder"] == "hashing-384"
    assert saved["data"]["3"]["test_generated"] == 2 and saved["data"]["3"]["validation"] == 2
    assert [r["n"] for r in saved["table1_build"]["validation"].values()] == [2, 2, 2, 2]
    assert (out / "report.html").stat().st_size > 0
    # The LLM agent without an endpoint: a clear error (one line and exit code 1 from `memp`), nothing written.
    for name in ("MEMP_LLM_BASE_URL", "MEMP_LLM_MODEL", "MEMP_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    refused = CliRunner().invoke(app, ["experiment", "paper", "--env", "travelplanner", "--agent", "llm",
                                       "--out", str(tmp_path / "llm")])
    assert isinstance(refused.exception, LLMConfigError) and "MEMP_LLM_BASE_URL" in str(refused.exception)
    assert not (tmp_path / "llm").exists()
    # TravelPlanner-only options are refused for ALFWorld, before anything runs.
    refused = CliRunner().invoke(app, ["experiment", "paper", "--env", "alfworld", "--n-validation", "3",
                                       "--out", str(tmp_path / "alf")])
    assert isinstance(refused.exception, InvalidInputError) and "TravelPlanner" in str(refused.exception)
    assert not (tmp_path / "alf").exists()


def test_self_taught_memory_learns_from_explored_training_runs_only(tmp_path):
    """From empty memory, training runs explore checks and memory keeps what passed; the held-out
    queries are then played frozen, and beat the same planner without memory."""
    cfg = PaperConfig(seeds=(0,), n_train=12, n_test=0, n_validation=6, ks=(0,), embedder="hashing",
                      self_taught=True, passes=1,
                      only=("no memory", "self-taught vanilla", "self-taught validation", "self-taught adjustment"))
    r = run_paper("travelplanner", tmp_path, cfg, progress=False)
    records = load_records(tmp_path / "seed-0" / "episodes.jsonl")
    train = [x for x in records if x.set == "train" and x.condition == "self-taught validation"]
    assert len(train) == 45 + 12  # the gold train queries and the generated ones, once each
    held = {c: [x for x in records if x.set == "validation" and x.condition == c]
            for c in ("no memory", "self-taught adjustment")}
    assert all(len(v) == 6 for v in held.values())
    # Held-out episodes never learn: the frozen memory was not written while they were played.
    assert all(x.memory is None for x in held["self-taught adjustment"])
    passed = {c: sum(x.scores["final_pass"] for x in v) for c, v in held.items()}
    assert passed["no memory"] == 0 and passed["self-taught adjustment"] > 0
    assert r["self_taught_training"]["validation"][-1]["active"] > 0
