from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from interlock.errors import Forbidden
from interlock.observe.metrics import Metrics
from interlock.pipeline.context import RequestContext
from interlock.security.dlp import DlpStage, Policy
from interlock.security.pii.detector import Entity, PatternDetector
from tests.support.context import context, reaches_the_rest


async def test_a_body_screened_clean_is_not_screened_again_and_one_with_findings_always_is() -> None:
    class Counting(PatternDetector):
        calls = 0

        def detect(self, text: str) -> list[Entity]:
            Counting.calls += 1
            return super().detect(text)

    policy = Policy("default", actions={"EMAIL": "block"}, default_class="internal")
    stage = DlpStage(Counting(memo=0), {"default": policy}, {}, None, Metrics(CollectorRegistry()))

    def ctx(text: str, requested: str | None = None) -> RequestContext:
        body = {
            "model": "m",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        }
        return context(body, raw_body=orjson.dumps(body), requested_class=requested)

    for requested in (None, None, "confidential"):  # the class is still worked out per request
        clean = ctx("Summarise the quarterly report.", requested)
        assert await reaches_the_rest(stage, clean)
        assert clean.protection.data_class == (requested or "internal") and clean.protection.screened
    assert Counting.calls == 2  # two texts, screened once
    for _ in range(2):
        with pytest.raises(Forbidden):
            await reaches_the_rest(stage, ctx("Write to jane.doe@example.com"))
    assert Counting.calls == 6  # a body with findings is screened every time
    for _ in range(2):
        await reaches_the_rest(stage, ctx("Keep <EMAIL_1> as it is"))  # token-shaped: rewritten, not remembered
    assert Counting.calls == 10
