"""Processes the integration tests start: the gateway itself, Redis, llama.cpp's server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if http_get(url, timeout=1.0)[0] < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def http_get(url: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """GET without raising on HTTP error statuses: (status, lower-cased headers, body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def json_request(gw: Gateway, method: str, path: str, key: str | None, body: Any = None) -> tuple[int, Any]:
    """A JSON request to the gateway with `Authorization: Bearer key`: (status, decoded body)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(gw.url + path, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Gateway:
    """`interlock serve` in a subprocess, with a config written to a temporary file."""

    def __init__(self, tmp: Path, config: dict[str, Any] | None, workers: int = 1, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"gateway-{self.port}.log"
        args = [sys.executable, "-m", "interlock", "serve", "--port", str(self.port)]
        if config is not None:
            config_path = tmp / f"gateway-{self.port}.yaml"
            config_path.write_text(yaml.safe_dump(config))
            args += ["--config", str(config_path)]
        if workers > 1:
            args += ["--workers", str(workers)]
        http = os.environ.get("INTERLOCK_TEST_HTTP")  # run the suite on another HTTP server: uvicorn
        if http:
            args += ["--http", http]
        full_env = {**os.environ, **(env or {})}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT)
        try:
            wait_http(self.url + "/healthz", proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"gateway did not start:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


class RedisServer:
    """A Redis of the test's own, on its own port, so it can be stopped and started mid-test."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--enable-debug-command",  # DEBUG SLEEP freezes it to play a slow Redis
                "local",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class LlamaServer:
    """llama-cpp-python's own OpenAI-compatible server: the stand-in for vLLM."""

    def __init__(self, tmp: Path, model_path: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        config = {
            "host": "127.0.0.1",
            "port": self.port,
            "models": [
                {"model": model_path, "model_alias": "smollm2", "n_ctx": 2048, "verbose": False},
                {"model": model_path, "model_alias": "smollm2-embed", "embedding": True, "verbose": False},
            ],
        }
        config_path = tmp / "llama-server.json"
        config_path.write_text(json.dumps(config))
        self.log_path = tmp / "llama-server.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(self.url + "/models", timeout=120, proc=self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"llama server did not start:\n{self.log_path.read_text()}") from None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def metric(gw: Gateway, sample: str) -> float:
    """The value of one Prometheus sample of a running gateway (`name{label="v",...}` exactly as
    exported), 0 when it is not there yet."""
    for line in http_get(gw.url + "/metrics")[2].decode().splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
