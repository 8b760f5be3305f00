"""The `alerts:` section: parsed into typed settings, secrets resolved, errors naming the key path
and never the webhook URL (which may carry a token)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from interlock import ConfigError, parse_settings

SECRET = "tok-3f9a7c1e"
CONFIG: dict[str, Any] = {
    "models": [{"name": "chat", "deployments": [{"id": "l", "backend": "local"}]}],
    "alerts": {
        "evaluate_s": 5,
        "repeat_interval_s": 3600,
        "webhooks": {
            "am": {"url": "http://alertmanager:9093/api/v2/alerts", "kind": "alertmanager"},
            "hook": {"url": f"https://hooks.example/x?token={SECRET}", "headers": {"Authorization": "env:HOOK_AUTH"}},
        },
        "retrain": {"url": "https://ml.example/pipelines/run", "token": "env:AML_TOKEN", "cooldown_s": 3600},
        "rules": [
            {"name": "errors", "signal": "error_rate", "threshold": 0.05, "for_s": 60, "actions": ["am", "hook"]},
            {
                "name": "slow",
                "signal": "p95_latency_ms",
                "op": ">=",
                "threshold": 4000,
                "model": "chat",
                "version": "v2",
            },
            {"name": "timeouts", "signal": "error_rate:timeout", "threshold": 0.01},
            {
                "name": "drift",
                "signal": "drift_share",
                "threshold": 0.5,
                "actions": ["retrain", "am"],
                "labels": {"team": "ml"},
            },
            {"name": "language", "signal": "drift_feature:language", "op": ">=", "threshold": 1},
        ],
    },
}
ENV = {"HOOK_AUTH": "Bearer hook-secret", "AML_TOKEN": "aml-secret"}


def test_the_alerts_section_parses_with_its_secrets_resolved() -> None:
    s = parse_settings(CONFIG, environ=ENV)
    assert s.alerts is not None
    a = s.alerts
    assert a.evaluate_s == 5 and a.webhooks["am"].kind == "alertmanager" and a.webhooks["hook"].kind == "json"
    assert a.webhooks["hook"].headers == {"Authorization": "Bearer hook-secret"}
    assert a.retrain is not None and a.retrain.token == "aml-secret"
    slow = a.rules[1]
    assert (slow.op, slow.model, slow.version, slow.window_s, slow.min_requests) == (">=", "chat", "v2", 300.0, 20)
    assert parse_settings({"models": CONFIG["models"]}).alerts is None


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(config: dict[str, Any]) -> None:
        node: Any = config["alerts"]
        *parents, last = path.split(".")
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value

    return apply


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (_set("rules.0.signal", "latency"), "$.alerts.rules[0].signal"),
        (_set("rules.0.signal", "drift_feature:"), "$.alerts.rules[0].signal"),
        (_set("rules.2.signal", "error_rate:network"), "$.alerts.rules[2].signal"),
        (_set("rules.0.op", "=="), "$.alerts.rules[0].op"),
        (_set("rules.1.model", "nope"), "$.alerts.rules[1].model"),
        (_set("rules.0.actions", ["am", "pager"]), "$.alerts.rules[0].actions[1]"),
        (_set("rules.2.window_s", 7200), "$.alerts.rules[2].window_s"),
        (_set("rules.2.for_s", -1), "$.alerts.rules[2]"),
        (_set("rules.4.name", "errors"), "$.alerts.rules[4].name"),
        (_set("retrain", None), "$.alerts.rules[3].actions[0]"),
        (_set("webhooks.am.kind", "slack"), "$.alerts.webhooks[...].kind"),  # msgspec does not name dict keys
        (_set("webhooks.am.max_attempts", 0), "$.alerts.webhooks.am"),
        (_set("webhooks.hook.url", f"ftp://hooks.example/?token={SECRET}"), "$.alerts.webhooks.hook.url"),
        (_set("webhooks.retrain", {"url": "http://x"}), "$.alerts.webhooks.retrain"),
        (_set("retrain.cooldown_s", 0), "$.alerts.retrain"),
        (_set("evaluate_s", 0), "$.alerts.evaluate_s"),
        (_set("unknown", 1), "$.alerts"),
    ],
)
def test_errors_name_the_key_path_and_never_the_url(mutate: Callable[[dict[str, Any]], None], where: str) -> None:
    config = copy.deepcopy(CONFIG)
    mutate(config)
    with pytest.raises(ConfigError) as info:
        parse_settings(config, environ=ENV)
    assert where in str(info.value)
    assert SECRET not in str(info.value)


def test_an_unset_secret_reference_names_its_path() -> None:
    with pytest.raises(ConfigError, match=r"\$\.alerts\.retrain\.token"):
        parse_settings(CONFIG, environ={"HOOK_AUTH": "x"})
