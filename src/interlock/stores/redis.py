"""One way to make a Redis client: a blocking pool with a bound, and timeouts in milliseconds.

redis-py's default async pool raises as soon as `max_connections` are in use. Under load that made
rate-limit checks fail instantly and fall back to per-process counting (measured: 98% of checks
at 64 connections). A blocking pool makes a request wait for a connection instead, up to the same
timeout as a command. hiredis, when installed, parses replies in C.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

MAX_CONNECTIONS = 256


def redis_client(url: str, timeout_s: float, max_connections: int = MAX_CONNECTIONS) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,  # how long to wait for a free connection
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        # No retries inside redis-py: each tier decides what a failure means (degrade, fall back,
        # fail closed) within its own time budget.
        retry=Retry(NoBackoff(), 0),
    )
    # from_pool: the client owns the pool, so its aclose() disconnects the sockets too (with
    # Redis(connection_pool=pool) they stayed open until the process ended).
    return Redis.from_pool(pool)
