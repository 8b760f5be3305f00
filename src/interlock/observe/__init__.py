"""Observability: Prometheus metrics (`metrics`), the telemetry stage that reads what deployments
generate (`stage`: finish reasons, time to first token, inter-token latency, logprob confidence
and its sampling), OpenTelemetry traces (`tracing`, only when configured) and JSON logs (`logs`).
Alerts: rolling request statistics per group and version (`window`), rules evaluated into
transitions (`alerts`), webhooks (`notify`), the retraining trigger (`retrain`) and the runtime
that ties them together and answers the rollout controller's `breaches()` (`alerting`)."""

from .metrics import Metrics

__all__ = ["Metrics"]
