"""memp's LLM uses end to end against a real model: llama.cpp serving SmolLM2-135M-Instruct.

A full ALFWorld episode with the ReAct agent through the experiment runner, an LLM script build,
a keyword extraction and an adjustment through ``Memory.update``, and a rerun from the response
cache. The model is tiny and often answers nonsense, so the tests assert on plumbing (requests
accepted, replies parsed or cleanly rejected, usage counted, memory untouched on garbage, the
cache replayed), never on quality. The last two tests drive the runner's LLM player in worker
processes against the scripted fault server instead. All run in ``make test``; with
MEMP_REQUIRE_LLAMA_SERVER=1 (CI) a missing server fails them instead of skipping.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")

from memp._errors import LLMOutputError
from memp.build import make_builder
from memp.embed import HashingEmbedder
from memp.keywords import LLMKeywordExtractor
from memp.llm.client import OpenAIClient
from memp.memory import Memory
from memp.store import SQLiteStore
from memp.types import Procedure, Task

from ..conftest import SHARED, clean_apple_trajectory
from .servers import LlamaServer

# Nothing listens on the discard port: a client pointed there fails on any network call.
DEAD_URL = "http://127.0.0.1:9/v1"


def short_run(success: bool = True, traj_id: str | None = None):
    """Five steps of the apple run: real enough for the prompts, short enough for a CPU model."""
    run = clean_apple_trajectory(success=success, traj_id=traj_id)
    return run.model_copy(update={"steps": run.steps[1:3] + run.steps[5:7] + run.steps[-1:]})


def client_for(server: LlamaServer, **options) -> OpenAIClient:
    options.setdefault("timeout", 120.0)
    options.setdefault("seed", 0)
    return OpenAIClient(server.model, server.base_url, **options)


def _assert_spent(usage) -> None:
    """The request reached the model and the answer was metered."""
    assert usage.calls >= 1 and usage.network_calls == usage.calls
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0


# ---- ALFWorld: the ReAct agent through the experiment runner -------------------------------------


def _guided_memory(path: Path) -> Memory:
    """A memory holding one rule-built procedure, so the episode's prompt carries guidelines."""
    memory = Memory(SQLiteStore(path), embedder=HashingEmbedder(), build="proceduralization", k=1)
    memory.add(clean_apple_trajectory())
    return memory


def _play_llm_condition(game: Path, out: Path, memory: Memory, settings):
    from memp.experiments.alfworld import AlfworldBenchmark, episode_tasks
    from memp.experiments.suite import Condition, Part, Runner, Settings
    from memp.experiments.workers import Players

    bench = AlfworldBenchmark(out, workers=1, agent="llm", llm=settings)
    part = Part(out, "test", Condition("llm proceduralization", "given", k=1), episode_tasks([game]), 0, False, 5)
    # One worker: the episode runs in this process, which keeps the test fast and its client visible.
    with Players(bench.player()) as play:
        return Runner(bench, out, Settings(), memory.embedder).run_part(part, play, memory=memory)


def _episodes(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_alfworld_episode_with_the_llm_agent_and_a_cached_rerun(llama_server: LlamaServer, alfworld_game, tmp_path):
    from memp.experiments.alfworld import LLMSettings, summarise

    cache = str(tmp_path / "responses.sqlite")
    memory = _guided_memory(tmp_path / "memory.db")
    # Without the few-shot examples: they triple each prompt, and the CPU model reads them slowly.
    price = (1000.0, 3000.0)  # dollars per million tokens: big enough that a short episode costs cents
    live = LLMSettings(llama_server.base_url, llama_server.model, cache=cache, timeout=120.0, context_chars=4000,
                       max_tokens=32, few_shot=False, price=price)
    records = _play_llm_condition(alfworld_game, tmp_path / "first", memory, live)
    [record] = records
    [episode] = _episodes(tmp_path / "first")
    assert record.error is None, record.error
    assert episode["agent"] == "react-alfworld" and episode["model"] == llama_server.model
    assert episode["metadata"]["step_limit"] == 5
    assert episode["metadata"]["steps_used"] == 5 or record.success
    assert record.retrieved and episode["metadata"]["followed"] == record.retrieved
    usage = episode["metadata"]["usage"]
    assert usage["calls"] == episode["metadata"]["steps_used"] and usage["network_calls"] == usage["calls"]
    assert record.tokens == usage["total_tokens"] > 0
    # The runner's summary (what results.json holds) carries the tokens.
    summary = summarise(records)
    assert summary["tokens"] == record.tokens > 0
    expected_cost = (usage["prompt_tokens"] * price[0] + usage["completion_tokens"] * price[1]) / 1e6
    assert record.cost_usd == pytest.approx(expected_cost) and summary["cost_usd"] == pytest.approx(expected_cost)
    json.dumps(summary)

    # The same run again, from the cache alone: nothing listens at this URL.
    replay = LLMSettings(DEAD_URL, llama_server.model, cache=cache, timeout=5.0, context_chars=4000, max_tokens=32,
                         few_shot=False, price=price)
    again = _play_llm_condition(alfworld_game, tmp_path / "second", memory, replay)
    [episode_again] = _episodes(tmp_path / "second")
    assert again[0].error is None, again[0].error
    assert episode_again["metadata"]["usage"]["network_calls"] == 0
    assert episode_again["metadata"]["usage"]["cache_hits"] == usage["calls"]
    assert episode_again["steps"] == episode["steps"]
    assert (again[0].success, again[0].steps, again[0].tokens) == (record.success, record.steps, record.tokens)
    assert again[0].cost_usd == 0.0  # answers from the cache cost nothing
    memory.close()


# ---- building, keywords, adjustment -------------------------------------------------------------


@pytest.mark.slow
def test_llm_script_build_gives_a_procedure_or_a_clean_error(llama_server: LlamaServer) -> None:
    # The direct mode only: two_stage makes up to four calls, a minute on the CPU model.
    mode = "direct"
    client = client_for(llama_server, max_tokens=96)
    builder = make_builder("script", llm=client, mode=mode)
    run = short_run()
    with client.scope("build") as scope:
        try:
            procedure = builder.build(run)
        except LLMOutputError as err:
            assert "no usable JSON" in str(err) or "expected" in str(err)
        else:
            assert isinstance(procedure, Procedure) and procedure.builder == "script"
            assert procedure.script and all(isinstance(s, str) and s.strip() for s in procedure.script)
            assert procedure.provenance.builder == f"script/llm:{mode}:{llama_server.model}"
    _assert_spent(scope.usage)


@pytest.mark.slow
def test_keyword_extraction_gives_keywords_or_a_clean_error(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, max_tokens=64)
    with client.scope("keywords") as scope:
        try:
            keywords = LLMKeywordExtractor(client).extract(Task(text="put a hot apple in fridge."))
        except LLMOutputError:
            assert scope.usage.calls == 2  # one re-ask, then the clean failure
        else:
            assert isinstance(keywords, dict)
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in keywords.items())
    _assert_spent(scope.usage)


