from __future__ import annotations

import asyncio

from interlock.app import build
from interlock.config import parse_settings
from interlock.observe.tracing import TracedStage, make_tracing


def test_without_tracing_configured_no_stage_is_wrapped() -> None:
    settings = parse_settings({"models": [{"name": "m", "deployments": [{"id": "d", "backend": "openai",
                                                                           "api_base": "http://127.0.0.1:9/v1"}]}]})  # fmt: skip
    assert make_tracing(settings.telemetry) is None
    gateway = build(settings)
    pipeline = gateway._inference._pipeline  # the hot path as built
    stages = pipeline.stages
    assert stages and pipeline.traced_stages is stages and not any(isinstance(s, TracedStage) for s in stages)
    assert type(stages[-1]).__name__ == "TelemetryStage"  # innermost: inside the cache
    asyncio.run(gateway._on_shutdown())


def test_a_rollouts_abort_becomes_an_alert_for_the_webhooks() -> None:
    from interlock.app import rollout_alert
    from interlock.observe.alerts import State
    from interlock.rollout.controller import Event

    event = Event(kind="alert", model="chat", at=100.0, message="error_rate 0.2 > 0.05", severity="critical",
                  candidate="v2")  # fmt: skip
    alert = rollout_alert(event)
    assert (alert.model, alert.version, alert.state, alert.rule.name) == ("chat", "v2", State.FIRING, "RolloutAborted")
    assert alert.rule.labels["reason"] == "error_rate 0.2 > 0.05" and alert.rule.severity == "critical"


def test_drift_embeds_prompts_only_when_its_config_asks_even_with_an_embedding_service() -> None:
    def drift_embedder(embeddings: bool) -> object:
        settings = parse_settings(
            {
                "models": [{"name": "e", "deployments": [{"id": "e", "backend": "minilm"}]}],  # makes the service
                "drift": {"embeddings": embeddings},
            }
        )
        gateway = build(settings)
        embedder = gateway._admin._drift._embedder  # the drift monitor as built
        asyncio.run(gateway._on_shutdown())
        return embedder

    assert drift_embedder(False) is None
    assert drift_embedder(True) is not None
