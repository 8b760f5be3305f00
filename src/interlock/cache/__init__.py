"""Exact-match response cache: canonical keys, an in-process tier bounded in bytes, a Redis tier
shared by workers and replicas, and coalescing of identical requests in flight."""

from .coalesce import Coalescer
from .entry import CachedAnswer
from .keys import cache_key, is_cacheable
from .memory import MemoryCache
from .redis_tier import RedisTier
from .stage import CacheStage

__all__ = ["CacheStage", "CachedAnswer", "Coalescer", "MemoryCache", "RedisTier", "cache_key", "is_cacheable"]