@pytest.mark.slow
def test_adjustment_revises_or_leaves_memory_unchanged(llama_server: LlamaServer, tmp_path) -> None:
    store = SQLiteStore(tmp_path / "memory.db")
    # Seeded without a model, so the only model call is the adjustment under test.
    Memory(store, embedder=HashingEmbedder(), build="proceduralization").add(clean_apple_trajectory())
    client = client_for(llama_server, max_tokens=96)
    memory = Memory(store, embedder=HashingEmbedder(), build="proceduralization", update="adjustment", llm=client)
    task = Task(text="put a clean apple in fridge.", type="pick_clean_then_place_in_recep")
    hits = memory.retrieve(task, k=1)
    assert hits
    failed = short_run(success=False, traj_id="failed-run")
    before = list(store.export_records())
    with client.scope("adjust") as scope:
        try:
            report = memory.update(failed, used=hits)
        except LLMOutputError:
            assert list(store.export_records()) == before  # nothing half-written
        else:
            assert report.revised == [f"{hits[0].procedure.id}@v2"]
            revised = store.get("default", hits[0].procedure.id)
            assert revised.version == 2 and revised.provenance.revised_from_failure == "failed-run"
            assert revised.script and "analysis" in revised.extra
    _assert_spent(scope.usage)
    store.close()


@pytest.mark.slow
def test_reflection_on_a_failure_with_nothing_followed_or_memory_unchanged(llama_server: LlamaServer,
                                                                          tmp_path) -> None:
    """No procedure was followed (memory was empty): the adjuster asks the model what the run
    tried in vain and stores failure evidence, or leaves memory as it was."""
    from memp.update import is_evidence

    store = SQLiteStore(tmp_path / "memory.db")
    client = client_for(llama_server, max_tokens=96)
    memory = Memory(store, embedder=HashingEmbedder(), build="proceduralization", update="adjustment", llm=client)
    failed = short_run(success=False, traj_id="lost").model_copy(update={"metadata": {"followed": []}})
    before = list(store.export_records())
    with client.scope("reflect") as scope:
        try:
            report = memory.update(failed)
        except LLMOutputError:
            assert store.count("default") == 0 and list(store.export_records()) == before
        else:
            evidence = store.get("default", report.added[0].split("@")[0])
            assert is_evidence(evidence) and evidence.provenance.trajectory_ids == ["lost"]
            assert memory.retrieve("put a clean apple in fridge.", k=1)[0].procedure.id == evidence.id
    _assert_spent(scope.usage)
    store.close()


