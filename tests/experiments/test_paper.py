"""A tiny configuration of the paper suite, end to end on the real engine."""

import json
from pathlib import Path

import pytest

pytest.importorskip("alfworld", reason="needs the ALFWorld engine: pip install -e '.[alfworld]'")

OFFICIAL = Path(__file__).resolve().parents[2].parent / "shared" / "alfworld"


@pytest.mark.slow
@pytest.mark.skipif(not (OFFICIAL / "json_2.1.1").is_dir(), reason="needs ../shared/alfworld (official ALFWorld games)")
def test_tiny_paper_run_writes_every_table(tmp_path, monkeypatch):
    from memp.experiments.paper import run_paper

    monkeypatch.setenv("ALFWORLD_DATA", str(OFFICIAL))
    results = run_paper(tmp_path, seeds=(0,), n_train=3, n_test=3, workers=1, ks=(0, 1, 3), group_size=2)
    for name in ("results.json", "report.md", "report.html", "table1_build.png", "table2_retrieve.png",
                 "figure3_update.png", "figure5a_transfer.png", "figure5b_k.png"):
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
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "<table>" in html
    # Resuming plays nothing again: the same records give the same tables.
    again = run_paper(tmp_path, seeds=(0,), n_train=3, n_test=3, workers=1, ks=(0, 1, 3), group_size=2)
    assert again["table1_build"] == results["table1_build"]
