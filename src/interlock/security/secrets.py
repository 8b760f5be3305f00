"""Secrets by reference in the config: a value may be written as

    os.environ/NAME or env:NAME          an environment variable
    file:/run/secrets/openai             a file's contents (trailing newline dropped)
    vault://MOUNT/PATH#KEY               HashiCorp Vault KV v2 (hvac): token, AppRole or Kubernetes auth
    azure-keyvault://VAULT/SECRET        Azure Key Vault (azure-keyvault-secrets, DefaultAzureCredential)

References are resolved when the config is loaded and again every `secrets.refresh_s` seconds
(upstream credentials then rotate without a restart). A value never appears in a log line or an
error message: errors name the key path and the reference's scheme.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCHEMES = ("os.environ/", "env:", "file:", "vault://", "azure-keyvault://")


class SecretError(Exception):
    """A reference could not be resolved; the message never holds the secret."""


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SCHEMES)


class SecretResolver:
    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        vault: Mapping[str, Any] | None = None,
        keyvault: Mapping[str, Any] | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._vault_settings = dict(vault or {})
        self._vault: Any = None
        self._keyvault_settings = dict(keyvault or {})
        self._keyvaults: dict[str, Any] = {}

    def resolve(self, ref: str) -> str:
        if ref.startswith("os.environ/") or ref.startswith("env:"):
            name = ref.split("/", 1)[1] if ref.startswith("os.environ/") else ref[4:]
            if name not in self._environ:
                raise SecretError(f"environment variable {name} is not set")
            return self._environ[name]
        if ref.startswith("file:"):
            try:
                return Path(ref[5:]).read_text(encoding="utf-8").rstrip("\n")
            except OSError as exc:
                raise SecretError(f"cannot read the secret file ({exc.strerror})") from None
        if ref.startswith("vault://"):
            return self._from_vault(ref[len("vault://") :])
        return self._from_keyvault(ref[len("azure-keyvault://") :])

    # -- HashiCorp Vault --------------------------------------------------------------------------
    def _vault_client(self) -> Any:
        if self._vault is not None and self._vault.is_authenticated():
            return self._vault
        try:
            import hvac
        except ImportError:
            raise SecretError("vault:// references need hvac: pip install 'interlock[vault]'") from None

        s = self._vault_settings
        url = s.get("url") or self._environ.get("VAULT_ADDR")
        if not url:
            raise SecretError("a vault:// reference needs secrets.vault.url (or VAULT_ADDR)")
        client = hvac.Client(url=url, timeout=5)
        auth = s.get("auth", "token")
        try:
            if auth == "token":
                token = s.get("token") or self._environ.get("VAULT_TOKEN")
                if not token:
                    raise SecretError("vault token auth needs secrets.vault.token (or VAULT_TOKEN)")
                client.token = token
            elif auth == "approle":
                client.auth.approle.login(role_id=s["role_id"], secret_id=s["secret_id"])
            elif auth == "kubernetes":
                jwt = Path(s.get("jwt_path", "/var/run/secrets/kubernetes.io/serviceaccount/token")).read_text()
                client.auth.kubernetes.login(role=s["role"], jwt=jwt.strip())
            else:
                raise SecretError(f"unknown vault auth method {auth!r}")
        except SecretError:
            raise
        except Exception as exc:  # hvac raises its own exception tree, and requests' on network errors
            raise SecretError(f"vault login failed ({type(exc).__name__})") from None
        self._vault = client
        return client

    def _from_vault(self, ref: str) -> str:
        location, _, key = ref.partition("#")
        mount, _, path = location.partition("/")
        if not (mount and path and key):
            raise SecretError("expected vault://MOUNT/PATH#KEY")
        try:
            answer = self._vault_client().secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, raise_on_deleted_version=True
            )
        except SecretError:
            raise
        except Exception as exc:
            raise SecretError(f"vault read failed ({type(exc).__name__})") from None
        value = answer.get("data", {}).get("data", {}).get(key)
        if not isinstance(value, str):
            raise SecretError("the vault secret has no such key")
        return value

    # -- Azure Key Vault --------------------------------------------------------------------------
    def _from_keyvault(self, ref: str) -> str:
        vault, _, name = ref.partition("/")
        if not (vault and name):
            raise SecretError("expected azure-keyvault://VAULT/SECRET")
        client = self._keyvaults.get(vault)
        if client is None:
            client = self._keyvaults[vault] = _keyvault_client(vault, self._keyvault_settings)
        try:
            value = client.get_secret(name).value
        except Exception as exc:  # azure-core's HttpResponseError tree, credential errors
            raise SecretError(f"key vault read failed ({type(exc).__name__})") from None
        if not isinstance(value, str):
            raise SecretError("the key vault secret has no value")
        return value


def _keyvault_client(vault: str, settings: Mapping[str, Any]) -> Any:
    try:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient
    except ImportError:
        raise SecretError("azure-keyvault:// references need: pip install 'interlock[azure]'") from None

    url = str(settings.get("url_template", "https://{vault}.vault.azure.net")).format(vault=vault)
    return SecretClient(
        vault_url=url,
        credential=DefaultAzureCredential(),
        verify_challenge_resource=bool(settings.get("verify_challenge_resource", True)),
    )


def resolve_all(node: Any, path: str, resolver: SecretResolver) -> Any:
    """Resolve every reference in a parsed config; errors name the key path."""
    if isinstance(node, dict):
        return {k: resolve_all(v, f"{path}.{k}", resolver) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_all(v, f"{path}[{i}]", resolver) for i, v in enumerate(node)]
    if is_reference(node):
        try:
            return resolver.resolve(node)
        except SecretError as exc:
            raise SecretError(f"{path}: {exc}") from None
    return node
