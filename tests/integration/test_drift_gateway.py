"""Drift monitoring through the running gateway: a reference built with `interlock drift
baseline` from JSON Lines, ordinary traffic that reports no drift, shifted traffic (French,
three times longer) that does, in GET /admin/drift, in /metrics and in the HTML report."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.fake_upstream import FakeUpstream, chat_answer
from tests.support.procs import ROOT, Gateway, RedisServer, http_get

pytestmark = pytest.mark.integration

TOPICS = ["my invoice", "the mobile app", "a password reset", "the delivery date", "my subscription"]
FRENCH = ["ma facture", "l'application mobile", "la date de livraison", "mon abonnement"]


def english(rng: random.Random) -> dict[str, Any]:
    words = " ".join(rng.choice(["please", "quickly", "today", "again", "kindly"]) for _ in range(rng.randint(3, 9)))
    content = f"Can you help me with {rng.choice(TOPICS)} {words}?"
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def french(rng: random.Random) -> dict[str, Any]:
    content = " ".join(
        f"Pouvez-vous m'aider avec {rng.choice(FRENCH)} s'il vous plaît, c'est urgent."
        for _ in range(rng.randint(3, 5))
    )
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interlock", "drift", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.fixture(scope="module")
def setup(session_tmp: Path, upstream: FakeUpstream) -> Iterator[dict[str, Any]]:
    tmp = session_tmp / "drift"
    tmp.mkdir()
    redis_server = RedisServer()
    rng = random.Random(3)
    with (tmp / "past.jsonl").open("w") as f:
        for _ in range(400):
            request = english(rng)
            f.write(json.dumps({"request": request, "response": chat_answer(request, "answer from ok")}) + "\n")
    config = {
        "models": [
            {
                "name": "m",
                "cache": {"mode": "off"},
                "deployments": [{"id": "m", "backend": "openai", "api_base": upstream.base("ok")}],
            }
        ],
        "drift": {
            "redis": {"url": redis_server.url},
            "window_s": 600,
            "evaluate_s": 0.5,
            "max_per_s": 100_000,
            "references": {"m": "ref.profile"},
        },
        "alerts": {  # the fake upstream records any POST: it plays the webhook and the pipeline
            "evaluate_s": 0.5,
            "webhooks": {"oncall": {"url": upstream.base("oncall") + "/alerts", "kind": "alertmanager"}},
            "retrain": {"url": upstream.base("retrain") + "/run", "cooldown_s": 3600},
            "rules": [
                {
                    "name": "TrafficDrift",
                    "signal": "drift_share",
                    "op": ">",
                    "threshold": 0.0,
                    "min_requests": 100,
                    "actions": ["oncall", "retrain"],
                }
            ],
        },
    }
    path = tmp / "interlock.yaml"
    path.write_text(yaml.safe_dump(config))
    made = cli(
        "baseline",
        "--config",
        str(path),
        "--model",
        "m",
        "--jsonl",
        str(tmp / "past.jsonl"),
        "--out",
        str(tmp / "ref.profile"),
    )
    assert made.returncode == 0, made.stderr
    assert "reference of 400 observation(s)" in made.stdout
    gateway = Gateway(tmp, {**config, "drift": {**config["drift"], "references": {"m": str(tmp / "ref.profile")}}})
    yield {"gateway": gateway, "config": path, "tmp": tmp, "rng": rng, "upstream": upstream}
    gateway.stop()
    redis_server.stop()


async def send(gateway: Gateway, bodies: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as session:
        for body in bodies:
            async with session.post(gateway.url + "/v1/chat/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()


async def posts(upstream: FakeUpstream, name: str) -> list[dict[str, Any]]:
    for _ in range(50):
        if upstream.state.bodies(name):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # anything more that would come
    return upstream.state.bodies(name)


async def drift_report(gateway: Gateway, n: int) -> dict[str, Any]:
    """The group-wide report once the live window holds `n` observations."""
    for _ in range(100):
        await asyncio.sleep(0.2)
        status, _, body = http_get(gateway.url + "/admin/drift")
        assert status == 200, body
        reports = {(r["model"], r["version"]): r["report"] for r in json.loads(body)["data"]}
        report = reports.get(("m", "all"))
        if report is not None and report["n_live"] >= n:
            return report
    raise AssertionError(f"no report over {n} observations: {reports}")


async def test_ordinary_traffic_is_quiet_and_shifted_traffic_drifts(setup: dict[str, Any]) -> None:
    gateway, rng = setup["gateway"], setup["rng"]
    await send(gateway, [english(rng) for _ in range(200)])
    report = await drift_report(gateway, 200)
    assert not report["dataset_drifted"], report["drifted_features"]
    await asyncio.sleep(1.0)
    assert not setup["upstream"].state.bodies("oncall")  # nothing fired on ordinary traffic
    assert report["n_reference"] == 400

    await send(gateway, [french(rng) for _ in range(200)])
    report = await drift_report(gateway, 400)
    assert report["dataset_drifted"]
    assert {"language", "prompt_tokens"} <= set(report["drifted_features"])

    posted = await posts(setup["upstream"], "oncall")
    alert = posted[0]["alerts"][0]
    assert posted[0]["status"] == "firing" and alert["labels"]["alertname"] == "TrafficDrift"
    assert alert["labels"]["model"] == "m" and alert["labels"]["version"] == "all"
    (retrain,) = await posts(setup["upstream"], "retrain")  # once: the cool-down holds the rest
    assert retrain["drift_report"]["dataset_drifted"] and "language" in retrain["drift_report"]["drifted_features"]

    _, _, metrics = http_get(gateway.url + "/metrics")
    share = [
        line
        for line in metrics.decode().splitlines()
        if line.startswith('interlock_drift_share{model="m",version="all"}')
    ]
    assert share and float(share[0].rsplit(" ", 1)[1]) > 0

    out = setup["tmp"] / "report.html"
    made = cli(
        "report",
        "--config",
        str(setup["config"]),
        "--model",
        "m",
        "--reference",
        str(setup["tmp"] / "ref.profile"),
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    page = out.read_text()
    assert "<svg" in page and "language" in page and "http://" not in page and "https://" not in page
