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
