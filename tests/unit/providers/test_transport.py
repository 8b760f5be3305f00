from __future__ import annotations

import pytest

from interlock.providers.transport import RequestHeaders, status_error


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
