"""The `memp memory` commands, run as a user would, through the real entry point's error handling."""

import json
import os
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
    # PYTHONPATH passes through, so a worktree run tests its own code rather than the installed one.
    env = {"MEMP_EMBEDDER": "hashing", "PATH": ""} | {k: v for k, v in os.environ.items() if k == "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", "from memp.cli.main import main; main()", *args],
                          capture_output=True, text=True, env=env)


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
    (b'{"task": {"text": "ok"}}\n{"task": \n', "line 2 is not JSON: Expecting value at column 10"),
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


# -- nothing half-done, nothing written by a read, no secret printed ------------------------------


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_add_writes_nothing_when_any_line_is_bad(tmp_path, db):
    good = clean_apple_trajectory("cup", "shelf", traj_id="new-1").model_dump_json()
    surrogate = clean_apple_trajectory("pen", "desk", traj_id="new-2").model_dump_json().replace("pen", "\\ud800")
    src = tmp_path / "runs.jsonl"
    src.write_text(good + "\n" + surrogate + "\n")
    before = db.read_bytes()
    result = memp("memory", "add", str(src), "--db", str(db), "--embedder", "hashing")
    assert result.returncode == 1 and "line 2" in result.stderr and "lone surrogate" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert db.read_bytes() == before


def test_a_stored_trajectory_id_with_other_content_is_refused(tmp_path, db):
    # "a" is stored by the db fixture; the same id with another outcome must not replace it.
    changed = clean_apple_trajectory(success=False, traj_id="a").model_dump_json()
    src = tmp_path / "again.jsonl"
    src.write_text(clean_apple_trajectory("cup", "shelf", traj_id="new").model_dump_json() + "\n" + changed + "\n")
    before = db.read_bytes()
    result = memp("memory", "add", str(src), "--db", str(db), "--embedder", "hashing")
    assert result.returncode == 1 and "trajectory id 'a' is already stored" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == before
    with SQLiteStore(db) as s:
        assert s.get_trajectory("default", "a").success is True
    # The same run sent again is not a conflict.
    src.write_text(clean_apple_trajectory(traj_id="a").model_dump_json() + "\n")
    assert memp("memory", "add", str(src), "--db", str(db), "--embedder", "hashing").returncode == 0


def test_a_postgres_url_is_opened_as_a_url_and_its_password_never_printed(runs_file, db, tmp_path):
    url = "postgresql://memp:s3cret-pw@127.0.0.1:9/memp"
    export = tmp_path / "export.jsonl"
    assert memp("memory", "export", "--db", str(db), "--out", str(export)).returncode == 0
    for args in (["memory", "list"], ["memory", "stats"], ["memory", "add", str(runs_file)],
                 ["memory", "import", str(export)]):
        result = memp(*args, "--db", url)
        assert result.returncode == 1, args
        assert "s3cret-pw" not in result.stderr + result.stdout, args
        assert "PostgreSQL" in result.stderr and "postgresql:/memp" not in result.stderr, (args, result.stderr)


def test_reading_commands_never_write_the_file(tmp_path, db):
    import sqlite3

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE notes (x)")
    con.close()
    before = other.read_bytes()
    for command in (["list"], ["stats"], ["show", "x"], ["history", "x"], ["export"], ["retrieve", "x"]):
        result = memp("memory", *command, "--db", str(other))
        assert result.returncode == 1 and "not a memp database" in result.stderr, command
    assert other.read_bytes() == before  # still in its own journal mode, not switched to WAL
    pid = json.loads(runner.invoke(app, ["memory", "list", "--db", str(db), "--format", "json"]).stdout)[0]["id"]
    memp_files = _files(tmp_path)
    for command in (["list"], ["stats"], ["show", pid], ["history", pid], ["export"],
                    ["retrieve", "put a clean mug in cabinet"]):
        assert memp("memory", *command, "--db", str(db)).returncode == 0, command
    assert _files(tmp_path) == memp_files


@pytest.mark.parametrize("option", [["--update", "bogus"], ["--build", "bogus"]])
def test_an_unknown_strategy_creates_nothing(tmp_path, runs_file, option):
    target = tmp_path / "new.db"
    result = memp("memory", "add", str(runs_file), "--db", str(target), *option)
    assert result.returncode == 1 and f"unknown {option[0][2:]} strategy 'bogus'" in result.stderr
    assert not target.exists()


def test_llm_timeout_bounds_a_hung_endpoint(tmp_path, runs_file):
    pytest.importorskip("openai", reason="the LLM client needs the llm extra")
    import socket
    import time

    with socket.socket() as hung:  # accepts connections (the kernel does) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        start = time.monotonic()
        result = memp("memory", "add", str(runs_file), "--db", str(tmp_path / "m.db"), "--build", "script",
                      "--llm-model", "m", "--llm-base-url", f"http://127.0.0.1:{hung.getsockname()[1]}/v1",
                      "--llm-timeout", "0.5")
        elapsed = time.monotonic() - start
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "timed out" in result.stderr.lower() or "timeout" in result.stderr.lower(), result.stderr
    assert elapsed < 30  # 5 attempts of 0.5 s plus backoff, not 5 × 60 s
    with SQLiteStore(tmp_path / "m.db") as s:
        assert s.count("default") == 0


def test_a_failure_mid_file_stores_nothing(tmp_path, runs_file, monkeypatch):
    """A model or database failure on a later line rolls back the lines before it."""
    from memp._errors import LLMError
    from memp.update import ValidationUpdater

    calls = []
    real = ValidationUpdater.update

    def fail_on_second(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise LLMError("the model went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ValidationUpdater, "update", fail_on_second)
    path = tmp_path / "mid.db"
    result = runner.invoke(app, ["memory", "add", str(runs_file), "--db", str(path), "--embedder", "hashing"])
    assert result.exit_code == 1
    assert len(calls) == 2
    store = SQLiteStore(path)
    assert store.list("default") == []
    with pytest.raises(KeyError):
        store.get_trajectory("default", "a")
