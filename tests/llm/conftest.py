"""Fixtures: ``fault_server`` (scripted, in-process) and ``llama_server`` (SmolLM2 via llama.cpp)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from memp.llm.local import (
    CHAT_ALIAS,
    EMBED_ALIAS,
    llama_server_command,
    llama_server_config,
    missing_for_llama_server,
)

from .servers import (
    FaultServer,
    FaultState,
    LlamaServer,
    ThreadedServer,
    answers,
    build_fault_app,
    free_port,
    unavailable,
)


@pytest.fixture(scope="session")
def _fault_server_session() -> Iterator[FaultServer]:
    pytest.importorskip(
        "fastapi", reason="the fault server needs fastapi and uvicorn: pip install 'memp[service]'"
    )
    pytest.importorskip(
        "uvicorn", reason="the fault server needs fastapi and uvicorn: pip install 'memp[service]'"
    )
    state = FaultState()
    with ThreadedServer(build_fault_app(state)) as server:
        yield FaultServer(f"http://127.0.0.1:{server.port}/v1", state)


@pytest.fixture
def fault_server(_fault_server_session: FaultServer) -> FaultServer:
    _fault_server_session.state.reset()
    return _fault_server_session


@pytest.fixture(autouse=True)
def _no_llm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests configure endpoints explicitly; a developer's own settings must not leak in."""
    for name in (
        "MEMP_LLM_BASE_URL",
        "MEMP_LLM_MODEL",
        "MEMP_LLM_API_KEY",
        "MEMP_EMBED_MODEL",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)


# ---- llama.cpp -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    missing = missing_for_llama_server()
    if missing is not None:
        unavailable(missing)
    workdir = tmp_path_factory.mktemp("llama")
    port = free_port()
    command = llama_server_command(llama_server_config(port), workdir / "config.json")
    log = workdir / "server.log"
    started = time.monotonic()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = started + 120
        while not answers(f"{base}/v1/models"):
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer within 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield LlamaServer(f"{base}/v1", CHAT_ALIAS, EMBED_ALIAS, time.monotonic() - started, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
