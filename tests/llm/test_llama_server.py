"""Against a real model: llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct.

The model is tiny, so these tests check the plumbing (requests accepted, answers parsed or cleanly
rejected, tokens counted, cache replayed), never the quality of what it says.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")

from memp._errors import LLMOutputError
from memp.llm.cli import run_check
from memp.llm.client import OpenAIClient
from memp.llm.embed_client import OpenAIEmbedder
from memp.llm.errors import LLMContextLengthError
from memp.llm.parse import complete_json

from .servers import LlamaServer

GREETING = [{"role": "user", "content": "Say hello in one short sentence."}]
# SmolLM2-135M's hidden size: the width of its embeddings.
SMOLLM2_DIM = 576


def client_for(server: LlamaServer, **options) -> OpenAIClient:
    options.setdefault("timeout", 60.0)
    options.setdefault("seed", 0)
    return OpenAIClient(server.model, server.base_url, **options)


def test_startup_time_is_reported(llama_server: LlamaServer) -> None:
    # Printed with -s or -rA; kept under a generous bound so a hung start fails here.
    print(f"llama_cpp.server answered after {llama_server.startup_seconds:.1f} s")
    assert llama_server.startup_seconds < 120


def test_a_completion_with_usage(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, max_tokens=24)
    completion = client.chat(GREETING)
    assert isinstance(completion.text, str) and completion.text.strip()
    assert completion.prompt_tokens > 5
    assert 0 < completion.completion_tokens <= 24
    assert completion.finish_reason in ("stop", "length")
    assert client.usage.network_calls == 1
    assert client.usage.total_tokens == completion.prompt_tokens + completion.completion_tokens


def test_max_tokens_and_determinism(llama_server: LlamaServer) -> None:
    client = client_for(llama_server)
    short = client.chat(GREETING, max_tokens=4)
    assert short.completion_tokens <= 4 and short.finish_reason == "length"
    # Greedy decoding with a fixed seed: the same request gives the same answer.
    assert client.complete(GREETING, max_tokens=16) == client.complete(GREETING, max_tokens=16)


def test_stop_sequences_are_honoured(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, max_tokens=40)
    free = client.complete([{"role": "user", "content": "Count from 1 to 10, separated by commas."}])
    cut = client.complete(
        [{"role": "user", "content": "Count from 1 to 10, separated by commas."}], stop=[","]
    )
    assert "," not in cut
    assert len(cut) <= len(free)


def test_keyword_extraction_is_parsed_or_cleanly_rejected(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, max_tokens=64)
    messages = [
        {
            "role": "system",
            "content": 'You extract keywords. Reply with JSON only, like {"keywords": ["word1", "word2"]}.',
        },
        {"role": "user", "content": "Task: put a hot apple in the fridge."},
    ]

    def keywords(value: object) -> list[str]:
        if not isinstance(value, dict) or not isinstance(value.get("keywords"), list):
            raise ValueError('expected {"keywords": [...]}')
        return [str(word) for word in value["keywords"]]

    with client.scope("keyword extraction") as scope:
        try:
            result = complete_json(client, messages, validate=keywords)
        except LLMOutputError as err:
            assert "no usable JSON after 2 tries" in str(err)
            assert scope.usage.calls == 2
        else:
            assert isinstance(result, list) and all(isinstance(word, str) for word in result)
            assert scope.usage.calls in (1, 2)
    assert scope.usage.prompt_tokens > 0


def test_rerun_from_cache_makes_zero_network_calls(llama_server: LlamaServer, tmp_path) -> None:
    cache = tmp_path / "experiment-cache.sqlite"
    tasks = ["put a clean mug on the desk", "heat an egg", "find two pencils"]

    def experiment(client: OpenAIClient) -> list[str]:
        with client.scope("experiment"):
            return [
                client.complete([{"role": "user", "content": f"Plan in one line: {task}"}], max_tokens=24)
                for task in tasks
            ]

    first_client = client_for(llama_server, cache=cache)
    first = experiment(first_client)
    assert first_client.usage.network_calls == 3
    first_client.close()

    # Same cache, and an endpoint where nothing listens: any network call would fail the test.
    replay_client = OpenAIClient(
        llama_server.model, "http://127.0.0.1:9/v1", seed=0, cache=cache, max_retries=0
    )
    assert experiment(replay_client) == first
    assert replay_client.usage.network_calls == 0
    assert replay_client.usage.cache_hits == 3
    assert replay_client.usage.total_tokens == first_client.usage.total_tokens


def test_async_path_against_the_real_server(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, max_tokens=8, concurrency=2)

    async def run() -> list[str]:
        prompts = [[{"role": "user", "content": f"Name a color. ({n})"}] for n in range(4)]
        return await asyncio.gather(*(client.acomplete(p) for p in prompts))

    answers = asyncio.run(run())
    assert len(answers) == 4 and all(isinstance(a, str) for a in answers)
    assert client.usage.network_calls == 4


def test_context_length_error_from_llama_cpp(llama_server: LlamaServer) -> None:
    client = client_for(llama_server, max_tokens=8)
    huge = " ".join(["apple"] * 5000)
    with pytest.raises(LLMContextLengthError, match="context window"):
        client.complete([{"role": "user", "content": huge}])


def test_llm_check_against_llama(llama_server: LlamaServer) -> None:
    report = run_check(llama_server.base_url, llama_server.model, None, ask=True, timeout=60)
    assert report["ok"], report
    assert {"smollm2", "smollm2-embed"} <= set(report["models"])  # type: ignore[arg-type]
    assert isinstance(report["reply"], str)


def test_embeddings_from_llama_cpp(llama_server: LlamaServer) -> None:
    # batch_size=1: llama-cpp-python 0.3.36 without pooling returns per-token vectors (the embedder
    # mean-pools them) but mis-slices every text after the first one of a batched request.
    embedder = OpenAIEmbedder(llama_server.embed_model, llama_server.base_url, timeout=60, batch_size=1)
    vectors = embedder.embed(["heat the apple", "cool the apple", "heat the apple"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, SMOLLM2_DIM) and embedder.dim == SMOLLM2_DIM
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2], atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1], atol=1e-3)
