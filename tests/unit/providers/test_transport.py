from __future__ import annotations

import pytest

from interlock.providers.pool import parse_target
from interlock.providers.sse import SseDecoder
from interlock.providers.transport import RequestHeaders, status_error


def test_sse_decoder_handles_split_lines_crlf_comments_and_multiline_data() -> None:
    d = SseDecoder()
    assert d.feed(b'data: {"a"') == []
    assert d.feed(b":1}\n\n: keep-alive comment\n\nevent: x\r\ndata: one\r\ndata: two\r\n\r\n") == [
        b'{"a":1}',
        b"one\ntwo",
    ]
    assert d.feed(b"data: [DONE]") == []
    assert d.finish() == [b"[DONE]"]  # the last event had no blank line after it


def test_targets_are_parsed_once_into_what_goes_on_the_wire() -> None:
    t = parse_target("https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=1")
    assert (t.host, t.port, t.tls) == ("x.openai.azure.com", 443, True)
    assert t.path == b"/openai/deployments/d/chat/completions?api-version=1"
    assert t.host_header == b"x.openai.azure.com"
    assert parse_target("http://10.0.0.5:8000/v1/models").host_header == b"10.0.0.5:8000"
    with pytest.raises(ValueError):
        parse_target("ftp://host/x")


def test_headers_are_encoded_once_and_reject_line_breaks() -> None:
    h = RequestHeaders({"A": "1"}).with_({"B": "2"})
    assert h.encoded == b"A: 1\r\nB: 2\r\n"
    with pytest.raises(ValueError):
        RequestHeaders({"X": "a\r\nInjected: yes"})


@pytest.mark.parametrize(
    ("status", "retry_after", "expected", "retryable"),
    [
        (429, "3", 429, True),
        (503, None, 503, True),
        (504, None, 504, True),
        (500, None, 502, True),
        (404, None, 404, False),
    ],
)
def test_upstream_statuses_map_to_caller_statuses(
    status: int, retry_after: str | None, expected: int, retryable: bool
) -> None:
    err = status_error(status, b'{"error":{"message":"m"}}', retry_after, "dep")
    assert (err.status, err.retryable) == (expected, retryable)
    if retry_after:
        assert err.headers["retry-after"] == retry_after
