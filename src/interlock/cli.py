"""Command line: parses arguments and calls into the package."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .errors import ConfigError
from .observe import logs
from .observe.tracing import check_available
from .security.roles import DATA_CLASSES

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _load(path: str | None) -> Settings | None:
    try:
        settings = load_settings(path)
        check_available(settings.telemetry)
        return settings
    except ConfigError as exc:
        print(f"interlock: invalid configuration: {exc}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import CONFIG_ENV

    settings = _load(args.config)
    if settings is None:
        return 2
    server = settings.server
    host = args.host or server.host
    port = args.port or server.port
    workers = args.workers or server.workers
    if not settings.security.enabled and host not in LOOPBACK:
        print(
            f"interlock: refusing to serve on {host} without authentication; configure security.keys or "
            "security.oidc, or bind 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    if args.config:
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
    else:
        os.environ.pop(CONFIG_ENV, None)
    metrics_dir: str | None = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its samples here; /metrics in any worker merges them all. A fresh
        # directory per start, so samples of an earlier run are never merged into this one.
        metrics_dir = tempfile.mkdtemp(prefix="interlock-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    logs.configure(server.log_level)
    uvicorn.run(
        "interlock.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=server.log_level,
        log_config=logs.uvicorn_log_config(),
        timeout_graceful_shutdown=10,
    )
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _keys(args: argparse.Namespace) -> int:
    from .app import make_key_store, roles_table
    from .security.keyadmin import NewKey, UnknownRole, create_key

    settings = _load(args.config)
    if settings is None:
        return 2
    store = make_key_store(settings.security)
    if store is None:
        print("interlock: security.keys is not configured in this file", file=sys.stderr)
        return 2
    secret = (settings.security.server_secret or "").encode()

    async def run() -> int:
        await store.start()
        try:
            if args.action == "create":
                spec = NewKey(
                    name=args.name, tenant=args.tenant, roles=args.role or ["user"], models=args.model or [],
                    max_class=args.max_class, rpm=args.rpm, tpm=args.tpm, budget=args.budget,
                    max_tokens=args.max_tokens, expires_in_days=args.expires_in_days,
                )  # fmt: skip
                try:
                    key, record = await create_key(store, secret, spec, roles_table(settings.security))
                except UnknownRole as exc:
                    print(f"interlock: {exc}", file=sys.stderr)
                    return 2
                print(json.dumps({"key": key, **record.public()}))
                print("Store the key now: it is not kept and cannot be shown again.", file=sys.stderr)
            elif args.action == "list":
                for record in await store.list():
                    print(json.dumps(record.public()))
            else:
                if not await store.revoke(args.id, time.time()):
                    print(f"interlock: no active key with id {args.id}", file=sys.stderr)
                    return 1
                print(json.dumps({"id": args.id, "revoked": True}))
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def _audit(args: argparse.Namespace) -> int:
    from .app import make_audit_store
    from .security.audit import verify

    settings = _load(args.config)
    if settings is None:
        return 2
    store = make_audit_store(settings)
    if store is None:
        print("interlock: audit is not configured in this file", file=sys.stderr)
        return 2

    async def fetch() -> list[Any]:
        try:
            await store.start()
            return await store.fetch_all()
        finally:
            await store.close()

    records = asyncio.run(fetch())
    if args.action == "verify":
        checked, problem, _ = verify(records)
        if problem is not None:
            print(f"BROKEN after {checked} record(s): {problem}")
            return 1
        print(f"ok: {checked} record(s), chain intact")
        return 0
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115 - stdout is not ours to close
    try:
        for r in records:
            line = {"seq": r.seq, "ts": r.ts, "event": json.loads(r.event), "prev_hash": r.prev_hash, "hash": r.hash}
            out.write(json.dumps(line) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.file)
        check_available(settings.telemetry)
    except ConfigError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    deployments = sum(len(g.deployments) for g in settings.models)
    print(f"ok: {len(settings.models)} model group(s), {deployments} deployment(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interlock", description="OpenAI-compatible LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway (the embedded model when no config is given)")
    serve.add_argument("--config", "-c", help="YAML config file")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 4000)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port")
    serve.set_defaults(func=_serve)
    keys = sub.add_parser("keys", help="create, list or revoke API keys in the configured key store")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--name", required=True)
    create.add_argument("--tenant", default="default")
    create.add_argument("--role", action="append", help="repeatable; default: user")
    create.add_argument("--model", action="append", help="a model group it may call; repeatable; default: all")
    create.add_argument("--max-class", default="internal", choices=DATA_CLASSES)
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--budget", type=float)
    create.add_argument("--max-tokens", type=int, help="cap on what one request may ask to generate")
    create.add_argument("--expires-in-days", type=float)
    keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    for p in (create, keys_sub.choices["list"], revoke):
        p.add_argument("--config", "-c", required=True, help="the config file naming the key store")
    keys.set_defaults(func=_keys)
    audit = sub.add_parser("audit", help="verify the audit chain or export it as JSON Lines")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    audit_verify = audit_sub.add_parser("verify", help="name the first record edited, deleted or reordered")
    audit_export = audit_sub.add_parser("export", help="write every record as JSON Lines")
    audit_export.add_argument("--out", help="file to write (default: standard output)")
    for p in (audit_verify, audit_export):
        p.add_argument("--config", "-c", required=True, help="the config file naming the audit store")
    audit.set_defaults(func=_audit)
    check = sub.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("file")
    check.set_defaults(func=_check_config)
    args = parser.parse_args(argv)
    return int(args.func(args))
