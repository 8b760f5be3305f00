"""Command line: parses arguments and calls into the package."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .config import load_settings
from .errors import ConfigError


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import CONFIG_ENV

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"interlock: invalid configuration: {exc}", file=sys.stderr)
        return 2
    server = settings.server
    host = args.host or server.host
    port = args.port or server.port
    workers = args.workers or server.workers
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
    logging.basicConfig(
        level=server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
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
        timeout_graceful_shutdown=10,
    )
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.file)
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
    check = sub.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("file")
    check.set_defaults(func=_check_config)
    args = parser.parse_args(argv)
    return int(args.func(args))
