from __future__ import annotations

from pathlib import Path

import pytest

from interlock.cli import main


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("models:\n  - name: m\n    deployments:\n      - {id: a, backend: local}\n")
    assert main(["check-config", str(good)]) == 0
    assert "1 model group(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: m\n    deployments:\n      - {id: a, backend: local, n_ctx: big}\n")
    assert main(["check-config", str(bad)]) == 1
    assert "$.models[0].deployments[0].n_ctx" in capsys.readouterr().err


def test_serve_on_a_port_in_use_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    config = tmp_path / "c.yaml"
    config.write_text(
        "models:\n  - name: m\n    deployments:\n      - {id: a, backend: openai, api_base: 'http://127.0.0.1:9/v1'}\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--config", str(config), "--port", str(port), "--http", "native"]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
