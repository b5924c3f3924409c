"""The client against a scripted OpenAI-compatible server: retries, failures, limits, cache, usage."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")

from memp._errors import EmbeddingError, LLMError, LLMOutputError
from memp.llm import LLM
from memp.llm.client import OpenAIClient, list_models
from memp.llm.embed_client import OpenAIEmbedder
from memp.llm.endpoint import Endpoint
from memp.llm.errors import (
    LLMAuthError,
    LLMConfigError,
    LLMContextLengthError,
    LLMModelNotFoundError,
    LLMUnavailableError,
)
from memp.llm.parse import complete_json
from memp.llm.usage import Price, Usage

from .servers import EMBED_DIM, Fault, FaultServer

HELLO = [{"role": "user", "content": "hello there"}]


class Sleeps:
    """Records the waits instead of sleeping, so backoff is checked exactly and tests stay fast."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_client(server: FaultServer, **options) -> OpenAIClient:
    options.setdefault("retry_seed", 0)
    options.setdefault("timeout", 5.0)
    return OpenAIClient(server.model, server.base_url, server.api_key, **options)


def test_satisfies_the_llm_protocol_and_answers(fault_server: FaultServer) -> None:
    client = make_client(fault_server)
    assert isinstance(client, LLM)
    assert client.complete(HELLO) == "echo: hello there"
    sent = fault_server.state.chat_requests[0]["body"]
    assert sent["model"] == "fault-model"
    assert sent["messages"] == HELLO
    assert sent["temperature"] == 0.0
    assert "max_tokens" not in sent and "stop" not in sent  # unset options are omitted


def test_parameters_reach_the_server(fault_server: FaultServer) -> None:
    client = make_client(fault_server, seed=11, max_tokens=50, temperature=0.3)
    client.complete(HELLO, stop=["\n"], max_tokens=7)
    sent = fault_server.state.chat_requests[0]["body"]
    assert (sent["seed"], sent["max_tokens"], sent["temperature"], sent["stop"]) == (11, 7, 0.3, ["\n"])


def test_usage_per_call_client_and_scope(fault_server: FaultServer) -> None:
    client = make_client(fault_server, prices={"fault-model": Price(prompt=1.0, completion=2.0)})
    completion = client.chat(HELLO)
    assert (completion.prompt_tokens, completion.completion_tokens, completion.cached) == (2, 3, False)
    with client.scope("episode") as episode:
        client.complete(HELLO)
        client.complete([{"role": "user", "content": "x" * 400}])
    assert episode.usage.calls == 2
    assert episode.usage.prompt_tokens == 2 + 100
    assert client.usage.calls == 3
    assert client.usage.network_calls == 3
    assert client.usage.cost_usd == pytest.approx((104 * 1.0 + (3 + 3 + 2) * 2.0) / 1e6)


def test_429_is_retried_honouring_retry_after(fault_server: FaultServer) -> None:
    fault_server.state.push(Fault(429, headers={"Retry-After": "1.5"}), Fault(503))
    sleeps = Sleeps()
    client = make_client(fault_server, sleep=sleeps, backoff_base=0.2)
    completion = client.chat(HELLO)
    assert completion.text == "echo: hello there"
    assert completion.attempts == 3
    assert sleeps.waits[0] == 1.5  # the server's word, not our backoff
    assert 0.2 <= sleeps.waits[1] <= 0.4  # second failure: backoff 0.4 with equal jitter
    assert client.usage.retries == 2
    assert len(fault_server.state.chat_requests) == 3


def test_retries_really_wait(fault_server: FaultServer) -> None:
    fault_server.state.push(Fault(429, headers={"retry-after-ms": "300"}))
    client = make_client(fault_server)
    started = time.monotonic()
    assert client.complete(HELLO).startswith("echo")
    assert time.monotonic() - started >= 0.3


