from __future__ import annotations

import math

import pytest

from interlock.observe.confidence import LogprobTally, strip_logprobs, with_logprobs


def test_confidence_is_mean_min_and_perplexity_of_token_logprobs() -> None:
    choices = [
        {"logprobs": {"content": [{"token": "a", "logprob": -0.5}, {"token": "b", "logprob": -1.5}]}},
        {"logprobs": None},
        {"logprobs": {"content": [{"token": "c", "logprob": -1.0}], "refusal": None}},
    ]
    tally = LogprobTally()
    tally.add_choices(choices)
    conf = tally.result(sampled=True)
    assert conf is not None
    assert conf.tokens == 3 and conf.mean_logprob == pytest.approx(-1.0) and conf.min_logprob == -1.5
    assert conf.perplexity == pytest.approx(math.e)
    empty = LogprobTally()
    empty.add_choices([{"logprobs": None}])
    assert empty.result(sampled=False) is None
    huge = LogprobTally()
    huge.add_choices([{"logprobs": {"content": [{"logprob": -9999.0}]}}])
    assert huge.result(False) is not None  # no overflow


def test_stripping_sets_logprobs_back_to_null_and_asking_adds_them() -> None:
    choices = [{"index": 0, "logprobs": {"content": []}, "finish_reason": "stop"}, {"index": 1, "logprobs": None}]
    assert strip_logprobs(choices)
    assert choices == [{"index": 0, "logprobs": None, "finish_reason": "stop"}, {"index": 1, "logprobs": None}]
    assert not strip_logprobs(choices)
    body = {"model": "m", "messages": []}
    assert with_logprobs(body) == {"model": "m", "messages": [], "logprobs": True, "top_logprobs": 0}
    assert body == {"model": "m", "messages": []}  # the caller's request is not touched
