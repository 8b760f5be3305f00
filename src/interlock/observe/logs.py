"""Structured JSON logs: one JSON object a line, for our records and for uvicorn's.

Log lines carry no prompt or answer text. The opt-in request log (`server.request_log`) writes one
line per request with what the audit trail holds; `redacted` adds the request's text as it left
the DLP stage (masked, redacted, tokenized), and is only allowed when DLP is configured.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

SHARED: list[Any] = [
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(level: str) -> None:
    """Route the standard library's logging (ours, uvicorn's) through structlog's JSON renderer."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    structlog.configure(
        processors=[*SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def uvicorn_log_config() -> dict[str, Any]:
    """Uvicorn installs its own handlers unless told otherwise; keep ours."""
    return {"version": 1, "disable_existing_loggers": False}


def request_text(body: dict[str, Any]) -> list[str]:
    """The request's text as forwarded (after DLP), for the `redacted` request log."""
    out: list[str] = []
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            out.append(content)
    for name in ("prompt", "input"):
        if isinstance(body.get(name), str):
            out.append(body[name])
    return out
