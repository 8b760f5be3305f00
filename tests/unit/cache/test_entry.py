from __future__ import annotations

from interlock.cache.entry import CachedAnswer, decode, encode


def test_entries_round_trip_and_garbage_is_a_miss() -> None:
    answer = CachedAnswer("sse", events=[b'{"a":1}', b'{"b":2}'])
    assert decode(encode(answer)) == answer
    assert decode(b"\x00garbage") is None
