from __future__ import annotations

import pytest

from interlock.edge.parse import cache_control, parse_body
from interlock.errors import BadRequest
from interlock.pipeline import Endpoint


def test_parse_body_keeps_unknown_fields_and_names_bad_params() -> None:
    data = parse_body(b'{"model":"m","messages":[{"role":"user","content":"x"}],"x_custom":1}', Endpoint.CHAT, None)
    assert data["x_custom"] == 1
    with pytest.raises(BadRequest) as err:
        parse_body(b'{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":5}', Endpoint.CHAT, None)
    assert err.value.param == "temperature"
    azure = parse_body(b'{"input":"hi"}', Endpoint.EMBEDDINGS, "my-deployment")
    assert azure["model"] == "my-deployment"


def test_cache_control_from_header_and_body() -> None:
    body = {"cache": {"no-store": True, "ttl": 30}}
    control = cache_control({b"cache-control": b"no-cache"}, body)
    assert (control.no_cache, control.no_store, control.ttl) == (True, True, 30)
    assert "cache" not in body  # not forwarded upstream
    assert cache_control({b"cache-control": b"max-age=7"}, {}).ttl == 7
    with pytest.raises(BadRequest):
        cache_control({}, {"cache": {"ttl": "soon"}})


def test_the_semantic_threshold_header_is_a_similarity_or_a_400() -> None:
    assert cache_control({b"x-interlock-semantic-threshold": b"0.97"}, {}).semantic_threshold == 0.97
    assert cache_control({}, {}).semantic_threshold is None
    for bad in (b"high", b"0", b"1.5", b"nan", b"-0.2"):
        with pytest.raises(BadRequest):
            cache_control({b"x-interlock-semantic-threshold": bad}, {})