def test_500_until_the_last_retry_gives_a_clear_error(fault_server: FaultServer) -> None:
    fault_server.state.push(*[Fault(500)] * 3)
    sleeps = Sleeps()
    client = make_client(fault_server, max_retries=2, sleep=sleeps)
    with pytest.raises(LLMUnavailableError, match=r"HTTP 500.*after 3 attempts") as info:
        client.complete(HELLO)
    assert info.value.attempts == 3
    assert len(sleeps.waits) == 2
    assert len(fault_server.state.chat_requests) == 3
    assert client.usage.retries == 2 and client.usage.calls == 0


def test_backoff_is_reproducible_with_a_seed(fault_server: FaultServer) -> None:
    def waits() -> list[float]:
        fault_server.state.push(*[Fault(500)] * 4)
        sleeps = Sleeps()
        client = make_client(fault_server, max_retries=3, sleep=sleeps, retry_seed=42)
        with pytest.raises(LLMUnavailableError):
            client.complete(HELLO)
        return sleeps.waits

    first, second = waits(), waits()
    assert first == second and len(first) == 3


def test_slow_answers_time_out_then_retry(fault_server: FaultServer) -> None:
    fault_server.state.push(Fault(delay=1.0))
    client = make_client(fault_server, timeout=0.3, backoff_base=0.01)
    completion = client.chat(HELLO)
    assert completion.attempts == 2 and completion.text.startswith("echo")


def test_always_slow_ends_in_a_timeout_error(fault_server: FaultServer) -> None:
    fault_server.state.push(*[Fault(delay=1.0)] * 2)
    client = make_client(fault_server, timeout=0.3, max_retries=1, backoff_base=0.01)
    with pytest.raises(LLMUnavailableError, match="timed out.*after 2 attempts"):
        client.complete(HELLO)


@pytest.mark.parametrize("garbage", ["{this is not json", '{"object": "chat.completion"}', '"a string"'])
def test_garbage_bodies_are_retried_then_reported(fault_server: FaultServer, garbage: str) -> None:
    fault_server.state.push(Fault(raw=garbage), Fault(raw=garbage))
    sleeps = Sleeps()
    client = make_client(fault_server, max_retries=1, sleep=sleeps)
    with pytest.raises(LLMUnavailableError, match="after 2 attempts"):
        client.complete(HELLO)
    fault_server.state.push(Fault(raw=garbage))
    assert make_client(fault_server, sleep=sleeps).complete(HELLO) == "echo: hello there"


def test_wrong_key_is_not_retried(fault_server: FaultServer) -> None:
    client = OpenAIClient(fault_server.model, fault_server.base_url, "wrong-key", sleep=Sleeps())
    with pytest.raises(LLMAuthError, match="MEMP_LLM_API_KEY"):
        client.complete(HELLO)
    assert len(fault_server.state.requests) == 1


def test_unknown_model(fault_server: FaultServer) -> None:
    client = OpenAIClient("no-such-model", fault_server.base_url, fault_server.api_key)
    with pytest.raises(LLMModelNotFoundError, match="no-such-model.*memp llm check"):
        client.complete(HELLO)


def test_context_length(fault_server: FaultServer) -> None:
    client = make_client(fault_server)
    with pytest.raises(LLMContextLengthError, match="context window.*shorten"):
        client.complete([{"role": "user", "content": "word " * 2000}])
    assert len(fault_server.state.requests) == 1


def test_nothing_listening_is_unavailable_not_a_hang() -> None:
    client = OpenAIClient("m", "http://127.0.0.1:9/v1", max_retries=1, backoff_base=0.01)
    with pytest.raises(LLMUnavailableError, match="could not connect"):
        client.complete(HELLO)


def test_config_errors_come_before_any_call(fault_server: FaultServer) -> None:
    with pytest.raises(LLMConfigError, match="no LLM endpoint"):
        OpenAIClient()
    with pytest.raises(LLMConfigError, match="concurrency"):
        make_client(fault_server, concurrency=0)
    with pytest.raises(LLMConfigError, match="messages is empty"):
        make_client(fault_server).complete([])
    assert fault_server.state.requests == []
    assert issubclass(LLMConfigError, LLMError)


# ---- cache ------------------------------------------------------------------------------------


