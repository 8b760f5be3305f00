"""Azure OpenAI both ways. Azure itself cannot be reached from here: the upstream is the fake,
which checks the Azure paths, the api-version query and the api-key or bearer token. The Entra
ID token comes from the real azure-identity ManagedIdentityCredential, talking to the fake's
App Service-style identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.fake_upstream import AZURE_KEY, AZURE_TOKEN, IDENTITY_HEADER, FakeUpstream
from tests.support.procs import Gateway

pytestmark = pytest.mark.integration
API_VERSION = "2024-10-21"


@pytest.fixture(scope="module")
def gateway(session_tmp: Path, upstream: FakeUpstream) -> Iterator[Gateway]:
    endpoint = f"http://127.0.0.1:{upstream.port}/azure"
    config = {
        "models": [
            {
                "name": "gpt-4o",
                "deployments": [
                    {"id": "az-key", "backend": "azure", "endpoint": endpoint, "deployment": "gpt4o-east",
                     "api_version": API_VERSION, "api_key": "os.environ/TEST_AZURE_KEY"},
                ],
            },
            {
                "name": "gpt-4o-mi",
                "deployments": [
                    {"id": "az-mi", "backend": "azure", "endpoint": endpoint, "deployment": "gpt4o-west",
                     "api_version": API_VERSION, "managed_identity_client_id": "11111111-2222-3333-4444-555555555555"},
                ],
            },
        ]
    }  # fmt: skip
    env = {
        "TEST_AZURE_KEY": AZURE_KEY,
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{upstream.port}/identity",
        "IDENTITY_HEADER": IDENTITY_HEADER,
    }
    gw = Gateway(session_tmp, config, env=env)
    yield gw
    gw.stop()


def test_azure_client_against_azure_style_paths_and_api_key_upstream(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.reset()
    client = openai.AzureOpenAI(
        azure_endpoint=gateway.url, api_key="caller-key", api_version=API_VERSION, max_retries=0
    )
    out = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "azure:gpt4o-east"
    (seen,) = [s for s in upstream.state.seen if s.scenario == "azure"]
    assert seen.path == "/azure/openai/deployments/gpt4o-east/chat/completions"
    assert seen.query == {"api-version": API_VERSION}
    assert seen.headers["api-key"] == AZURE_KEY
    assert "Authorization" not in seen.headers
    emb = client.embeddings.create(model="gpt-4o", input="hello")
    assert len(emb.data[0].embedding) == 3


def test_managed_identity_token_is_fetched_once_and_reused(gateway: Gateway, upstream: FakeUpstream) -> None:
    upstream.reset()
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    for _ in range(3):
        out = client.chat.completions.create(model="gpt-4o-mi", messages=[{"role": "user", "content": "hi"}])
        assert out.choices[0].message.content == "azure:gpt4o-west"
    calls = [s for s in upstream.state.seen if s.scenario == "azure"]
    assert [c.headers["Authorization"] for c in calls] == [f"Bearer {AZURE_TOKEN}"] * 3
    assert all("api-key" not in c.headers for c in calls)
    assert upstream.state.calls["identity"] == 1  # cached until five minutes before expiry
    (identity,) = [s for s in upstream.state.seen if s.scenario == "identity"]
    assert identity.query["resource"] == "https://cognitiveservices.azure.com"
