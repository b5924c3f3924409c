from __future__ import annotations

import json
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")

from memp.llm.cli import app
from memp.llm.client import OpenAIClient
from memp.llm.options import (
    LLMApiKeyOpt,
    LLMBaseUrlOpt,
    LLMCacheOpt,
    LLMModelOpt,
    LLMTemperatureOpt,
    client_from_options,
)

from .servers import FaultServer

runner = CliRunner()


def test_check_lists_the_models(fault_server: FaultServer) -> None:
    result = runner.invoke(
        app, ["check", "--llm-base-url", fault_server.base_url, "--llm-api-key", fault_server.api_key]
    )
    assert result.exit_code == 0, result.output
    assert "answers" in result.output
    assert "fault-model" in result.output


def test_check_can_ask_and_report_json(fault_server: FaultServer) -> None:
    args = ["check", "--llm-base-url", fault_server.base_url, "--llm-api-key", fault_server.api_key]
    result = runner.invoke(app, [*args, "--llm-model", "fault-model", "--ask", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and report["model_listed"]
    assert report["reply"].startswith("echo:")
    assert report["usage"]["network_calls"] == 1


def test_check_reads_the_environment(fault_server: FaultServer, monkeypatch) -> None:
    monkeypatch.setenv("MEMP_LLM_BASE_URL", fault_server.base_url)
    monkeypatch.setenv("MEMP_LLM_API_KEY", fault_server.api_key)
    assert runner.invoke(app, ["check"]).exit_code == 0


def test_check_failures_exit_1_with_the_fix() -> None:
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 1
    assert "MEMP_LLM_BASE_URL" in result.output
    result = runner.invoke(app, ["check", "--llm-base-url", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 1
    assert "could not connect" in result.output


def test_check_wrong_key(fault_server: FaultServer) -> None:
    result = runner.invoke(app, ["check", "--llm-base-url", fault_server.base_url, "--llm-api-key", "nope"])
    assert result.exit_code == 1
    assert "refused the API key" in result.output


def test_options_build_a_client(fault_server: FaultServer, tmp_path) -> None:
    demo = typer.Typer()
    built: list[OpenAIClient] = []

    @demo.command()
    def run(
        prompt: Annotated[str, typer.Argument()],
        base_url: LLMBaseUrlOpt = None,
        model: LLMModelOpt = None,
        api_key: LLMApiKeyOpt = None,
        temperature: LLMTemperatureOpt = 0.0,
        cache: LLMCacheOpt = None,
    ) -> None:
        client = client_from_options(base_url, model, api_key, temperature, cache)
        built.append(client)
        typer.echo(client.complete([{"role": "user", "content": prompt}]))

    cache = tmp_path / "cli-cache.sqlite"
    args = [
        "hi",
        "--llm-base-url",
        fault_server.base_url,
        "--llm-model",
        "fault-model",
        "--llm-api-key",
        fault_server.api_key,
        "--llm-temperature",
        "0.5",
        "--llm-cache",
        str(cache),
    ]
    result = runner.invoke(demo, args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "echo: hi"
    assert built[0].temperature == 0.5 and cache.exists()
    assert runner.invoke(demo, args).output.strip() == "echo: hi"
    assert built[1].usage.cache_hits == 1
    assert len(fault_server.state.chat_requests) == 1


def test_serve_explains_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(
        "memp.llm.local.missing_for_llama_server", lambda: "llama-cpp-python is missing (pip ...)"
    )
    result = runner.invoke(app, ["serve", "--port", "9"])
    assert result.exit_code == 1
    assert "cannot serve: llama-cpp-python is missing" in result.output


def test_serve_threads_reach_both_models(monkeypatch, tmp_path) -> None:
    from pathlib import Path

    import memp.llm.local as local
    from memp.llm.errors import LLMConfigError

    seen: list[dict] = []

    def fake_run(command: list[str]) -> int:  # the config file lives only while serve runs
        seen.append(json.loads(Path(command[command.index("--config_file") + 1]).read_text()))
        return 0

    monkeypatch.setattr(local, "missing_for_llama_server", lambda: None)
    monkeypatch.setattr(local, "smollm2_gguf", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(local, "run_until_stopped", fake_run)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 16)
    assert runner.invoke(app, ["serve", "--port", "9", "--threads", "3"]).exit_code == 0
    assert runner.invoke(app, ["serve", "--port", "9"]).exit_code == 0
    assert [[(m["n_threads"], m["n_threads_batch"]) for m in config["models"]] for config in seen] == [
        [(3, 3), (3, 3)], [(4, 4), (4, 4)]]
    # Half the cores, at least 1 and at most 4: the agent and the environment need the rest.
    for cores, threads in ((None, 1), (1, 1), (2, 1), (6, 3), (64, 4)):
        monkeypatch.setattr(local.os, "cpu_count", lambda cores=cores: cores)
        assert local.default_threads() == threads
    assert runner.invoke(app, ["serve", "--port", "9", "--threads", "0"]).exit_code == 2
    with pytest.raises(LLMConfigError, match="threads"):
        local.llama_server_config(9, threads=0)
    assert len(seen) == 2
