"""`interlock migrate`: the PostgreSQL schema (API keys, the audit trail), created idempotently.

The statements are the stores' own (`security/keystore.py`, `security/audit.py`), which also run
them at start, so a gateway and a migration can never disagree about the schema. What this adds
is the shape a deployment needs from a migration step: it waits for the database to accept
connections (a Helm hook or a Container Apps job can start before the database does), then either
creates everything or fails with a non-zero status, so the release that runs it fails too.

There is no vector table: nothing in the gateway stores vectors in PostgreSQL yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from .security.audit import PostgresAuditStore
from .security.keystore import PostgresKeyStore

TABLES = ("api_keys", "audit_log")


class MigrationError(Exception):
    """The database could not be reached in time, or refused a statement; the message has no DSN."""


async def wait_for_database(
    connect: Callable[[], Awaitable[None]],
    wait_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Call `connect` until it succeeds or `wait_s` has passed; returns the attempts it took.

    Connection errors (refused, DNS, the server starting up) are retried every second; anything else
    (a wrong password, a missing database) is not going to change by waiting and fails at once.
    """
    deadline = clock() + wait_s
    attempt = 0
    last: Exception
    while True:
        attempt += 1
        try:
            await connect()
            return attempt
        except (OSError, TimeoutError, ConnectionError) as exc:
            last = exc
        except Exception as exc:  # asyncpg's errors: retried only while the server is starting up
            if type(exc).__name__ not in {"CannotConnectNowError", "ConnectionDoesNotExistError"}:
                raise MigrationError(f"the database refused the connection: {type(exc).__name__}") from None
            last = exc
        if clock() >= deadline:
            raise MigrationError(
                f"the database did not accept a connection within {wait_s:g} s ({attempt} attempts,"
                f" last: {type(last).__name__})"
            )
        await sleep(1.0)


async def migrate(dsn: str, wait_s: float = 60.0) -> tuple[str, ...]:
    """Create (or leave as they are) every table in the database at `dsn`; returns their names."""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    await wait_for_database(probe, wait_s)
    keys, audit = PostgresKeyStore(dsn), PostgresAuditStore(dsn)
    try:
        await keys.start()
        await audit.start()
    except asyncpg.PostgresError as exc:
        raise MigrationError(f"a schema statement failed: {type(exc).__name__}: {exc}") from None
    finally:
        await keys.close()
        await audit.close()
    return TABLES
