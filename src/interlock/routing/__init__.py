"""Model groups, selection strategies, health and circuit breaking, retries and fallbacks."""

from .circuit import CircuitBreaker, CircuitState
from .router import DeploymentRuntime, GroupRuntime, Router

__all__ = ["CircuitBreaker", "CircuitState", "DeploymentRuntime", "GroupRuntime", "Router"]
