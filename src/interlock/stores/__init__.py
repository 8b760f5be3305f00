"""Adapters to shared stores. Redis clients are made in one place, with the same limits."""

from .redis import redis_client

__all__ = ["redis_client"]
