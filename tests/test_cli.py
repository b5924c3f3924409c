"""The `memp memory` commands, run as a user would, through the real entry point's error handling."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from memp.cli.main import app
from memp.store import SQLiteStore
from tests.conftest import clean_apple_trajectory

runner = CliRunner()


def memp(*args: str) -> subprocess.CompletedProcess:
    """Run the installed CLI in a subprocess: exit codes and stderr as a shell sees them."""
    return subprocess.run([sys.executable, "-c", "from memp.cli.main import main; main()", *args],
                          capture_output=True, text=True, env={"MEMP_EMBEDDER": "hashing", "PATH": ""})


@pytest.fixture
def runs_file(tmp_path):
    path = tmp_path / "runs.jsonl"
    runs = [clean_apple_trajectory(traj_id="a"), clean_apple_trajectory("mug", "cabinet", traj_id="b"),
            clean_apple_trajectory("egg", "microwave", success=False, traj_id="c")]
    path.write_text("\n".join(r.model_dump_json() for r in runs) + "\n")
    return path


@pytest.fixture
def db(tmp_path, runs_file):
    path = tmp_path / "memp.db"
    result = memp("memory", "add", str(runs_file), "--db", str(path), "--embedder", "hashing")
    assert result.returncode == 0, result.stderr
    assert "3 trajectories: 2 procedures added, 0 merged into existing ones, 1 skipped" in " ".join(result.stdout.split())
    return path


def test_list_show_history_stats(db):
    listed = json.loads(runner.invoke(app, ["memory", "list", "--db", str(db), "--format", "json"]).stdout)
    assert {p["key"] for p in listed} == {"put a clean apple in fridge.", "put a clean mug in cabinet."}
    pid = listed[0]["id"]
    shown = json.loads(runner.invoke(app, ["memory", "show", pid[:8], "--db", str(db), "--format", "json"]).stdout)
    assert shown["id"] == pid and shown["script"][-1] == "put {object} in/on {target}"
    hist = json.loads(runner.invoke(app, ["memory", "history", pid, "--db", str(db), "--format", "json"]).stdout)
    assert [e["kind"] for e in hist["events"]] == ["created"]
    stats = json.loads(runner.invoke(app, ["memory", "stats", "--db", str(db), "--format", "json"]).stdout)
    assert stats["procedures"] == 2 and stats["active"] == 2 and stats["deprecated"] == 0


def test_deprecate_restore_round_trip(db):
    pid = json.loads(runner.invoke(app, ["memory", "list", "--db", str(db), "--format", "json"]).stdout)[0]["id"]
    assert memp("memory", "deprecate", pid, "--db", str(db), "--reason", "wrong fridge").returncode == 0
    with SQLiteStore(db) as s:
        assert s.get("default", pid).status == "deprecated"
    again = memp("memory", "deprecate", pid, "--db", str(db))
    assert again.returncode == 1 and "already deprecated" in again.stderr
    assert memp("memory", "restore", pid, "--db", str(db)).returncode == 0
    with SQLiteStore(db) as s:
        assert s.get("default", pid).status == "active"
        assert [e.kind for e in s.events("default", pid)] == ["created", "deprecated", "restored"]


def test_export_import_into_another_namespace(db, tmp_path):
    export = tmp_path / "mem.jsonl"
    assert memp("memory", "export", "--db", str(db), "--out", str(export)).returncode == 0
    target = tmp_path / "weak.db"
    result = memp("memory", "import", str(export), "--db", str(target), "--namespace", "weak-model")
    assert result.returncode == 0, result.stderr
    with SQLiteStore(db) as a, SQLiteStore(target) as b:
        assert b.namespaces() == ["weak-model"]
        assert sorted(p.script == q.script for p, q in zip(
            sorted(a.list("default"), key=lambda p: p.id), sorted(b.list("weak-model"), key=lambda p: p.id)))
    # Importing the same records twice into the same namespace is refused, and writes nothing.
    again = memp("memory", "import", str(export), "--db", str(target), "--namespace", "weak-model")
    assert again.returncode == 1 and "already exists" in again.stderr
    with SQLiteStore(target) as b:
        assert b.count("weak-model") == 2


def test_retrieve_command(db):
    result = runner.invoke(app, ["memory", "retrieve", "put a clean cup in cabinet", "--db", str(db),
                                 "--embedder", "hashing", "--k", "1", "--format", "json"])
    hits = json.loads(result.stdout)
    assert len(hits) == 1 and hits[0]["key"] == "put a clean mug in cabinet."


@pytest.mark.parametrize("content, message", [
    (b'{"task": {"text": "x"}, "reward": 2}\n', "line 1: invalid trajectory: reward"),
    (b'{"task": {"text": "ok"}}\n{"task": \n', "line 2: trajectory is not valid JSON"),
    (b'\xff\xfe garbage', "not UTF-8"),
])
def test_bad_trajectory_files_fail_cleanly_and_write_nothing(tmp_path, content, message):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(content)
    target = tmp_path / "memp.db"
    result = memp("memory", "add", str(src), "--db", str(target))
    assert result.returncode == 1 and message in result.stderr.replace("\n", " ")
    assert not target.exists()


def test_bad_databases_and_names(tmp_path, db):
    assert "is a directory" in memp("memory", "list", "--db", str(tmp_path)).stderr
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"\x00garbage" * 512)
    result = memp("memory", "list", "--db", str(corrupt))
    assert result.returncode == 1 and "not a readable memp database" in result.stderr
    missing = memp("memory", "list", "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 1 and not (tmp_path / "none.db").exists()
    bad = memp("memory", "retrieve", "x", "--db", str(db), "--retrieve", "psychic")
    assert bad.returncode == 1 and "unknown retrieve strategy 'psychic'" in bad.stderr
    ns = memp("memory", "add", "/dev/null", "--db", str(db), "--namespace", "bad name")
    assert ns.returncode == 1 and "invalid namespace" in ns.stderr


def test_unreachable_llm_fails_cleanly_and_stores_nothing(tmp_path, runs_file):
    pytest.importorskip("openai", reason="the LLM client needs the llm extra")
    target = tmp_path / "memp.db"
    result = memp("memory", "add", str(runs_file), "--db", str(target), "--build", "script",
                  "--llm-model", "m", "--llm-base-url", "http://127.0.0.1:9/v1")
    assert result.returncode == 1 and "error:" in result.stderr and "Traceback" not in result.stderr
    with SQLiteStore(target) as s:
        assert s.count("default") == 0 and s.events("default") == []