def test_reflection_through_the_scripted_server_is_stored_and_merged(fault_server, tmp_path) -> None:
    from memp.update import is_evidence

    reply = json.dumps({"analysis": "the apple was never cleaned", "tried_in_vain": ["go to countertop 1"],
                        "refused": [], "try_instead": ["the sinkbasin"], "pitfall": "clean before placing"})
    fault_server.state.default_text = reply
    client = OpenAIClient(fault_server.model, fault_server.base_url, api_key=fault_server.api_key, timeout=10.0)
    memory = Memory(SQLiteStore(tmp_path / "m.db"), embedder=HashingEmbedder(), build="proceduralization",
                    update="adjustment", llm=client)
    first = short_run(success=False, traj_id="f1").model_copy(update={"metadata": {"followed": []}})
    second = short_run(success=False, traj_id="f2").model_copy(update={"metadata": {"followed": []}})
    pid = memory.update(first).added[0].split("@")[0]
    assert memory.update(second).revised == [f"{pid}@v2"]
    evidence = memory.store.get("default", pid)
    assert is_evidence(evidence) and evidence.extra["failed_runs"] == 2
    assert evidence.extra["tried_in_vain"] == {"go to countertop 1": 2}
    assert evidence.notes == ["clean before placing", "try instead: the sinkbasin"]
    prompt = fault_server.state.chat_requests[0]["body"]["messages"][-1]["content"]
    assert "Failed run on the task: put a clean apple in fridge." in prompt


# ---- the runner's LLM player in worker processes (the scripted server: fast, no model) -----------


def test_llm_player_in_worker_processes(fault_server, alfworld_game, tmp_path, monkeypatch) -> None:
    from memp.experiments.alfworld import AlfworldPlayer, LLMSettings, episode_tasks
    from memp.experiments.workers import Players

    from . import servers

    # A generated game's text (no ../shared) is longer than the official one's: the test is about
    # worker processes, so the fake model gets a window that fits either.
    monkeypatch.setattr(servers, "FAULT_CONTEXT_CHARS", 20_000)
    fault_server.state.default_text = "Thought: first look around\nAction: look"
    settings = LLMSettings(fault_server.base_url, fault_server.model, fault_server.api_key, timeout=10.0)
    tasks = episode_tasks([alfworld_game, alfworld_game])
    with Players(AlfworldPlayer("llm", settings), workers=2) as play:
        runs = [run for run, _ in play([(task, []) for task in tasks], 3)]
    assert [r.error for r in runs] == [None, None]
    for run in runs:
        assert [s.action for s in run.steps] == ["look"] * 3
        assert run.steps[0].thought == "first look around"
        assert run.metadata["tokens"] > 0 and run.metadata["usage"]["network_calls"] == 3
    assert len(fault_server.state.chat_requests) == 6


def test_llm_player_configuration_errors_stop_the_run(fault_server, alfworld_game) -> None:
    from memp.experiments.alfworld import AlfworldBenchmark, AlfworldPlayer, LLMSettings, episode_tasks
    from memp.experiments.workers import Players
    from memp.llm.errors import LLMAuthError, LLMConfigError

    with pytest.raises(LLMConfigError, match="must start with http"):
        AlfworldBenchmark(Path("unused"), agent="llm", llm=LLMSettings("ftp://example", "m"))
    with pytest.raises(ValueError, match="unknown ALFWorld agent"):
        AlfworldBenchmark(Path("unused"), agent="gpt")
    wrong_key = LLMSettings(fault_server.base_url, fault_server.model, "wrong-key", timeout=10.0)
    with Players(AlfworldPlayer("llm", wrong_key)) as play, pytest.raises(LLMAuthError):
        play([(episode_tasks([alfworld_game])[0], [])], 2)


# ---- the TravelPlanner paper suite with the LLM agent --------------------------------------------


@pytest.mark.skipif(not (SHARED / "travelplanner").is_dir(), reason="needs ../shared/travelplanner (official data)")
def test_travelplanner_suite_with_the_llm_agent(fault_server, tmp_path, monkeypatch) -> None:
    from memp.experiments.llm import LLMSettings
    from memp.experiments.paper import PaperConfig, run_paper

    from . import servers

    # TravelPlanner prompts carry the tool results: give the fake model a realistic window.
    monkeypatch.setattr(servers, "FAULT_CONTEXT_CHARS", 200_000)
    fault_server.state.default_text = "Thought: I have what I need.\nAction: Planner[the trip]"
    llm = LLMSettings(fault_server.base_url, fault_server.model, fault_server.api_key, timeout=10.0,
                      price=(1000.0, 1000.0), max_tokens=64)
    cfg = PaperConfig(seeds=(0,), n_train=0, n_test=2, n_validation=2, ks=(0, 3), from_expert=False,
                      embedder="hashing", agent="llm", llm=llm)
    results = run_paper("travelplanner", tmp_path, cfg, progress=False)
    calls = len(fault_server.state.chat_requests)
    assert results["agent"] == f"react-travel ({fault_server.model})"
    assert calls > 0 and results["usage"]["tokens"] > 0 and results["usage"]["cost_usd"] > 0
    # Every answer is "plan now", and the planning call gets no JSON back: nothing is delivered.
    for rows in (results["table1_build"], results["table2_retrieve"]):
        for name in ("test_generated", "validation"):
            assert all(row["delivery_rate"] == 0 and row["tokens"] > 0 for row in rows[name].values()
                       if row["n"]), name
    assert fault_server.api_key not in (tmp_path / "results.json").read_text()
    assert f"react-travel ({fault_server.model})" in (tmp_path / "report.md").read_text()
    # Resuming asks the model nothing more.
    again = run_paper("travelplanner", tmp_path, cfg, progress=False)
    assert len(fault_server.state.chat_requests) == calls and again["usage"] == results["usage"]
