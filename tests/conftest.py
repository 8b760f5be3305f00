from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as `interlock serve` does, before numpy loads

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.support.fake_upstream import FakeUpstream


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("interlock")


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _close_openai_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every openai client a test made, so its pooled sockets do not outlive the test
    (an unclosed socket is a ResourceWarning, and warnings are errors here)."""
    made: list[openai.OpenAI] = []
    original = openai.OpenAI.__init__

    def init(self: openai.OpenAI, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(openai.OpenAI, "__init__", init)
    yield
    for client in made:
        client.close()
