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
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings, load_settings
from .errors import ConfigError
from .observe import logs
from .observe.tracing import check_available
from .security.roles import DATA_CLASSES

if TYPE_CHECKING:
    from .observe.monitor import DriftMonitor

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
    code = 0
    if (args.http or server.http) == "native":
        from .app import create_app
        from .edge.server import run
        from .observe.metrics import choose_value_class

        def factory() -> Any:  # in each worker, after the fork
            choose_value_class()
            return create_app()

        code = run(factory, host, port, workers, server.limits, server.max_body_bytes)
    else:
        _uvicorn(host, port, workers, server.log_level)
    if metrics_dir is not None:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return code


def _uvicorn(host: str, port: int, workers: int, log_level: str) -> None:
    import uvicorn

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
        log_level=log_level,
        log_config=logs.uvicorn_log_config(),
        timeout_graceful_shutdown=10,
    )


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


def _drift(args: argparse.Namespace) -> int:
    """`drift baseline` builds a reference profile (from a JSON Lines file of past traffic, or from
    the live window in Redis) and writes it to a file and/or stores it in Redis, where every
    gateway picks it up; `drift report` compares a reference with the live window and writes the
    self-contained HTML page (or the JSON that GET /admin/drift returns)."""
    from .app import BLOB_TIMEOUT_MS, drift_monitor, section_redis
    from .observe.drift import Profile, compare, to_html

    settings = _load(args.config)
    if settings is None:
        return 2
    if settings.group(args.model) is None:
        print(f"interlock: no model group {args.model!r} in {args.config}", file=sys.stderr)
        return 2
    config = settings.drift
    client = None
    if config is not None and config.redis is not None:
        client = section_redis(config.redis, BLOB_TIMEOUT_MS)
    monitor = drift_monitor(settings, client) if config is not None else None
    needs_monitor = (args.action == "baseline" and (args.live or args.store)) or args.action == "report"
    if monitor is None and needs_monitor:
        print("interlock: this needs a `drift` section in the config (with `redis` for live windows)", file=sys.stderr)
        return 2

    async def with_monitor(work: Callable[[DriftMonitor], Awaitable[Any]]) -> Any:
        assert monitor is not None
        try:
            return await work(monitor)
        finally:
            await monitor.close()
            if client is not None:
                await client.aclose()

    if args.action == "baseline":
        if args.jsonl:
            embed = None
            if args.embeddings:
                from .embeddings.minilm import MiniLmEmbedder

                embed = MiniLmEmbedder().embed
            try:
                profile = Profile.from_jsonl(args.jsonl, embed)
            except (OSError, ValueError) as exc:
                print(f"interlock: cannot build a profile from {args.jsonl}: {exc}", file=sys.stderr)
                return 1
        else:
            profile = asyncio.run(with_monitor(lambda m: m.live(args.model, args.version)))
        if profile.n == 0:
            print("interlock: no observations: nothing to make a reference of", file=sys.stderr)
            return 1
        if args.out:
            Path(args.out).write_bytes(profile.to_bytes())
        if args.store:
            asyncio.run(with_monitor(lambda m: m.store_reference(args.model, profile)))
        where = " and ".join(w for w, on in ((args.out, bool(args.out)), ("Redis", args.store)) if on)
        print(f"ok: reference of {profile.n} observation(s) for {args.model}, written to {where or 'nowhere'}")
        return 0

    async def fetch(m: DriftMonitor) -> tuple[Profile | None, Profile]:
        return await m.reference(args.model), await m.live(args.model, args.version)

    reference, live = asyncio.run(with_monitor(fetch))
    if args.reference:
        reference = Profile.from_bytes(Path(args.reference).read_bytes())
    if reference is None:
        print(f"interlock: no reference for {args.model} (run `interlock drift baseline`)", file=sys.stderr)
        return 1
    if args.live_jsonl:
        live = Profile.from_jsonl(args.live_jsonl)
    report = compare(reference, live)
    if args.json:
        text = json.dumps(report.to_dict(), indent=2)
    else:
        title = f"Interlock drift report: {args.model}" + (f" {args.version}" if args.version else "")
        text = to_html(report, reference, live, title=title)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    drifted = ", ".join(report.drifted_features) or "none"
    print(f"{args.model}: {report.n_live} live vs {report.n_reference} reference; drifted: {drifted}", file=sys.stderr)
    return 0


