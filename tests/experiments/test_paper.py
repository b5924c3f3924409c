"""A tiny configuration of the paper suite, end to end on the real engine."""

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("alfworld", reason="needs the ALFWorld engine: pip install -e '.[alfworld]'")

from tests.conftest import SHARED  # noqa: E402

OFFICIAL = SHARED / "alfworld"


@pytest.mark.slow
@pytest.mark.skipif(not (OFFICIAL / "json_2.1.1").is_dir(), reason="needs ../shared/alfworld (official ALFWorld games)")
def test_tiny_paper_run_writes_every_table(tmp_path, monkeypatch):
    from memp.experiments.paper import PaperConfig, run_paper

    monkeypatch.setenv("ALFWORLD_DATA", str(OFFICIAL))
    cfg = PaperConfig.for_env("alfworld", seeds=(0,), n_train=3, n_test=3, ks=(0, 1, 3), group_size=2)
    results = run_paper("alfworld", tmp_path, cfg, workers=1, progress=False)
    for name in ("results.json", "report.md", "report.html", "table1_build_test.png", "table2_retrieve_test.png",
                 "figure3_update_test.png", "figure5a_transfer_test.png", "figure5b_k_test.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert list(results["table1_build"]) == ["no memory", "trajectory", "script", "proceduralization"]
    assert list(results["table2_retrieve"]) == ["none", "random", "query", "avefact", "hybrid"]
    assert list(results["figure5b_k"]) == ["k=0", "k=1", "k=3"]
    assert list(results["figure5a_transfer"]) == ["no memory", "agent-built memory", "expert-built memory"]
    for rows in (results["table1_build"], results["table2_retrieve"], results["figure5b_k"]):
        assert all(r["n"] == 3 and 0 <= r["success_rate"] <= 1 for r in rows.values())
    for groups in results["figure3_update"].values():
        assert [g["group"] for g in groups] == [0, 1] and sum(g["n"] for g in groups) == 3
    assert json.loads((tmp_path / "results.json").read_text())["n_test_games"] == 3
    assert all(r["per_seed"] == [r["success_rate"]] for r in results["table1_build"].values())
    assert len(results["claims"]) == 5 and "headline claims" in (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "<table>" in html
    # The agent's own memory is exported for another agent (a weak model, say) to import.
    from memp.store.base import parse_export, read_export

    exported = parse_export(read_export(tmp_path / "agent-built-memory.jsonl"), None)
    assert len(exported["trajectories"]) == results["agent_built_runs"]
    # Resuming plays nothing again: the same records give the same tables. An imported memory (here
    # the expert's, exported as a user would) adds one transfer condition, played on every test game.
    gold_export = _gold_export(tmp_path)
    again = run_paper("alfworld", tmp_path, cfg, workers=1, progress=False, memory_from=gold_export)
    assert again["table1_build"] == results["table1_build"]
    assert again["seconds_all_runs"] == pytest.approx(results["seconds"] + again["seconds"], abs=0.2)
    assert list(again["figure5a_transfer"])[-1] == "imported memory"
    assert again["figure5a_transfer"]["imported memory"]["n"] == 3
    assert again["memory_from"]["procedures"] == len(parse_export(read_export(gold_export), None)["procedures"]) > 0
    imported = [r for r in _records(tmp_path) if r["condition"] == "imported memory"]
    assert len(imported) == 3 and all(r["retrieved"] for r in imported)
    assert "Imported memory:" in (tmp_path / "report.md").read_text()
    # Every condition played each test game once, and the agent its train games once.
    conditions = 4 + 3 + 3 + 1 + 1 + 1  # builds and none, retrievers, online, agent-built, imported, k=1
    assert len(_records(tmp_path)) == 3 * conditions
    assert len((tmp_path / "agent-train" / "episodes.jsonl").read_text().splitlines()) == 3


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "seed-0" / "episodes.jsonl").read_text().splitlines()]


def _gold_export(out: Path) -> Path:
    from memp.embed import make_embedder
    from memp.memory import Memory
    from memp.store import SQLiteStore
    from memp.store.base import write_export
    from memp.types import Trajectory

    gold = [Trajectory.model_validate_json(line) for line in (out / "gold.jsonl").read_text().splitlines()]
    with Memory(SQLiteStore(out / "expert.db"), embedder=make_embedder("minilm", cache=out / "embeddings.sqlite")) as mem:
        mem.add_many(gold)
        write_export(mem.store, out / "expert.jsonl")
    return out / "expert.jsonl"


