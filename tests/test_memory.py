"""Memory with strategy objects instead of names, and Memory.open creating nothing on a bad option."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from memp import InvalidInputError, Memory, NamespaceError, UnknownStrategyError
from memp.build import ScriptBuilder
from memp.embed import HashingEmbedder
from memp.retrieve import QueryRetriever
from memp.store import SQLiteStore
from memp.types import Task
from memp.update import RuleAdjuster, make_updater

from .conftest import clean_apple_trajectory

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    return next(b for b in blocks if "check_retriever(" in b)


def test_readme_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    assert scope["hits"] == [] and (tmp_path / "memp.db").exists()
    # The example's retriever, at work on a memory that has been used.
    with Memory.open("memp.db", retrieve=scope["MostUsed"](), embedder="hashing", update="vanilla") as mem:
        mem.add_many([clean_apple_trajectory(traj_id="a"), clean_apple_trajectory("mug", "cabinet", traj_id="b")])
        mug = next(h for h in mem.retrieve("anything", k=2) if "mug" in h.procedure.key)
        mem.update(clean_apple_trajectory("mug", "cabinet", traj_id="c"), used=[mug])
        hits = mem.retrieve("put a clean apple in fridge", k=2)
    assert [h.procedure.key for h in hits] == ["put a clean mug in cabinet.", "put a clean apple in fridge."]
    assert [h.score for h in hits] == [1.0, 0.0] and hits[0].retriever == "most-used"
    assert mem.config["retrieve"] == "most-used"


class Marked(ScriptBuilder):
    """A user's builder: memp's script, marked so the test can see it was used."""

    name = "marked"

    def build(self, trajectory):
        p = super().build(trajectory)
        return p.model_copy(update={"extra": {"marked": True}})


class Recording:
    """A user's updater with only ``update``, counting calls and delegating to vanilla."""

    def __init__(self, builder, embedder):
        self.inner = make_updater("vanilla", builder=builder, embedder=embedder)
        self.calls = 0

    def update(self, store, namespace, trajectory, used):
        self.calls += 1
        return self.inner.update(store, namespace, trajectory, used)


class FixedKeywords:
    def extract(self, task):
        return dict(task.keywords) or {"object": "thing"}


class CountingAdjuster(RuleAdjuster):
    def __init__(self):
        super().__init__()
        self.revised = []

    def revise(self, procedure, failed):
        self.revised.append(failed.id)
        return super().revise(procedure, failed)


def test_strategy_objects_are_used_and_named(tmp_path):
    hashing = HashingEmbedder()
    builder = Marked()
    updater = Recording(builder, hashing)
    mem = Memory(tmp_path / "m.db", build=builder, retrieve=QueryRetriever(hashing), update=updater,
                 embedder=hashing)
    named = {k: mem.config[k] for k in ("build", "retrieve", "update", "embedder", "keywords", "adjuster")}
    assert named == {"build": "marked", "retrieve": "query", "update": "Recording", "embedder": "hashing-384",
                     "keywords": "RuleKeywordExtractor", "adjuster": "RuleAdjuster"}
    report = mem.update(clean_apple_trajectory(traj_id="a"))
    assert updater.calls == 1 and len(report.added) == 1
    # add() needs no add() on the user's updater: memp adds with the given builder.
    added = mem.add(clean_apple_trajectory("mug", "cabinet", traj_id="b"))
    assert updater.calls == 1 and len(added.added) == 1
    stored = [mem.store.get("default", ref.split("@")[0]) for ref in report.added + added.added]
    assert len(stored) == 2 and all(p.extra == {"marked": True} and p.builder == "marked" for p in stored)
    assert mem.retrieve("put a clean mug in cabinet", k=1)[0].procedure.key == "put a clean mug in cabinet."
    mem.close()


def test_keyword_and_adjuster_objects_reach_the_built_in_strategies(tmp_path):
    adjuster = CountingAdjuster()
    with Memory(tmp_path / "m.db", build="script", retrieve="avefact", update="adjustment",
                embedder="hashing", keywords=FixedKeywords(), adjuster=adjuster) as mem:
        mem.update(clean_apple_trajectory(traj_id="won"))
        assert mem.store.get("default", mem.store.refs("default")[0][0]).keywords == {"object": "thing"}
        hits = mem.retrieve(Task(text="anything at all"), k=1)  # avefact matches on {"object": "thing"}
        assert len(hits) == 1
        report = mem.update(clean_apple_trajectory(success=False, traj_id="lost"), used=hits)
    assert adjuster.revised == ["lost"] and len(report.revised) == 1
    assert (mem.config["keywords"], mem.config["adjuster"]) == ("FixedKeywords", "CountingAdjuster")


class NoMethods:
    name = "hollow"


class EmbedWithoutDim:
    name = "dimless"

    def embed(self, texts):
        return HashingEmbedder().embed(texts)


@pytest.mark.parametrize("option, message", [
    ({"build": NoMethods()}, "build strategy 'hollow' has no build() method"),
    ({"retrieve": NoMethods()}, "retrieve strategy 'hollow' has no retrieve() method"),
    ({"update": object()}, "update strategy 'object' has no update() method"),
    ({"keywords": NoMethods()}, "keyword extractor 'hollow' has no extract() method"),
    ({"adjuster": NoMethods()}, "adjuster 'hollow' has no revise() method"),
    ({"embedder": NoMethods()}, "embedder 'hollow' has no embed() method"),
    ({"embedder": EmbedWithoutDim()}, "no integer dim attribute"),
    ({"update": "bogus"}, "unknown update strategy 'bogus'; choose one of: vanilla, validation, adjustment"),
    ({"build": "bogus"}, "unknown build strategy 'bogus'"),
    ({"retrieve": "bogus"}, "unknown retrieve strategy 'bogus'"),
    ({"embedder": "bogus"}, "unknown embedder 'bogus'; choose one of: hashing, minilm"),
    ({"keywords": "llm"}, "need a model"),
    ({"script_mode": "bogus"}, "unknown script mode"),
    ({"namespace": "bad name!"}, "invalid namespace"),
    ({"k": -1}, "k must be a whole number ≥ 0, got -1"),
])
def test_bad_options_are_refused_and_create_nothing(tmp_path, option, message):
    options = {"embedder": "hashing", **option}
    with pytest.raises((UnknownStrategyError, InvalidInputError, NamespaceError), match=re.escape(message)):
        Memory.open(tmp_path / "memp.db", **options)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_store_is_left_alone_by_a_bad_option(tmp_path):
    store = SQLiteStore(tmp_path / "m.db")
    generation = store.generation()
    with pytest.raises(UnknownStrategyError):
        Memory(store, retrieve=NoMethods(), embedder="hashing")
    assert store.generation() == generation and store.namespaces() == []
    store.close()


def test_cli_unknown_update_strategy_creates_no_database(tmp_path):
    runs = tmp_path / "runs.jsonl"
    runs.write_text(clean_apple_trajectory().model_dump_json() + "\n")
    target = tmp_path / "memp.db"
    result = subprocess.run([sys.executable, "-c", "from memp.cli.main import main; main()", "memory", "add",
                             str(runs), "--db", str(target), "--update", "bogus", "--embedder", "hashing"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "unknown update strategy 'bogus'" in result.stderr
    assert not target.exists()