def test_rerun_from_cache_makes_no_network_call(fault_server: FaultServer, tmp_path) -> None:
    cache_path = tmp_path / "responses.sqlite"
    prompts = [[{"role": "user", "content": f"question {n}"}] for n in range(3)]

    first = make_client(fault_server, cache=cache_path)
    answers = [first.complete(p) for p in prompts]
    first.close()
    assert len(fault_server.state.chat_requests) == 3

    fault_server.state.reset()
    fault_server.state.push(*[Fault(500)] * 10)  # any network call would now fail loudly
    rerun = make_client(fault_server, cache=cache_path, max_retries=0)
    assert [rerun.complete(p) for p in prompts] == answers
    assert fault_server.state.requests == []
    assert rerun.cache is not None and rerun.cache.hits == 3
    assert rerun.usage == Usage(
        calls=3,
        cache_hits=3,
        prompt_tokens=first.usage.prompt_tokens,
        completion_tokens=first.usage.completion_tokens,
    )


def test_cache_key_includes_parameters(fault_server: FaultServer, tmp_path) -> None:
    client = make_client(fault_server, cache=tmp_path / "c.sqlite")
    client.complete(HELLO)
    client.complete(HELLO, temperature=0.7)
    client.complete(HELLO, max_tokens=5)
    client.complete(HELLO)
    assert len(fault_server.state.chat_requests) == 3
    assert client.usage.cache_hits == 1


def test_failures_are_not_cached(fault_server: FaultServer, tmp_path) -> None:
    fault_server.state.push(Fault(500))
    client = make_client(fault_server, cache=tmp_path / "c.sqlite", max_retries=0)
    with pytest.raises(LLMUnavailableError):
        client.complete(HELLO)
    assert client.complete(HELLO) == "echo: hello there"


# ---- async ------------------------------------------------------------------------------------


def test_async_concurrency_limit_holds(fault_server: FaultServer) -> None:
    fault_server.state.push(*[Fault(delay=0.2)] * 12)
    client = make_client(fault_server, concurrency=3)

    async def run() -> list[str]:
        return await asyncio.gather(
            *(client.acomplete([{"role": "user", "content": f"q{n}"}]) for n in range(12))
        )

    started = time.monotonic()
    answers = asyncio.run(run())
    elapsed = time.monotonic() - started
    assert answers == [f"echo: q{n}" for n in range(12)]
    assert fault_server.state.max_in_flight == 3  # never more, and it did run in parallel
    assert elapsed >= 0.2 * 12 / 3
    assert client.usage.calls == 12


def test_async_retries_and_scopes_per_task(fault_server: FaultServer) -> None:
    fault_server.state.push(Fault(429, headers={"Retry-After": "0.05"}))
    client = make_client(fault_server, concurrency=4)

    async def episode(n: int) -> Usage:
        with client.scope(f"episode-{n}") as scope:
            for _ in range(n):
                await client.acomplete([{"role": "user", "content": f"episode {n}"}])
        return scope.usage

    async def run() -> list[Usage]:
        return await asyncio.gather(*(episode(n) for n in (1, 2, 3)))

    usages = asyncio.run(run())
    assert [u.calls for u in usages] == [1, 2, 3]
    assert client.usage.retries == 1
    # A second event loop works too (the async SDK client is rebuilt for it).
    assert asyncio.run(client.acomplete(HELLO)) == "echo: hello there"


def test_async_errors_match_sync(fault_server: FaultServer) -> None:
    client = OpenAIClient("no-such-model", fault_server.base_url, fault_server.api_key)
    with pytest.raises(LLMModelNotFoundError):
        asyncio.run(client.acomplete(HELLO))
    fault_server.state.push(Fault(500), Fault(500))
    flaky = make_client(fault_server, max_retries=1, backoff_base=0.01)
    with pytest.raises(LLMUnavailableError, match="after 2 attempts"):
        asyncio.run(flaky.acomplete(HELLO))


# ---- JSON through the client ------------------------------------------------------------------


def test_complete_json_reasks_through_the_client(fault_server: FaultServer) -> None:
    fault_server.state.push(
        Fault(text="Sure, the keywords are apple."), Fault(text='```json\n{"k": ["apple"]}\n```')
    )
    client = make_client(fault_server)
    assert complete_json(client, HELLO) == {"k": ["apple"]}
    reask = fault_server.state.chat_requests[1]["body"]["messages"]
    assert [m["role"] for m in reask] == ["user", "assistant", "user"]


