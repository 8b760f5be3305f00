from __future__ import annotations

import interlock


def test_public_api() -> None:
    assert set(interlock.__all__) == {
        "ConfigError", "InterlockError", "Settings", "build", "create_app", "default_settings",
        "load_settings", "parse_settings",
    }  # fmt: skip
