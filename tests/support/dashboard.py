"""A gateway with everything the dashboard shows, for its browser tests, its benchmark and its
screenshots: two model groups on the fake upstream (one cached, one in a canary rollout held at
50 %), API keys and the audit trail in SQLite, limits counted in Redis, drift against a reference
built with `interlock drift baseline`, and dashboard sessions in Redis. Also Debian's chromium
driven by Playwright (never a browser Playwright downloads)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from tests.support.fake_upstream import FakeUpstream, chat_answer
from tests.support.procs import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SECRET = "dashboard-test-secret-0123456789"
TOPICS = ["my invoice", "the mobile app", "a password reset", "the delivery date", "my subscription"]


def question(rng: random.Random, model: str = "chat") -> dict[str, Any]:
    words = " ".join(rng.choice(["please", "quickly", "today", "again", "kindly"]) for _ in range(rng.randint(3, 9)))
    return {
        "model": model,
        "messages": [{"role": "user", "content": f"Can you help me with {rng.choice(TOPICS)} {words}?"}],
    }


def config(upstream: FakeUpstream, redis_url: str, tmp: Path, prefix: str) -> dict[str, Any]:
    price = {"input": 0.5, "output": 1.5}
    return {
        "models": [
            {"name": "chat", "deployments": [
                {"id": "chat-east", "backend": "openai", "api_base": upstream.base("ok"), "weight": 3, "price": price},
                {"id": "chat-west", "backend": "openai", "api_base": upstream.base("ok"), "weight": 1, "price": price},
            ]},
            {"name": "canary", "cache": {"enabled": False}, "deployments": [
                {"id": "canary-v1", "backend": "openai", "api_base": upstream.base("ok"), "version": "v1", "timeout": 5},
                {"id": "canary-v2", "backend": "openai", "api_base": upstream.base("ok"), "version": "v2", "timeout": 5},
            ]},
        ],
        "router": {"retries": 0},
        "rollout": {"redis": {"url": redis_url}, "prefix": prefix + "rollouts:", "poll_s": 0.25, "lease_ttl_s": 2,
                    "status_window_s": 60},
        "rollouts": [{"model": "canary", "stable": "v1", "candidate": "v2", "default_analysis": False, "sticky": "user",
                      "steps": [{"set_weight": 50}, {"pause": {}}]}],
        "security": {"server_secret": SECRET, "keys": {"sqlite_path": str(tmp / "keys.db")}, "key_cache_ttl": 0.5},
        "audit": {"sqlite_path": str(tmp / "audit.db")},
        "limits": {"redis": {"url": redis_url}, "tenants": {"default": {"rpm": 100_000, "tpm": 10_000_000, "budget": 50}}},
        "drift": {"window_s": 600, "evaluate_s": 1, "max_per_s": 100_000, "references": {"chat": str(tmp / "ref.profile")}},
        "ui": {"redis": {"url": redis_url}, "prefix": prefix + "ui:", "audit_verify_s": 1},
    }  # fmt: skip


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "interlock", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def prepare(tmp: Path, settings: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """Write the config, the drift reference and one key per role: (config path, role -> key)."""
    rng = random.Random(3)
    with (tmp / "past.jsonl").open("w") as f:
        for _ in range(300):
            request = question(rng)
            f.write(json.dumps({"request": request, "response": chat_answer(request, "answer from ok")}) + "\n")
    path = tmp / "interlock.yaml"
    path.write_text(yaml.safe_dump(settings))
    out = tmp / "ref.profile"
    cli(
        "drift",
        "baseline",
        "--config",
        str(path),
        "--model",
        "chat",
        "--jsonl",
        str(tmp / "past.jsonl"),
        "--out",
        str(out),
    )
    keys = {}
    for role in ("admin", "operator", "auditor", "user"):
        made = cli("keys", "create", "--config", str(path), "--name", f"{role} key", "--role", role)
        keys[role] = json.loads(made)["key"]
    return path, keys


def login(browser: Any, url: str, key: str) -> Any:
    """A fresh browser context at 1280x800, logged in through the form: its page."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(url + "/ui")
    page.fill("#key", key)
    page.click("button[type=submit]")
    return page


def chat(url: str, body: dict[str, Any], key: str) -> tuple[int, str | None]:
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()
            return resp.status, resp.headers.get("x-interlock-deployment")
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("x-interlock-deployment")


class Traffic:
    """Chat requests to both groups until stopped, a quarter of them repeated (cache hits)."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.sent = 0
        self.seen: list[tuple[str, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = random.Random(7)
        while not self._stop.is_set():
            model = rng.choice(["chat", "chat", "canary"])
            body = {**question(rng, model), "user": f"user-{rng.randrange(1000)}"}
            if model == "chat" and rng.random() < 0.25:
                body = {**question(random.Random(1), model), "temperature": 0}
            _, deployment = chat(self.url, body, self.key)
            self.seen.append((model, deployment))
            self.sent += 1
            self._stop.wait(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
