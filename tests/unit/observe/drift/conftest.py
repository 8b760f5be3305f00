"""The language identifier (fastText) the drift tests share: loaded once per test module."""

from __future__ import annotations

import pytest

from interlock.observe.drift import LanguageIdentifier


@pytest.fixture(scope="module")
def language() -> LanguageIdentifier:
    return LanguageIdentifier()
