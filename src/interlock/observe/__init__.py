"""Metrics now; tracing and drift statistics arrive with the observability issue."""

from .metrics import Metrics

__all__ = ["Metrics"]