def test_complete_json_failure_is_an_output_error(fault_server: FaultServer) -> None:
    fault_server.state.default_text = "I cannot do JSON."
    with pytest.raises(LLMOutputError, match="fault-model gave no usable JSON after 2 tries"):
        complete_json(make_client(fault_server), HELLO)


# ---- models and embeddings --------------------------------------------------------------------


def test_list_models(fault_server: FaultServer) -> None:
    endpoint = Endpoint.resolve(fault_server.base_url, None, fault_server.api_key, require_model=False)
    assert list_models(endpoint) == ["fault-model"]
    with pytest.raises(LLMAuthError):
        list_models(Endpoint.resolve(fault_server.base_url, None, "bad", require_model=False))


def test_embedder_returns_unit_float32_rows_in_order(fault_server: FaultServer) -> None:
    embedder = OpenAIEmbedder(fault_server.model, fault_server.base_url, fault_server.api_key, batch_size=2)
    texts = ["heat the apple", "cool the mug", "", "heat the apple"]
    vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (4, EMBED_DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert np.allclose(vectors[0], vectors[3]) and not np.allclose(vectors[0], vectors[1])
    assert embedder.dim == EMBED_DIM and embedder.name == "openai:fault-model"
    assert len(fault_server.state.requests) == 2  # batches of two
    assert embedder.embed([]).shape == (0, EMBED_DIM)


def test_embedder_dim_is_probed_lazily(fault_server: FaultServer) -> None:
    embedder = OpenAIEmbedder(fault_server.model, fault_server.base_url, fault_server.api_key)
    assert fault_server.state.requests == []
    assert embedder.dim == EMBED_DIM
    assert len(fault_server.state.requests) == 1


def test_embedder_retries_and_fails_as_embedding_error(fault_server: FaultServer) -> None:
    fault_server.state.push(Fault(429, headers={"Retry-After": "0"}))
    embedder = OpenAIEmbedder(fault_server.model, fault_server.base_url, fault_server.api_key, sleep=Sleeps())
    assert embedder.embed(["x"]).shape == (1, EMBED_DIM)
    assert embedder.meter.total.retries == 1
    with pytest.raises(EmbeddingError, match="refused the API key"):
        OpenAIEmbedder(fault_server.model, fault_server.base_url, "bad").embed(["x"])
    with pytest.raises(EmbeddingError, match="MEMP_EMBED_MODEL"):
        OpenAIEmbedder(None, fault_server.base_url, fault_server.api_key)
    fault_server.state.push(Fault(raw="garbage"), Fault(raw="garbage"))
    flaky = OpenAIEmbedder(
        fault_server.model, fault_server.base_url, fault_server.api_key, max_retries=1, sleep=Sleeps()
    )
    with pytest.raises(EmbeddingError, match="after 2 attempts"):
        flaky.embed(["x"])


def test_threads_share_the_concurrency_limit(fault_server: FaultServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fault_server.state.push(*[Fault(delay=0.15)] * 8)
    client = make_client(fault_server, concurrency=2)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: client.complete([{"role": "user", "content": f"t{n}"}]), range(8)))
    assert answers == [f"echo: t{n}" for n in range(8)]
    assert fault_server.state.max_in_flight == 2
    assert client.usage.calls == 8


def test_retries_before_a_permanent_error_are_counted(fault_server: FaultServer) -> None:
    fault_server.state.push(Fault(503))
    client = OpenAIClient(fault_server.model, fault_server.base_url, "wrong-key", sleep=Sleeps())
    with pytest.raises(LLMAuthError):
        client.complete(HELLO)
    assert client.usage.retries == 1 and client.usage.calls == 0


def test_public_names_resolve() -> None:
    import memp.llm

    for name in memp.llm.__all__:
        assert getattr(memp.llm, name) is not None
    with pytest.raises(AttributeError):
        memp.llm.NoSuchThing  # noqa: B018
