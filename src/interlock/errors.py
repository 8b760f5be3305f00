"""One exception tree. Each class knows its HTTP status and its OpenAI error body.

Messages are written for the caller and never carry request content, keys or secrets: a
message names the field or the model, not the value that was sent.
"""

from __future__ import annotations

import orjson


class InterlockError(Exception):
    """Base of every error the gateway turns into an HTTP response."""

    status: int = 500
    type: str = "api_error"
    code: str | None = None
    # Whether the router may try again (another attempt or another deployment).
    retryable: bool = False
    # Whether this failure says the deployment is unhealthy (counts toward its circuit breaker).
    health_failure: bool = True

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.headers: dict[str, str] = headers or {}
        if retry_after is not None:
            self.headers["retry-after"] = str(max(1, round(retry_after)))

    def body(self) -> bytes:
        return orjson.dumps(
            {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        )


class BadRequest(InterlockError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(InterlockError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(InterlockError):
    status = 403
    type = "permission_denied"
    code = "forbidden"


class NotFound(InterlockError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(InterlockError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class Conflict(InterlockError):
    """The action does not apply to the resource's current state (resume a running rollout, ...)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class PayloadTooLarge(InterlockError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(InterlockError):
    """The client took too long to send its request's headers or body (the HTTP server's timeouts)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class HeadersTooLarge(InterlockError):
    """The request's header block is larger, or has more fields, than the HTTP server takes."""

    status = 431
    type = "invalid_request_error"
    code = "headers_too_large"


class RateLimited(InterlockError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    retryable = True


class UpstreamRateLimited(RateLimited):
    """A backend answered 429: the same answer to the caller as our own limits, another cause."""


class UpstreamError(InterlockError):
    """The upstream failed in a way that retrying elsewhere may fix (connect error, 5xx)."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"
    retryable = True


class Unavailable(InterlockError):
    """No deployment can take the request now: queues full, circuits open, nothing healthy."""

    status = 503
    type = "service_unavailable"
    code = "service_unavailable"
    retryable = True


class Overloaded(Unavailable):
    """A deployment's queue is full. Load, not ill health: it does not open the circuit."""

    code = "queue_full"
    health_failure = False


class UpstreamTimeout(InterlockError):
    status = 504
    type = "timeout"
    code = "upstream_timeout"
    retryable = True


class UpstreamRejected(InterlockError):
    """The upstream answered with a client error (4xx other than 429): passed through as is.

    Not retried: another deployment of the same model would reject the same request.
    """

    type = "invalid_request_error"

    def __init__(self, status: int, body: bytes, message: str = "upstream rejected the request") -> None:
        super().__init__(message)
        self.status = status
        self.raw_body = body

    def body(self) -> bytes:
        try:
            parsed = orjson.loads(self.raw_body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return self.raw_body
        return super().body()


class ConfigError(Exception):
    """Configuration is invalid; the message names the key path and what was expected."""


class StreamBroken(UpstreamError):
    """The upstream stream ended or failed after events had been sent to the caller."""

    code = "stream_broken"
    retryable = False


class StreamTimedOut(StreamBroken):
    """A stream whose upstream went quiet for longer than the deployment's timeout, part way.

    The caller sees what any broken stream shows; only the metrics tell a timeout apart."""


# Error classes for metrics and traces: a fixed set, so a label never grows with what clients send.
CLIENT, UPSTREAM, TIMEOUT, POLICY, INTERNAL = "client", "upstream", "timeout", "policy", "internal"
ERROR_CLASSES = (CLIENT, UPSTREAM, TIMEOUT, POLICY, INTERNAL)
_POLICY_CODES = frozenset({"rate_limit_exceeded", "budget_exceeded", "dlp_blocked", "dlp_unavailable"})
_BAD_REQUEST_STATUSES = frozenset({400, 413, 422})


def error_class(exc: BaseException) -> str:
    """Which class an error belongs to: the one place that maps this tree onto the metric labels.

    - policy: our own refusals by rule: Forbidden (a model or data class the identity may not
      use, a DLP block), our rate limits and budgets, DLP failing closed.
    - timeout: an upstream past its timeout, before or during a stream.
    - upstream: the backend failed or could not be reached (5xx, connection errors, a broken
      stream, open circuits, full queues), was rate limited, or refused us for a reason that is
      not the request's (401, 403, 404 from the backend: our credentials or configuration).
    - client: the request was wrong: our validation (400, 404, 405, 413), authentication (401),
      or the backend rejecting the request itself (400, 413, 422).
    - internal: anything else is a bug of ours.
    """
    if not isinstance(exc, InterlockError):
        return INTERNAL
    if isinstance(exc, UpstreamTimeout | StreamTimedOut):
        return TIMEOUT
    if isinstance(exc, UpstreamRateLimited):
        return UPSTREAM
    if isinstance(exc, Forbidden) or exc.code in _POLICY_CODES:
        return POLICY
    if isinstance(exc, UpstreamRejected):
        return CLIENT if exc.status in _BAD_REQUEST_STATUSES else UPSTREAM
    if isinstance(exc, UpstreamError | Unavailable | RateLimited):
        return UPSTREAM
    if exc.status < 500:
        return CLIENT
    return INTERNAL
