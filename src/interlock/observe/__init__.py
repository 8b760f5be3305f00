"""Observability: Prometheus metrics (`metrics`), the telemetry stage that reads what deployments
generate (`stage`: finish reasons, time to first token, inter-token latency, logprob confidence
and its sampling), OpenTelemetry traces (`tracing`, only when configured) and JSON logs (`logs`)."""

from .metrics import Metrics

__all__ = ["Metrics"]
