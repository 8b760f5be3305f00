from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from interlock import ConfigError, load_settings, parse_settings
from interlock.config import AzureDeployment, LocalDeployment, MiniLmDeployment, OpenAIDeployment

GOOD = {
    "models": [
        {
            "name": "chat",
            "strategy": "lowest_latency",
            "fallbacks": ["local"],
            "deployments": [
                {
                    "id": "vllm",
                    "backend": "openai",
                    "api_base": "http://h:8000/v1",
                    "api_key": "os.environ/K",
                },
                {"id": "az", "backend": "azure", "endpoint": "https://x.openai.azure.com", "deployment": "d"},
            ],
        },
        {"name": "local", "deployments": [{"id": "l", "backend": "local"}]},
    ]
}


def test_a_complete_config_parses_into_typed_settings() -> None:
    s = parse_settings(GOOD, environ={"K": "sekret"})
    vllm, az = s.models[0].deployments
    assert isinstance(vllm, OpenAIDeployment) and vllm.api_key == "sekret"
    assert isinstance(az, AzureDeployment) and az.api_version
    assert isinstance(s.models[1].deployments[0], LocalDeployment)
    assert s.server.port == 4000


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda c: c["models"][0]["deployments"][0].update(timeout="slow"),
            "$.models[0].deployments[0].timeout",
        ),
        (
            lambda c: c["models"][0]["deployments"][1].update(backend="bedrock"),
            "$.models[0].deployments[1].backend",
        ),
        (lambda c: c["models"][0].update(strategy="fastest"), "$.models[0].strategy"),
        (lambda c: c["models"][0].update(fallbacks=["nope"]), "$.models[0].fallbacks[0]"),
        (lambda c: c["models"][1]["deployments"][0].update(id="vllm"), "$.models[1].deployments[0].id"),
        (lambda c: c.update(surprise=1), "surprise"),
        (lambda c: c["models"][0]["deployments"][0].pop("api_base"), "api_base"),
    ],
)
def test_errors_name_the_key_path(mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    import copy

    config = copy.deepcopy(GOOD)
    mutate(config)
    with pytest.raises(ConfigError) as err:
        parse_settings(config, environ={"K": "v"})
    assert expected in str(err.value)


def test_missing_environment_variable_is_named_but_no_value_leaks() -> None:
    import copy

    config = copy.deepcopy(GOOD)
    config["models"][0]["deployments"][1]["api_key"] = "os.environ/PRESENT"
    with pytest.raises(ConfigError) as err:
        parse_settings(config, environ={"PRESENT": "sk-live-present-value"})
    assert "$.models[0].deployments[0].api_key" in str(err.value) and "K" in str(err.value)
    assert "sk-live-present-value" not in str(err.value)
    # A value that resolves but is wrong is named by where it is, never shown.
    config["models"][0]["deployments"][0]["timeout"] = "os.environ/T"
    environ = {"K": "sk-live-k-value", "PRESENT": "sk-live-present-value", "T": "sk-live-timeout-value"}
    with pytest.raises(ConfigError) as err:
        parse_settings(config, environ=environ)
    assert "$.models[0].deployments[0].timeout" in str(err.value) and "sk-live" not in str(err.value)
    config["models"][0]["deployments"][0]["timeout"] = 5
    config["security"] = {"keys": {}, "server_secret": "os.environ/S"}
    with pytest.raises(ConfigError) as err:
        parse_settings(config, environ={**environ, "S": "sk-short"})  # too short to be an HMAC key
    assert "$.security.server_secret" in str(err.value) and "sk-" not in str(err.value)


def test_no_config_means_the_embedded_model_and_the_embeddings_model() -> None:
    s = load_settings(None)
    assert [g.name for g in s.models] == ["smollm2", "all-minilm-l6-v2"]
    assert isinstance(s.models[0].deployments[0], LocalDeployment)
    assert isinstance(s.models[1].deployments[0], MiniLmDeployment)


def test_versions_and_sample_ratios_are_validated() -> None:
    def settings(deployment: dict[str, Any], telemetry: dict[str, Any] | None = None) -> Any:
        raw: dict[str, Any] = {
            "models": [{"name": "m", "deployments": [{"id": "d", "backend": "local", **deployment}]}]
        }
        if telemetry is not None:
            raw["telemetry"] = telemetry
        return parse_settings(raw)

    assert settings({}).models[0].deployments[0].version == "v1"
    assert settings({"version": "2024-10.canary_b"}).models[0].deployments[0].version == "2024-10.canary_b"
    with pytest.raises(ConfigError, match=r"deployments\[0\]\.version"):
        settings({"version": 'v1"} evil'})
    with pytest.raises(ConfigError, match=r"\$\.telemetry\.logprobs_sample"):
        settings({}, {"logprobs_sample": 1.5})
    with pytest.raises(ConfigError, match=r"\$\.telemetry\.trace_sample_ratio"):
        settings({}, {"trace_sample_ratio": -0.1})


def test_local_parallel_and_queue_are_checked() -> None:
    def local(**fields: Any) -> Any:
        raw = {"models": [{"name": "m", "deployments": [{"id": "d", "backend": "local", **fields}]}]}
        return parse_settings(raw).models[0].deployments[0]

    assert local().parallel == 1 and local(parallel=8).parallel == 8
    for bad in ({"parallel": 0}, {"parallel": 65}, {"max_queue": -1}):
        key = next(iter(bad))
        with pytest.raises(ConfigError, match=rf"deployments\[0\]\.{key}"):
            local(**bad)


def test_rollout_settings_are_checked_against_the_groups_versions(tmp_path: Path) -> None:
    models = [{"name": "chat", "deployments": [
        {"id": "a", "backend": "openai", "api_base": "http://x/v1", "version": "v1"},
        {"id": "b", "backend": "openai", "api_base": "http://x/v1", "version": "v2"}]}]  # fmt: skip
    rollout = {"model": "chat", "stable": "v1", "candidate": "v2", "steps": [{"set_weight": 10}]}
    settings = parse_settings({"models": models, "rollouts": [rollout]}, {}, tmp_path)
    assert settings.rollout is not None and settings.rollout.sqlite_path == str(tmp_path / "interlock-rollouts.db")
    with pytest.raises(ConfigError, match=r"\$\.rollouts\[0\]\.candidate: no deployment"):
        parse_settings({"models": models, "rollouts": [{**rollout, "candidate": "v3"}]}, {}, tmp_path)
    with pytest.raises(ConfigError, match=r"\$\.rollouts\[0\]\.steps\[0\]"):
        parse_settings({"models": models, "rollouts": [{**rollout, "steps": [{}]}]}, {}, tmp_path)
    gate = {"interval_s": 0.5, "metrics": [{"condition": "error_rate < 0.1"}]}
    with pytest.raises(ConfigError, match="bucket"):
        parse_settings({"models": models, "rollouts": [{**rollout, "templates": {"g": gate},
                                                         "steps": [{"analysis": "g"}]}]}, {}, tmp_path)  # fmt: skip
    assert parse_settings({"models": models}, {}, tmp_path).rollout is None  # no rollouts: nothing made


# -- the `alerts:` section: parsed into typed settings, secrets resolved, errors naming the key path
# and never the webhook URL (which may carry a token).
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


def test_templates_compile_at_load_and_their_errors_name_the_key_path() -> None:
    def with_templates(templates: dict[str, Any]) -> Any:
        return parse_settings({**GOOD, "templates": templates}, environ={"K": "x"})

    ok = with_templates({"support-summary": {"system": "For {{ team }}.", "user": "{{ ticket }}"}})
    assert ok.templates["support-summary"].user == "{{ ticket }}"
    with pytest.raises(ConfigError, match=r"^\$\.templates\.support-summary\.user: does not compile: line 2"):
        with_templates({"support-summary": {"system": "ok", "user": "Ticket:\n{{ ticket "}})
    with pytest.raises(ConfigError, match=r"^\$\.templates\.t\.system: does not render: ZeroDivisionError"):
        with_templates({"t": {"system": "{{ 1 / 0 }}"}})
    with pytest.raises(ConfigError, match=r"^\$\.templates\.t: expected `system`, `user` or both"):
        with_templates({"t": {}})
    with pytest.raises(ConfigError, match=r"^\$\.templates: 'a b': expected a name"):
        with_templates({"a b": {"user": "x"}})
    with pytest.raises(ConfigError, match=r"Object contains unknown field `prompt`"):
        with_templates({"t": {"prompt": "x"}})


def test_the_semantic_cache_is_opt_in_and_its_keys_are_checked() -> None:
    def group(cache: dict[str, Any]) -> Any:
        raw = {"models": [{"name": "m", "deployments": [{"id": "d", "backend": "local"}], "cache": cache}]}
        return parse_settings(raw).models[0].cache

    assert group({}).semantic is None
    semantic = group({"semantic": {"threshold": 0.95}}).semantic
    assert semantic is not None and semantic.threshold == 0.95 and semantic.timeout_ms == 50
    with pytest.raises(ConfigError, match=r"\$\.models\[0\]\.cache\.semantic\.threshold"):
        group({"semantic": {"threshold": 1.5}})
    with pytest.raises(ConfigError, match=r"\$\.models\[0\]\.cache\.semantic\.timeout_ms"):
        group({"semantic": {"timeout_ms": 0}})


def test_the_embeddings_section_is_validated_where_it_is() -> None:
    models = [{"name": "e", "deployments": [{"id": "e", "backend": "minilm"}]}]
    with pytest.raises(ConfigError, match=r"\$\.embeddings\.max_queue"):
        parse_settings({"models": models, "embeddings": {"max_batch": 64, "max_queue": 8}})
    with pytest.raises(ConfigError, match=r"\$\.embeddings\.store\.ttl"):
        parse_settings({"models": models, "embeddings": {"store": {"ttl": 0}}})
    s = parse_settings({"models": models})
    assert isinstance(s.models[0].deployments[0], MiniLmDeployment)
    assert s.models[0].deployments[0].max_class == "restricted"


def test_the_retrieval_section_is_checked_where_it_is_and_across(tmp_path: Path) -> None:
    base: dict[str, Any] = {"models": [{"name": "m", "deployments": [{"id": "d", "backend": "local"}]}]}

    def parsed(**extra: Any) -> Any:
        return parse_settings({**copy.deepcopy(base), **extra}, {}, tmp_path)

    placed = parsed(retrieval={})
    assert placed.retrieval.directory == str(tmp_path / "interlock-vectors") and placed.retrieval.catalog == "sqlite"
    cases = [
        ({"retrieval": {"catalog": "postgres"}}, r"\$\.retrieval\.postgres_dsn: expected a DSN"),
        ({"retrieval": {"max_results": 51}}, r"\$\.retrieval\.max_results"),
        ({"retrieval": {"chunking": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}}},
         r"\$\.retrieval\.chunking\.chunk_overlap_tokens"),
        ({"retrieval": {"dlp_policy": "docs"}}, r"\$\.retrieval\.dlp_policy: unknown DLP policy"),
        ({"retrieval": {"template": "rag"}}, r"\$\.retrieval\.template: unknown template"),
    ]  # fmt: skip
    for extra, expected in cases:
        with pytest.raises(ConfigError, match=expected):
            parsed(**extra)
    grouped = copy.deepcopy(base)
    grouped["models"][0]["retrieval"] = {"vector_store_ids": ["vs_1"], "max_results": 2}
    with pytest.raises(ConfigError, match=r"\$\.models\[0\]\.retrieval: expected a `retrieval` section"):
        parse_settings(grouped, {}, tmp_path)
    assert parse_settings({**grouped, "retrieval": {}}, {}, tmp_path).models[0].retrieval.max_results == 2
    grouped["models"][0]["retrieval"] = {"vector_store_ids": []}
    with pytest.raises(ConfigError, match=r"models\[0\]\.retrieval\.vector_store_ids"):
        parse_settings({**grouped, "retrieval": {}}, {}, tmp_path)


def test_the_http_server_and_its_limits_are_validated() -> None:
    def server(**fields: Any) -> Any:
        return parse_settings(
            {"server": fields, "models": [{"name": "m", "deployments": [{"id": "d", "backend": "local"}]}]}
        )

    assert server().server.http == "native"
    assert server(http="uvicorn").server.http == "uvicorn"
    assert server(limits={"max_headers": 10}).server.limits.max_headers == 10
    with pytest.raises(ConfigError, match=r"\$\.server\.http"):
        server(http="gunicorn")
    with pytest.raises(ConfigError, match=r"\$\.server\.limits\.header_timeout_s"):
        server(limits={"header_timeout_s": 0})
    with pytest.raises(ConfigError, match=r"\$\.server\.limits\.max_header_bytes"):
        server(limits={"max_header_bytes": 0})
    with pytest.raises(ConfigError, match=r"\$\.server\.limits\.graceful_timeout_s"):
        server(limits={"graceful_timeout_s": -1})
