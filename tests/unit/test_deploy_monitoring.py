"""The Grafana dashboard and the Prometheus alerting rules shipped in deploy/: they parse, every
metric they name is one the gateway exports, and promtool (when installed) accepts the rules, the
rules' own unit tests and every dashboard query."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from interlock.observe.alerting import AlertGauges
from interlock.observe.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "interlock.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULES_TEST = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"
METRIC = re.compile(r"\binterlock_[a-z0-9_]+\b")
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "gauge": ("",)}


def exported() -> set[str]:
    """Every sample name the gateway's registry can expose (what PromQL selects on)."""
    registry = CollectorRegistry()
    Metrics(registry)
    AlertGauges(registry)
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_exprs() -> list[str]:
    d = dashboard()
    exprs = [t["expr"] for p in d["panels"] if p["type"] != "row" for t in p["targets"]]
    exprs += [v["query"]["query"] for v in d["templating"]["list"] if v["type"] == "query"]
    return exprs


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [r for g in data["groups"] for r in g["rules"]]


def test_every_dashboard_query_names_an_exported_metric() -> None:
    known = exported()
    assert {"interlock_alerts_firing", "interlock_drift_share", "interlock_errors_total"} <= known
    for expr in dashboard_exprs():
        names = METRIC.findall(expr)
        assert names or expr.startswith("sum by (alertname) (ALERTS{"), expr  # ALERTS: Prometheus's own series
        assert set(names) <= known, (expr, set(names) - known)


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    d = dashboard()
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"])
    for p in panels:
        assert p["targets"] and all(t["refId"] and t["expr"] for t in p["targets"])
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    text = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needed in (
        "interlock_requests_total", "interlock_errors_total", "histogram_quantile(0.99, sum by (le) (rate(interlock_request_seconds_bucket",
        "interlock_ttft_seconds_bucket", "interlock_itl_seconds_bucket", "interlock_tokens_total", "interlock_logprob_mean_bucket",
        'cache="hit"', "interlock_inflight", "interlock_queued", "interlock_drift_share", "interlock_alerts_firing",
    ):  # fmt: skip
        assert needed in text, needed
    assert [v["name"] for v in d["templating"]["list"]] == ["datasource", "model", "version"]


def test_the_alerting_rules_parse_and_name_exported_metrics() -> None:
    known = exported()
    found = rules()
    names = [r["alert"] for r in found]
    assert len(names) == len(set(names))
    assert {
        "InterlockHighErrorRate", "InterlockHighP95Latency", "InterlockHighP99Latency", "InterlockSlowFirstToken",
        "InterlockConfidenceDrop", "InterlockDrift", "InterlockAlertFiring",
    } <= set(names)  # fmt: skip
    for r in found:
        assert r["labels"]["severity"] in {"critical", "warning", "info"}
        assert r["annotations"]["summary"]
        metrics = set(METRIC.findall(r["expr"]))
        assert metrics and metrics <= known, (r["alert"], metrics - known)


promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")


@promtool
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULES_TEST)]):
        done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


@promtool
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    # Each query becomes a recording rule, with Grafana's variables filled in, for promtool to parse.
    filled = [
        e.replace("$__rate_interval", "5m").replace("$model", ".*").replace("$version", ".*")
        for e in dashboard_exprs()
        if not e.startswith("label_values(")  # Grafana's own function, not PromQL
    ]
    group = {
        "name": "dashboard",
        "rules": [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(filled)],
    }
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [group]}))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