def _admin_call(url: str, key: str | None, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One call to the gateway's admin API: (status, decoded JSON body)."""
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw or b"null")
        except ValueError:
            return err.code, {"error": {"message": raw.decode(errors="replace")}}


def format_status(status: dict[str, Any]) -> str:
    """What `interlock rollout status` prints: the phase, then per version weight, requests,
    error rate and P95 over the status window, then the last analysis verdict."""

    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [
        f"{status['model']}: {status['phase']}" + (f" ({status['reason']})" if status["reason"] else "")
        + f", step {status['step']} of {status['steps']}, shadow {status['shadow_percent']:g}%",
        f"{'version':<16} {'weight':>7} {'requests':>9} {'errors':>8} {'p95 ms':>9}   (last {status['window_s']:g} s)",
    ]  # fmt: skip
    for v in status["versions"]:
        error_rate = None if v["error_rate"] is None else 100 * v["error_rate"]
        lines.append(
            f"{v['version']:<16} {v['weight']:>6g}% {num(v['requests'], 'd'):>9} "
            f"{num(error_rate, '.2f') + ('%' if error_rate is not None else ''):>8} {num(v['p95_ms'], '.1f'):>9}"
        )
    verdict = status.get("last_verdict")
    if verdict:
        lines.append(f"last analysis: {verdict['phase']} at step {verdict['step']}: {verdict['message']}")
    else:
        lines.append("last analysis: none yet")
    for name, summary in (status.get("analysis") or {}).items():
        lines.append(f"  running {name}: {summary}")
    return "\n".join(lines)


