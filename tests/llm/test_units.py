"""Pieces that need no server: configuration, backoff, usage arithmetic, the cache file."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

pytest.importorskip("openai", reason="the LLM client needs the llm extra: pip install 'memp[llm]'")

from memp.llm.cache import CachedResponse, ResponseCache, cache_key
from memp.llm.endpoint import Endpoint, RetryPolicy, retry_after_seconds
from memp.llm.errors import LLMConfigError
from memp.llm.usage import Price, Usage, UsageMeter, call_cost, parse_prices, usage_scope

# ---- configuration ----------------------------------------------------------------------------


def test_nothing_configured_says_what_to_set() -> None:
    with pytest.raises(LLMConfigError, match="MEMP_LLM_BASE_URL"):
        Endpoint.resolve()


def test_environment_fills_the_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMP_LLM_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("MEMP_LLM_MODEL", "m")
    endpoint = Endpoint.resolve()
    assert endpoint == Endpoint("http://127.0.0.1:9/v1", "not-needed", "m")
    monkeypatch.setenv("OPENAI_API_KEY", "fallback")
    assert Endpoint.resolve().api_key == "fallback"
    monkeypatch.setenv("MEMP_LLM_API_KEY", "primary")
    assert Endpoint.resolve().api_key == "primary"
    assert Endpoint.resolve(api_key="arg", model="other").api_key == "arg"


def test_an_openai_key_alone_means_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    assert Endpoint.resolve(model="gpt-x").base_url == "https://api.openai.com/v1"


def test_missing_model_and_bad_url_are_config_errors() -> None:
    with pytest.raises(LLMConfigError, match="MEMP_LLM_MODEL"):
        Endpoint.resolve("http://127.0.0.1:9/v1")
    assert Endpoint.resolve("http://127.0.0.1:9/v1", require_model=False).model is None
    with pytest.raises(LLMConfigError, match="http://"):
        Endpoint.resolve("127.0.0.1:9/v1", "m")


# ---- backoff ----------------------------------------------------------------------------------


def test_backoff_grows_is_jittered_capped_and_seeded() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, seed=7)
    delays = [policy.delay(n) for n in range(6)]
    for n, delay in enumerate(delays):
        ceiling = min(8.0, 2**n)
        assert ceiling / 2 <= delay <= ceiling
    again, other = (
        RetryPolicy(base_delay=1.0, max_delay=8.0, seed=7),
        RetryPolicy(base_delay=1.0, max_delay=8.0, seed=8),
    )
    assert delays == [again.delay(n) for n in range(6)]
    assert delays != [other.delay(n) for n in range(6)]


def test_retry_after_wins_but_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_retry_after=10.0, seed=0)
    assert policy.delay(3, retry_after=2.5) == 2.5
    assert policy.delay(0, retry_after=999) == 10.0


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"retry-after": "soon"}) is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after_seconds({"retry-after": future}) <= 31  # type: ignore[operator]


# ---- usage ------------------------------------------------------------------------------------


def test_usage_adds_subtracts_and_serialises() -> None:
    a = Usage(calls=1, network_calls=1, prompt_tokens=10, completion_tokens=5, cost_usd=0.5)
    b = Usage(calls=2, cache_hits=2, prompt_tokens=20, completion_tokens=10)
    assert (a + b) - a == b
    assert (a + b).total_tokens == 45
    assert (a + b).to_dict()["total_tokens"] == 45


def test_prices() -> None:
    prices = parse_prices({"big": (2.0, 8.0), "small": {"prompt": 0.1, "completion": 0.4}})
    assert prices["small"] == Price(0.1, 0.4)
    assert call_cost("big", 1_000_000, 500_000, prices) == pytest.approx(6.0)
    assert call_cost("unknown", 10, 10, prices) == 0.0
    with pytest.raises(LLMConfigError, match="per million"):
        parse_prices({"bad": 3})


def test_scopes_nest_and_snapshots_diff() -> None:
    meter = UsageMeter()
    one = Usage(calls=1, prompt_tokens=3)
    meter.record(one)
    before = meter.total
    with meter.scope("experiment") as experiment:
        meter.record(one)
        with usage_scope("episode") as episode:
            meter.record(one)
        meter.record(one)
    meter.record(one)
    assert episode.usage == one
    assert experiment.usage == Usage(calls=3, prompt_tokens=9)
    assert meter.total - before == Usage(calls=4, prompt_tokens=12)


def test_parallel_tasks_are_charged_to_their_own_scope() -> None:
    meter = UsageMeter()

    async def episode(n: int) -> Usage:
        with meter.scope(f"episode-{n}") as scope:
            for _ in range(n):
                meter.record(Usage(calls=1))
                await asyncio.sleep(0)
        return scope.usage

    async def main() -> list[Usage]:
        return await asyncio.gather(*(episode(n) for n in (1, 2, 3)))

    assert [u.calls for u in asyncio.run(main())] == [1, 2, 3]
    assert meter.total.calls == 6


# ---- cache ------------------------------------------------------------------------------------


def test_cache_key_is_canonical() -> None:
    messages = [{"role": "user", "content": "hi"}]
    assert cache_key("m", messages, {"a": 1, "b": 2}) == cache_key("m", messages, {"b": 2, "a": 1})
    assert cache_key("m", messages, {"a": 1}) != cache_key("m2", messages, {"a": 1})
    assert cache_key("m", messages, {"a": 1}) != cache_key("m", messages, {"a": 2})


def test_cache_persists_and_counts(tmp_path) -> None:
    path = tmp_path / "sub" / "cache.sqlite"
    cache = ResponseCache(path)
    assert cache.get("k") is None
    cache.put("k", "m", CachedResponse("text", 3, 4, "stop"))
    cache.close()
    reopened = ResponseCache(path)
    assert reopened.get("k") == CachedResponse("text", 3, 4, "stop")
    assert (reopened.hits, reopened.misses, len(reopened)) == (1, 0, 1)


def test_a_damaged_cache_file_says_what_to_do(tmp_path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(Exception, match="--llm-cache"):
        ResponseCache(path)


@pytest.mark.parametrize("text", ["2.5", "a,b", "1,2,3", "-1,2", ""])
def test_llm_price_option_rejects_anything_but_two_prices(text: str) -> None:
    from memp.llm.options import parse_price

    with pytest.raises(LLMConfigError, match="--llm-price"):
        parse_price(text)


def test_llm_price_option_prices_the_resolved_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from memp.llm.options import client_from_options, parse_price

    monkeypatch.setenv("MEMP_LLM_MODEL", "from-env")
    assert parse_price(" 2.5, 10") == (2.5, 10.0) and parse_price(None) is None
    client = client_from_options("http://127.0.0.1:9/v1", price=parse_price("2.5,10"))
    assert client.prices == {"from-env": Price(2.5, 10.0)}
    client.close()
