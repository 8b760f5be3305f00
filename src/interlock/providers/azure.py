"""Azure OpenAI: deployment in the path, `api-version` in the query, `api-key` or Entra ID token.

With no `api_key`, a bearer token for `https://cognitiveservices.azure.com/.default` comes from
azure-identity (`ManagedIdentityCredential` when a client id is configured, otherwise
`DefaultAzureCredential`). Tokens are cached and refreshed five minutes before they expire; one
refresh runs at a time however many requests are waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol
from urllib.parse import quote

from ..config import AzureDeployment, OpenAIDeployment
from ..errors import UpstreamError
from ..pipeline.context import Endpoint
from .openai import OpenAIProvider
from .transport import RequestHeaders, Transport

REFRESH_MARGIN = 300.0


class AccessToken(Protocol):
    @property
    def token(self) -> str: ...

    @property
    def expires_on(self) -> int: ...


class TokenCredential(Protocol):
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken: ...

    async def close(self) -> None: ...


def default_credential(client_id: str | None) -> TokenCredential:
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential()


class EntraToken:
    """A cached bearer token, refreshed before expiry."""

    def __init__(self, credential: TokenCredential, scope: str, clock: Any = time.time) -> None:
        self._credential = credential
        self._scope = scope
        self._clock = clock
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        if self._token is not None and self._expires_on - self._clock() > REFRESH_MARGIN:
            return self._token
        async with self._lock:
            if self._token is None or self._expires_on - self._clock() <= REFRESH_MARGIN:
                try:
                    got = await self._credential.get_token(self._scope)
                except Exception as exc:  # azure-identity raises its own ClientAuthenticationError tree
                    raise UpstreamError(
                        f"cannot get an Entra ID token ({type(exc).__name__})", code="upstream_auth"
                    ) from None
                self._token, self._expires_on = got.token, float(got.expires_on)
            return self._token

    async def close(self) -> None:
        await self._credential.close()


class AzureProvider(OpenAIProvider):
    kind = "azure"

    def __init__(self, spec: AzureDeployment, transport: Transport, credential: TokenCredential | None = None) -> None:
        super().__init__(_openai_shape(spec), transport)
        base = f"{spec.endpoint.rstrip('/')}/openai/deployments/{quote(spec.deployment, safe='')}"
        query = f"?api-version={quote(spec.api_version, safe='')}"
        self._urls = {e: f"{base}/{e.value}{query}" for e in Endpoint}
        self._ready_url = f"{spec.endpoint.rstrip('/')}/openai/models{query}"
        self._entra: EntraToken | None = None
        self._bearer: tuple[str, RequestHeaders] | None = None
        if spec.api_key:
            self._headers = self._headers.with_({"api-key": spec.api_key})
        else:
            cred = credential or default_credential(spec.managed_identity_client_id)
            self._entra = EntraToken(cred, spec.token_scope)

    def rotate_api_key(self, api_key: str) -> None:
        self._headers = self._headers.with_({"api-key": api_key})

    async def headers(self) -> RequestHeaders:
        if self._entra is None:
            return self._headers
        token = await self._entra.get()
        if self._bearer is None or self._bearer[0] != token:  # encode once per token, not per call
            self._bearer = (token, self._headers.with_({"Authorization": f"Bearer {token}"}))
        return self._bearer[1]

    async def close(self) -> None:
        if self._entra is not None:
            await self._entra.close()


def _openai_shape(spec: AzureDeployment) -> OpenAIDeployment:
    return OpenAIDeployment(
        id=spec.id,
        api_base=spec.endpoint,
        model=None,
        api_key=None,
        timeout=spec.timeout,
        connect_timeout=spec.connect_timeout,
        headers=spec.headers,
        weight=spec.weight,
        tags=spec.tags,
        max_class=spec.max_class,
    )