@pytest.mark.parametrize("content", ["not json\n", '{"type": "event", "event": {}}\n', ""])
def test_a_bad_memory_export_stops_the_run_before_any_episode(tmp_path, content):
    from memp._errors import InvalidInputError
    from memp.experiments.paper import PaperConfig, run_paper

    bad = tmp_path / "memory.jsonl"
    bad.write_text(content)
    with pytest.raises(InvalidInputError):
        run_paper("alfworld", tmp_path / "out", PaperConfig.for_env("alfworld", seeds=(0,), n_train=1, n_test=1),
                  memory_from=bad)
    assert not (tmp_path / "out").exists()


def _rows(**rates):
    return {name.replace("_", " "): {"success_rate": v, "avg_steps": 10.0} for name, v in rates.items()}


def test_headline_claims_are_judged_from_the_tables():
    from memp.experiments.tables import claims

    r = {"table1_build": _rows(no_memory=0.4, trajectory=0.6, script=0.6, proceduralization=0.8),
         "table2_retrieve": _rows(none=0.4, random=0.5, query=0.7, avefact=0.75, hybrid=0.8),
         "figure3_overall": _rows(vanilla=0.5, validation=0.6, adjustment=0.7),
         "figure5a_transfer": {**_rows(no_memory=0.4), "agent-built memory": {"success_rate": 0.5, "avg_steps": 9.0},
                               "expert-built memory": {"success_rate": 0.8, "avg_steps": 9.0}},
         "figure5b_k": {f"k={k}": {"success_rate": v, "avg_steps": 9.0} for k, v in ((0, .4), (1, .6), (3, .8), (10, .7))}}
    r["table1_build"]["no memory"]["avg_steps"] = 20.0  # proceduralization's 10 steps: ×0.5
    assert [c["holds"] for c in claims(r)] == [True] * 5
    assert "steps ×0.50" in claims(r)[0]["evidence"]
    r["figure5b_k"]["k=10"]["success_rate"] = 0.8  # a plateau is not a fall
    r["figure3_overall"]["validation"]["success_rate"] = 0.5  # a tie is not "better"
    r["figure5a_transfer"]["imported memory"] = {"success_rate": 0.3, "avg_steps": 9.0}  # below no memory
    assert [c["holds"] for c in claims(r)] == [True, True, False, False, False]


def test_online_tasks_arrive_shuffled_by_the_seed_with_types_mixed():
    from memp.experiments.suite import arrival_order

    tasks = [f"{kind}-{i}" for kind in "abcdef" for i in range(10)]  # sorted by type, as game folders are
    first = arrival_order(tasks, 0)
    assert sorted(first) == sorted(tasks) and first == arrival_order(tasks, 0) != arrival_order(tasks, 1)
    assert len({t[0] for t in first[:10]}) >= 3  # a group of 10 mixes task types
    assert tasks[0] == "a-0"  # the caller's list is left as it was


def test_tables_show_each_seeds_rate_only_when_there_are_several():
    from memp.experiments.alfworld import AlfworldBenchmark
    from memp.experiments.report import markdown_table

    row = {"n": 4, "success_rate": 0.5, "success_ci95": (0.15, 0.85), "avg_steps": 3.0, "avg_steps_success": 2.0}
    two = markdown_table({"a": {**row, "per_seed": [0.25, 0.75]}, "b": row}, AlfworldBenchmark)
    assert "| per seed |" in two and "| 25.0 / 75.0 |" in two
    assert all(line.count("|") == 7 for line in two.splitlines())
    assert "per seed" not in markdown_table({"a": {**row, "per_seed": [0.5]}}, AlfworldBenchmark)


@pytest.mark.parametrize("args, message", [
    (["--train-max-steps", "60", "--self-taught"], "at most|1 to 50"),
    (["--passes", "0", "--self-taught"], "--passes"),
    (["--n-validation", "3"], "TravelPlanner"),
])
def test_options_a_benchmark_cannot_honour_are_refused_before_anything_runs(tmp_path, args, message):
    from typer.testing import CliRunner

    from memp._errors import InvalidInputError
    from memp.cli.main import app

    out = tmp_path / "out"
    refused = CliRunner().invoke(app, ["experiment", "paper", "--env", "alfworld", "--out", str(out), *args])
    assert isinstance(refused.exception, InvalidInputError), refused.output
    assert re.search(message, str(refused.exception))
    assert not out.exists()


def test_only_runs_the_named_conditions_and_refuses_an_unknown_name():
    from memp._errors import InvalidInputError
    from memp.experiments.paper import PaperConfig, conditions

    cfg = PaperConfig.for_env("alfworld", self_taught=True, only=("no memory", "self-taught adjustment"))
    cfg.check("alfworld")
    assert [c.name for c in conditions(cfg)] == ["no memory", "self-taught adjustment"]
    for only in (("self-taught adjustment",), ("no memory", "nonsense"), ()):
        bad = PaperConfig.for_env("alfworld", only=only)  # no --self-taught: its conditions do not exist
        with pytest.raises(InvalidInputError, match="choose among .*no memory"):
            bad.check("alfworld")
