"""A gateway that writes everywhere it can (a redacted request log at debug level, metrics, the
audit trail, the cache, limits and the token vault in Redis), everything it wrote as text to search
for raw values, and the search itself, which also looks through JSON escapes and through the ways a
value can be written (invisible characters, fullwidth forms, separators)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
import yaml

from interlock.security.pii.normalize import normalize
from tests.support.procs import ROOT, Gateway, http_get

_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_SEPARATORS = re.compile(r"[\s.,/()+-]")


def writing_everywhere(tmp: Path, api_base: str, redis_url: str, dlp: dict[str, Any]) -> tuple[Gateway, Path]:
    """The gateway, with one model group `echo` at `api_base` and the DLP section `dlp`, and the
    path of its config (for `interlock audit export`)."""
    shared = {"url": redis_url, "timeout_ms": 500}
    config = {
        "models": [
            {"name": "echo", "cache": {"mode": "always"},
             "deployments": [{"id": "echo", "backend": "openai", "api_base": api_base, "max_class": "restricted"}]},
        ],
        "server": {"request_log": "redacted", "log_level": "debug"},
        "cache": {"redis": shared},
        "limits": {"redis": shared, "models": {"echo": {"rpm": 100000, "tpm": 100000000}}},
        "audit": {"sqlite_path": "audit.db"},
        "dlp": {"vault": {"redis": shared}, **dlp},
    }  # fmt: skip
    path = tmp / "interlock.yaml"
    path.write_text(yaml.safe_dump(config))
    return Gateway(tmp, config), path


def written(gw: Gateway, config: Path, tmp: Path, redis_url: str) -> dict[str, str]:
    """Each place the gateway writes to, as one text. Redis values are read as UTF-8 (the cache's
    msgpack holds the answer's JSON as it is), not as `repr`, which would hide non-ASCII text."""
    places = {"gateway log": gw.log(), "metrics": http_get(gw.url + "/metrics")[2].decode()}
    export = subprocess.run([sys.executable, "-m", "interlock", "audit", "export", "--config", str(config)],
                            capture_output=True, text=True, cwd=ROOT, check=True)  # fmt: skip
    places["audit"] = export.stdout
    spool = tmp / "interlock-audit.spool"
    places["spool"] = spool.read_text() if spool.exists() else ""
    client = redis.Redis.from_url(redis_url)
    try:
        lines = []
        for key in client.keys("*"):
            value = client.get(key) if client.type(key) == b"string" else b""
            lines.append(key.decode(errors="replace") + " " + (value or b"").decode(errors="replace"))
        places["redis"] = "\n".join(lines)
    finally:
        client.close()
    return places


def compact(text: str) -> str:
    """A text as the patterns see it (folded) without the separators people put in numbers, in
    lower case: the form in which a card number with zero-width spaces and dashes in it, and the
    same number in fullwidth digits, are one."""
    return _SEPARATORS.sub("", normalize(text).text).lower()


def leaked(haystack: str, values: Iterable[str]) -> list[str]:
    """The values found in `haystack`: as written, folded, or compacted (`compact`), also behind
    JSON's \\uXXXX escapes (structlog's JSON escapes non-ASCII text)."""
    plain = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), haystack)
    folded, compacted = normalize(plain).text, compact(plain)
    return [v for v in values if v in haystack or v in plain or normalize(v).text in folded or compact(v) in compacted]
