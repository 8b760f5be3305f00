"""The inference handler as the ASGI app runs it: what a request is recorded as when it ends."""

from __future__ import annotations

from typing import Any

import orjson

from interlock.app import build
from interlock.config import parse_settings
from interlock.observe.metrics import Metrics

CONFIG = {
    "models": [{"name": "m", "deployments": [{"id": "d", "backend": "openai", "api_base": "http://127.0.0.1:9/v1"}]}]
}


async def run(app: Any, messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "query_string": b"", "headers": headers}
    await app(scope, receive, send)
    return sent


def requests(metrics: Metrics, status: str, model: str) -> float | None:
    labels = {"model": model, "endpoint": "chat/completions", "status": status, "cache": "none"}
    return metrics.registry.get_sample_value("interlock_requests_total", labels)


async def test_a_client_gone_while_its_body_was_read_is_a_client_closed_request_not_an_error() -> None:
    metrics = Metrics()
    app = build(parse_settings(CONFIG), metrics=metrics)
    part = {"type": "http.request", "body": b'{"model": "m", "mess', "more_body": True}
    sent = await run(app, [part, {"type": "http.disconnect"}], [])
    assert sent == []  # nobody to answer
    assert requests(metrics, "499", "_unknown") == 1
    assert metrics.registry.get_sample_value(
        "interlock_errors_total", {"model": "_unknown", "deployment": "_none", "version": "_none", "class": "internal"}
    ) is None  # fmt: skip


async def test_a_bad_header_is_counted_against_the_model_the_body_named() -> None:
    metrics = Metrics()
    app = build(parse_settings(CONFIG), metrics=metrics)
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    sent = await run(app, [{"type": "http.request", "body": body}], [(b"x-interlock-data-class", b"secret")])
    assert sent[0]["status"] == 400
    assert requests(metrics, "400", "m") == 1


def test_a_semantic_hit_names_itself_its_similarity_and_its_entry() -> None:
    from interlock.edge.inference import answer_headers
    from interlock.pipeline.context import SemanticMatch
    from tests.support.context import context

    ctx = context({"model": "m"})
    ctx.cache_status = "miss"
    assert dict(answer_headers(ctx))[b"x-interlock-cache"] == b"miss"
    ctx = context({"model": "m"})
    ctx.cache_status, ctx.semantic = "miss", SemanticMatch("abc123", 0.94163)
    headers = dict(answer_headers(ctx))
    assert headers[b"x-interlock-cache"] == b"semantic"
    assert headers[b"x-interlock-similarity"] == b"0.9416" and headers[b"x-interlock-semantic-entry"] == b"abc123"


def test_a_hit_names_its_cache_status_and_data_class_whether_made_once_or_not() -> None:
    from interlock.edge.inference import answer_headers
    from tests.support.context import context

    for status, data_class in (("hit", "confidential"), ("miss", "public"), ("stale", "internal")):
        ctx = context({"model": "m"})
        ctx.cache_status, ctx.protection.data_class = status, data_class
        assert answer_headers(ctx) == [
            (b"x-interlock-cache", status.encode()), (b"x-interlock-data-class", data_class.encode())
        ]  # fmt: skip
