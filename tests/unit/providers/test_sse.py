from __future__ import annotations

from interlock.providers.sse import SseDecoder


def test_sse_decoder_handles_split_lines_crlf_comments_and_multiline_data() -> None:
    d = SseDecoder()
    assert d.feed(b'data: {"a"') == []
    assert d.feed(b":1}\n\n: keep-alive comment\n\nevent: x\r\ndata: one\r\ndata: two\r\n\r\n") == [
        b'{"a":1}',
        b"one\ntwo",
    ]
    assert d.feed(b"data: [DONE]") == []
    assert d.finish() == [b"[DONE]"]  # the last event had no blank line after it


def test_events_decodes_lazily_what_feed_decodes_at_once() -> None:
    chunk = b"".join(b"data: e%d\n\n" % i for i in range(200)) + b"data: part"
    lazy, eager = SseDecoder(), SseDecoder()
    events = lazy.events(chunk)
    assert next(events) == b"e0"  # the first payload, the other 199 not decoded yet
    assert [b"e0", *events] == eager.feed(chunk) == [b"e%d" % i for i in range(200)]
    assert lazy.feed(b"ial\n\n") == eager.feed(b"ial\n\n") == [b"partial"]
