from __future__ import annotations

from interlock.cache.keys import cache_key, is_cacheable
from interlock.config import GroupCache
from interlock.pipeline.context import Endpoint

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def test_key_is_canonical_and_covers_what_changes_the_answer() -> None:
    k = cache_key("t", Endpoint.CHAT, BODY)
    reordered = {"temperature": 0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert cache_key("t", Endpoint.CHAT, reordered) == k
    assert cache_key("t", Endpoint.CHAT, {**BODY, "user": "alice"}) == k  # does not change the answer
    assert cache_key("other", Endpoint.CHAT, BODY) != k
    assert cache_key("t", Endpoint.COMPLETIONS, BODY) != k
    assert cache_key("t", Endpoint.CHAT, {**BODY, "max_tokens": 5}) != k
    assert cache_key("t", Endpoint.CHAT, {**BODY, "stream": True}) != k


def test_only_deterministic_requests_by_default() -> None:
    policy = GroupCache()
    assert is_cacheable(policy, Endpoint.CHAT, BODY)
    assert is_cacheable(policy, Endpoint.CHAT, {"temperature": 0.7, "seed": 3})
    assert not is_cacheable(policy, Endpoint.CHAT, {"temperature": 0.7})
    assert not is_cacheable(policy, Endpoint.CHAT, {})  # OpenAI's default temperature is 1
    assert is_cacheable(policy, Endpoint.EMBEDDINGS, {})
    assert is_cacheable(GroupCache(mode="always"), Endpoint.CHAT, {})
    assert not is_cacheable(GroupCache(enabled=False), Endpoint.CHAT, BODY)