def _rollout(args: argparse.Namespace) -> int:
    """Talks to a running gateway's admin API, so it goes through its authentication, its audit
    log and whatever store the gateway uses (Redis or SQLite), from any machine that reaches it."""
    import yaml

    key = args.key or os.environ.get("INTERLOCK_KEY")
    if args.action == "start":
        try:
            spec = yaml.safe_load(Path(args.spec).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            print(f"interlock: cannot read {args.spec}: {exc}", file=sys.stderr)
            return 2
        status, body = _admin_call(args.url, key, "POST", "/admin/rollouts", spec)
    elif args.action == "status":
        status, body = _admin_call(args.url, key, "GET", f"/admin/rollouts/{args.model}")
    else:
        status, body = _admin_call(args.url, key, "POST", f"/admin/rollouts/{args.model}/{args.action}")
    if status >= 400:
        message = (body or {}).get("error", {}).get("message", "") if isinstance(body, dict) else body
        print(f"interlock: HTTP {status}: {message}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2) if args.json else format_status(body))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from .migrate import MigrationError, migrate
    from .security.secrets import SecretError, SecretResolver, is_reference

    dsns: list[str] = []
    if args.dsn:
        try:
            dsns = [SecretResolver().resolve(args.dsn) if is_reference(args.dsn) else args.dsn]
        except SecretError as exc:
            print(f"interlock: --dsn: {exc}", file=sys.stderr)
            return 2
    else:
        settings = _load(args.config)
        if settings is None:
            return 2
        audit = settings.audit.postgres_dsn if settings.audit else None
        keys = settings.security.keys.postgres_dsn if settings.security.keys else None
        dsns = list(dict.fromkeys(d for d in (keys, audit) if d))
        if not dsns:
            print("interlock: the config names no PostgreSQL database (security.keys, audit)", file=sys.stderr)
            return 2
    for dsn in dsns:
        try:
            tables = asyncio.run(migrate(dsn, args.wait))
        except MigrationError as exc:
            print(f"interlock: migration failed: {exc}", file=sys.stderr)
            return 1
        print(json.dumps({"migrated": list(tables)}))
    return 0


def _plan(args: argparse.Namespace) -> int:
    import msgspec
    import yaml

    from .capacity import Costs, Prices, Workload, format_plan, plan

    try:
        costs = msgspec.json.decode(Path(args.costs).read_bytes(), type=Costs)
        raw: dict[str, Any] = yaml.safe_load(Path(args.prices).read_text(encoding="utf-8")) if args.prices else {}
        for item in args.price or []:
            key, _, value = item.partition("=")
            raw[key.strip().replace("-", "_")] = float(value)
        prices = msgspec.convert(raw, Prices)
        workload = Workload(
            qps=args.qps, hit_rate=args.hit_rate, prompt_tokens=args.prompt_tokens, answer_tokens=args.answer_tokens
        )
    except (OSError, ValueError, yaml.YAMLError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        print(f"interlock: plan: {exc}", file=sys.stderr)
        return 2
    result = plan(workload, costs, prices)
    print(msgspec.json.encode(result).decode() if args.json else format_plan(workload, costs, prices, result))
    return 0


def _embeddings(args: argparse.Namespace) -> int:
    """Warm the precomputed embeddings in Redis, where every gateway process finds them."""
    import msgspec

    from .app import embedding_service
    from .embeddings.warm import read_queries
    from .lifecycle import Lifecycle
    from .observe.metrics import Metrics

    settings = _load(args.config)
    if settings is None:
        return 2
    config = settings.embeddings
    if config.store is None or config.store.redis is None:
        print(
            "interlock: warming needs embeddings.store.redis in the config (the gateways read the vectors from "
            "there); without Redis, set embeddings.warm_file and each gateway warms itself at start",
            file=sys.stderr,
        )
        return 2
    path = Path(args.file)
    if not path.is_file():
        print(f"interlock: no such file: {path}", file=sys.stderr)
        return 2

    async def run() -> tuple[int, int]:
        life = Lifecycle()
        service = life.add(*embedding_service(msgspec.structs.replace(config, warm_file=None), Metrics(), life))
        await life.start()
        try:
            return await service.warm(read_queries(path))
        finally:
            await life.close()

    started = time.perf_counter()
    try:
        stored, failed = asyncio.run(run())
    except ValueError as exc:  # a malformed line: read_queries names it
        print(f"interlock: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"warmed {stored} distinct queries in {seconds:.1f} s into {config.store.redis.url}")
    if failed:
        print(f"interlock: Redis did not take {failed} of them", file=sys.stderr)
        return 1
    return 0


def _ingest(args: argparse.Namespace) -> int:
    """Every file under a directory into a vector store, with a progress bar on stderr."""
    from .app import ingest_directory

    settings = _load(args.config)
    if settings is None:
        return 2
    directory = Path(args.dir)
    if not directory.is_dir():
        print(f"interlock: no such directory: {directory}", file=sys.stderr)
        return 2
    try:
        store_id, counts = asyncio.run(ingest_directory(settings, directory, args.store, args.tenant, sys.stderr))
    except ConfigError as exc:
        print(f"interlock: {exc}", file=sys.stderr)
        return 2
    print(f"{store_id}: {counts.completed} completed, {counts.failed} failed")
    return 1 if counts.failed else 0


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
    # One BLAS thread for numpy (the embedder): with two, a sampled embedding took 1.5-7 times
    # longer on this 2-core machine, and it competes with the event loop. numpy reads it once, at
    # import, which happens when the package is imported, before this runs: interlock/__init__.py
    # sets the default.
    parser = argparse.ArgumentParser(prog="interlock", description="OpenAI-compatible LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway (the embedded model when no config is given)")
    serve.add_argument("--config", "-c", help="YAML config file")
    serve.add_argument("--host", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 4000)")
    serve.add_argument("--workers", type=int, help="worker processes sharing the port")
    serve.add_argument("--http", choices=("native", "uvicorn"), help="the HTTP server (default: server.http, native)")
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
    drift = sub.add_parser("drift", help="reference profiles and drift reports")
    drift_sub = drift.add_subparsers(dest="action", required=True)
    baseline = drift_sub.add_parser("baseline", help="build a reference profile from past or live traffic")
    source = baseline.add_mutually_exclusive_group(required=True)
    source.add_argument("--jsonl", help='past traffic: one {"request", "response", "latency_ms"} object a line')
    source.add_argument("--live", action="store_true", help="the live window in Redis")
    baseline.add_argument("--embeddings", action="store_true", help="embed prompts (the topic feature); slow")
    baseline.add_argument("--out", help="write the profile to this file (name it in drift.references)")
    baseline.add_argument("--store", action="store_true", help="store it in Redis, where every gateway reads it")
    report = drift_sub.add_parser("report", help="compare a reference with the live window")
    report.add_argument("--reference", help="a reference profile file (default: Redis, then drift.references)")
    report.add_argument("--live-jsonl", help="compare with this JSON Lines file instead of the live window")
    report.add_argument("--json", action="store_true", help="JSON (as GET /admin/drift) instead of HTML")
    report.add_argument("--out", help="file to write (default: standard output)")
    for p in (baseline, report):
        p.add_argument("--config", "-c", required=True)
        p.add_argument("--model", required=True, help="the model group")
        p.add_argument("--version", help="one version of the group (default: all)")
    drift.set_defaults(func=_drift)
    rollout = sub.add_parser("rollout", help="start, inspect and steer rollouts through a gateway's admin API")
    rollout_sub = rollout.add_subparsers(dest="action", required=True)
    start = rollout_sub.add_parser("start", help="start a rollout from a YAML or JSON spec file")
    start.add_argument("--spec", required=True, help="one rollout, as an item of the config's `rollouts:`")
    actions = [start]
    for name, text in (
        ("status", "per version: weight, requests, error rate, P95; the last analysis verdict"),
        ("pause", "hold the current step"),
        ("resume", "go on (a pause by hand restarts its step)"),
        ("promote", "the candidate to 100% now"),
        ("abort", "back to the stable version now"),
    ):
        p = rollout_sub.add_parser(name, help=text)
        p.add_argument("model", help="the model group")
        actions.append(p)
    for p in actions:
        p.add_argument("--url", default="http://127.0.0.1:4000", help="the gateway (default http://127.0.0.1:4000)")
        p.add_argument("--key", help="an API key with admin_rollouts (default: $INTERLOCK_KEY)")
        p.add_argument("--json", action="store_true", help="print the status JSON")
    rollout.set_defaults(func=_rollout)
    mig = sub.add_parser("migrate", help="create the PostgreSQL tables (keys, audit) if missing, waiting for it")
    target = mig.add_mutually_exclusive_group(required=True)
    target.add_argument("--dsn", help="a DSN or a reference to one (os.environ/NAME, file:/path)")
    target.add_argument("--config", "-c", help="the config file naming the databases")
    mig.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the database (default 60)")
    mig.set_defaults(func=_migrate)
    pl = sub.add_parser("plan", help="replicas, CPU, memory, GPUs and cost per hour on AKS and Container Apps")
    pl.add_argument("--qps", type=float, required=True, help="requests per second to serve")
    pl.add_argument("--hit-rate", type=float, default=0.0, help="share answered from the cache, 0..1")
    pl.add_argument("--prompt-tokens", type=int, default=500)
    pl.add_argument("--answer-tokens", type=int, default=200)
    pl.add_argument("--costs", default="bench/costs.json", help="measured costs (bench/scaleout.py writes it)")
    pl.add_argument("--prices", help="a YAML file of prices (deploy/prices.example.yaml)")
    pl.add_argument("--price", action="append", metavar="KEY=VALUE", help="one price, over the file; repeatable")
    pl.add_argument("--json", action="store_true")
    pl.set_defaults(func=_plan)
    embeddings = sub.add_parser("embeddings", help="precomputed embeddings")
    embeddings_sub = embeddings.add_subparsers(dest="action", required=True)
    warm = embeddings_sub.add_parser("warm", help="embed a file of common queries into the shared store (Redis)")
    warm.add_argument("file", help="one query per line, or JSON Lines with a text field")
    warm.add_argument("--config", default=os.environ.get("INTERLOCK_CONFIG"), help="the gateway's config")
    embeddings.set_defaults(func=_embeddings)
    ingest = sub.add_parser("ingest", help="upload every file under a directory into a vector store")
    ingest.add_argument("dir")
    ingest.add_argument("--store", required=True, help="the store's name (created when the tenant has none)")
    ingest.add_argument("--tenant", default="default", help="the tenant the store belongs to")
    ingest.add_argument("--config", default=os.environ.get("INTERLOCK_CONFIG"), help="the gateway's config")
    ingest.set_defaults(func=_ingest)
    check = sub.add_parser("check-config", help="validate a config file without starting")
    check.add_argument("file")
    check.set_defaults(func=_check_config)
    args = parser.parse_args(argv)
    return int(args.func(args))
