"""The Helm chart rendered by Helm's own engine (scripts/deploy_check.py, which `make deploy-check`
runs on every example): what must hold in every rendering. Non-root pods with a read-only root
filesystem, probes on /healthz and /readyz, the migration Job as a pre-install,pre-upgrade hook
that is deleted before the next one and fails the release, model servers reachable only from the
gateway, KEDA on Interlock's in-flight and queued gauges, P95 and vLLM's queue, the HPA on CPU
without KEDA; and every rendered document and Container Apps manifest valid."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from interlock.observe.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("deploy_check", ROOT / "scripts" / "deploy_check.py")
assert _spec and _spec.loader
deploy_check = importlib.util.module_from_spec(_spec)
sys.modules["deploy_check"] = deploy_check
_spec.loader.exec_module(deploy_check)

EXAMPLES = {p.name: p for p in deploy_check.values_files()}


def docs(values: str | None = None, **overrides: Any) -> list[dict[str, Any]]:
    rendered = deploy_check.render(EXAMPLES[values] if values else None, overrides)
    return [d for _, d in deploy_check.documents(rendered)]


def one(documents: list[dict[str, Any]], kind: str, name: str = "interlock") -> dict[str, Any]:
    found = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)}"
    return found[0]


def test_the_examples_exist() -> None:
    assert set(EXAMPLES) == {"aks-gpu.yaml", "dev.yaml", "external-cpu-hpa.yaml"}


@pytest.mark.parametrize("values", [None, *EXAMPLES])
def test_every_rendered_document_is_valid(values: str | None) -> None:
    rendered = docs(values)
    assert rendered
    for doc in rendered:
        assert deploy_check.check_document(doc) == [], (doc["kind"], doc["metadata"]["name"])


def test_the_container_apps_manifests_are_valid() -> None:
    import yaml

    manifests = sorted(deploy_check.CONTAINERAPPS.glob("*.yaml"))
    assert [m.name for m in manifests] == ["gateway.yaml", "migrate-job.yaml", "model-gpu.yaml"]
    for m in manifests:
        assert deploy_check.check_containerapp(yaml.safe_load(m.read_text())) == [], m.name


def test_a_manifest_naming_an_undeclared_secret_is_refused() -> None:
    import yaml

    app = yaml.safe_load((deploy_check.CONTAINERAPPS / "gateway.yaml").read_text())
    app["properties"]["template"]["containers"][0]["env"].append({"name": "X", "secretRef": "nowhere"})
    assert deploy_check.check_containerapp(app) == ["container gateway: unknown secret nowhere"]


def test_a_misspelt_field_fails_validation() -> None:
    deployment = one(docs(), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    assert any("readOnlyRootFilesytem" in p for p in deploy_check.check_document(deployment))


@pytest.mark.parametrize("values", [None, *EXAMPLES])
def test_the_gateway_runs_as_non_root_on_a_read_only_root_filesystem(values: str | None) -> None:
    rendered = docs(values)
    for name, kind in (("interlock", "Deployment"), ("interlock-migrate", "Job")):
        pod = one(rendered, kind, name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        for c in pod["containers"]:
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True and ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]
    gateway = one(rendered, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in gateway["containers"][0]["volumeMounts"]}
    assert {"/tmp", "/var/lib/interlock", "/etc/interlock"} <= mounts  # what it writes is not the root fs


def test_probes_name_the_gateway_endpoints() -> None:
    container = one(docs(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("values", ["aks-gpu.yaml", "external-cpu-hpa.yaml"])
def test_the_migration_is_a_pre_install_pre_upgrade_hook_that_fails_the_release(values: str) -> None:
    job = one(docs(values), "Job", "interlock-migrate")
    notes = job["metadata"]["annotations"]
    assert notes["helm.sh/hook"] == "pre-install,pre-upgrade"
    # Deleted before the next upgrade's Job is made (so it is never patched: Jobs are immutable)
    assert "before-hook-creation" in notes["helm.sh/hook-delete-policy"].split(",")
    assert job["spec"]["backoffLimit"] <= 2 and job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "migrate" and "--wait" in args


def test_with_key_vault_the_migration_reads_the_dsn_from_the_mounted_secret() -> None:
    rendered = docs("aks-gpu.yaml")
    job = one(rendered, "Job", "interlock-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][1:3] == [
        "--dsn", "file:/mnt/secrets/interlock-postgres-dsn"
    ]  # fmt: skip
    hook = one(rendered, "SecretProviderClass", "interlock-migrate")
    assert hook["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"  # before the Job (weight 0)
    synced = one(rendered, "SecretProviderClass")["spec"]["secretObjects"][0]
    assert synced["secretName"] == "interlock-kv"
    assert {"key": "INTERLOCK_POSTGRES_DSN", "objectName": "interlock-postgres-dsn"} in synced["data"]
    pod = one(rendered, "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    assert pod["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "interlock-kv"}}]


def test_the_bundled_database_is_migrated_after_install_and_before_upgrades() -> None:
    job = one(docs("dev.yaml"), "Job", "interlock-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


def test_model_servers_are_reachable_only_from_the_gateway() -> None:
    rendered = docs("aks-gpu.yaml")
    service = one(rendered, "Service", "interlock-vllm")
    assert service["spec"]["type"] == "ClusterIP"
    policy = one(rendered, "NetworkPolicy", "interlock-vllm")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "model-server"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert peer == {"podSelector": {"matchLabels": one(rendered, "Deployment")["spec"]["selector"]["matchLabels"]}}
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert not any(d["kind"] == "Ingress" for d in rendered)


def test_the_gpu_pool_asks_for_gpus_on_the_gpu_nodes() -> None:
    pod = one(docs("aks-gpu.yaml"), "Deployment", "interlock-vllm")["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1 and resources["requests"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"agentpool": "gpu"}
    assert {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in pod["tolerations"]


def test_the_gateway_config_points_at_the_pool_service() -> None:
    import yaml

    rendered = docs("aks-gpu.yaml")
    config = yaml.safe_load(one(rendered, "ConfigMap")["data"]["config.yaml"])
    assert config["models"][0]["deployments"][0]["api_base"] == "http://interlock-vllm:8000/v1"


def test_keda_scales_the_gateway_on_its_own_gauges_and_the_pool_on_vllms_queue() -> None:
    rendered = docs("aks-gpu.yaml")
    assert not any(d["kind"] == "HorizontalPodAutoscaler" for d in rendered)  # KEDA makes its own
    gateway = one(rendered, "ScaledObject")
    triggers = {t["name"]: t for t in gateway["spec"]["triggers"]}
    assert set(triggers) == {"inflight", "p95-latency", "cpu"}
    exported = set(Metrics().registry._names_to_collectors)  # the names the gateway exports
    assert "interlock_inflight" in exported and "interlock_queued" in exported
    assert "interlock_inflight{" in triggers["inflight"]["metadata"]["query"]
    assert "interlock_queued{" in triggers["inflight"]["metadata"]["query"]
    assert triggers["inflight"]["metricType"] == "AverageValue"
    assert "interlock_request_seconds_bucket" in triggers["p95-latency"]["metadata"]["query"]
    assert "interlock_request_seconds_bucket" in exported
    assert triggers["p95-latency"]["metricType"] == "Value"
    pool = one(rendered, "ScaledObject", "interlock-vllm")
    [waiting] = pool["spec"]["triggers"]
    assert waiting["metadata"]["query"].startswith("sum(vllm:num_requests_waiting{")
    assert pool["spec"]["scaleTargetRef"]["name"] == "interlock-vllm"
    assert "replicas" not in one(rendered, "Deployment", "interlock-vllm")["spec"]  # KEDA owns the count


def test_without_keda_the_hpa_scales_on_cpu() -> None:
    rendered = docs("external-cpu-hpa.yaml")
    assert not any(d["kind"] == "ScaledObject" for d in rendered)
    hpa = one(rendered, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["averageUtilization"] == 70


def test_the_pods_are_spread_and_kept_by_a_disruption_budget() -> None:
    rendered = docs()
    spread = one(rendered, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {s["topologyKey"] for s in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert one(rendered, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


def test_no_secret_value_is_rendered() -> None:
    rendered = docs("aks-gpu.yaml")
    assert not any(d["kind"] == "Secret" for d in rendered)
    text = repr(rendered)
    assert "postgresql://" not in text and "redis://" not in text


def test_keda_fallback_is_refused_beside_cpu_and_value_triggers_and_kept_on_the_pool() -> None:
    # KEDA's admission check: fallback only when every trigger is an AverageValue and none is CPU.
    rendered = docs("aks-gpu.yaml")
    gateway = one(rendered, "ScaledObject")
    assert "fallback" not in gateway["spec"]
    assert deploy_check.check_document(gateway) == []
    gateway["spec"]["fallback"] = {"failureThreshold": 3, "replicas": 4}
    assert deploy_check.check_document(gateway)
    pool = one(rendered, "ScaledObject", "interlock-vllm")
    assert pool["spec"]["fallback"]["replicas"] == 1 and deploy_check.check_document(pool) == []
