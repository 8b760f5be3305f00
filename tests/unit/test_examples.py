"""Every example config the README shows is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock import load_settings

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
ENV = {
    "VLLM_API_KEY": "x", "AZURE_CLIENT_ID": "x", "AOAI_WESTEUROPE_KEY": "x", "OPENAI_API_KEY": "x",
    "ONCALL_URL": "https://oncall.example/integrations/v1/alertmanager/x/", "CHATOPS_TOKEN": "x", "AML_TOKEN": "x",
    "INTERLOCK_SECRET": "a-secret-of-16-characters-or-more",
    "INTERLOCK_TOKEN_KEY": "a-tokenization-key-of-32-characters-or-more",
}  # fmt: skip


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(path: Path) -> None:
    settings = load_settings(path, environ=ENV)
    assert settings.models


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 4
