from __future__ import annotations

import pytest

from interlock.errors import (
    BadRequest,
    Forbidden,
    ModelNotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    StreamBroken,
    StreamTimedOut,
    Unauthorized,
    Unavailable,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    error_class,
)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (BadRequest("bad"), "client"),
        (ModelNotFound("no such model"), "client"),
        (PayloadTooLarge("big"), "client"),
        (Unauthorized("who"), "client"),
        (UpstreamRejected(400, b"{}"), "client"),
        (UpstreamRejected(401, b"{}"), "upstream"),
        (UpstreamError("500"), "upstream"),
        (StreamBroken("cut"), "upstream"),
        (Unavailable("circuits open"), "upstream"),
        (Overloaded("queue full"), "upstream"),
        (UpstreamRateLimited("deployment x is rate limited"), "upstream"),
        (UpstreamTimeout("slow"), "timeout"),
        (StreamTimedOut("quiet"), "timeout"),
        (Forbidden("not this model"), "policy"),
        (Forbidden("blocked", code="dlp_blocked"), "policy"),
        (Unavailable("detection failed", code="dlp_unavailable"), "policy"),
        (RateLimited("rate limit reached for this key"), "policy"),
        (RateLimited("budget", code="budget_exceeded"), "policy"),
        (RuntimeError("a bug"), "internal"),
    ],
)
def test_every_error_has_one_class(exc: BaseException, kind: str) -> None:
    assert error_class(exc) == kind
