"""Rollouts in the running gateway: two `interlock serve` processes sharing a real Redis, the fake
upstream playing the versions (`ok` for stable and healthy candidates, `flaky` failing 30% of
requests, `fail` failing all). A healthy canary is promoted through every step, a flaky one is
aborted within two analysis intervals and both processes stop sending it traffic within about a
second, the same `user` stays on one version, shadow traffic never changes or fails the caller's
answer, the admin API and `interlock rollout` work, and a restarted gateway resumes the rollout."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from interlock.rollout.store import Snapshot, decode
from tests.support.fake_upstream import FakeUpstream
from tests.support.procs import ROOT, Gateway, RedisServer, http_get

pytestmark = pytest.mark.integration
PREFIX = "test:rollouts:"
INTERVAL = 2.0  # the analysis interval, seconds
GATE = {
    "interval_s": INTERVAL, "count": 1, "min_requests": 5,
    "metrics": [{"condition": "error_rate < 0.05"}, {"condition": "p95_latency_ms < stable + 200"}],
}  # fmt: skip
CANARY = [{"set_weight": 20}, {"pause": {"duration_s": 2}}, {"analysis": "gate"}, {"set_weight": 60},
          {"pause": {"duration_s": 2}}]  # fmt: skip


def group(name: str, candidate_scenario: str, upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "name": name,
        "cache": {"enabled": False},
        "deployments": [
            {"id": f"{name}-v1", "backend": "openai", "api_base": upstream.base("ok"), "version": "v1", "timeout": 5},
            {"id": f"{name}-v2", "backend": "openai", "api_base": upstream.base(candidate_scenario), "version": "v2",
             "timeout": 5},
        ],
    }  # fmt: skip


def config(upstream: FakeUpstream, redis_url: str) -> dict[str, Any]:
    rollout = {"stable": "v1", "candidate": "v2", "sticky": "user"}
    return {
        "models": [group("good", "ok", upstream), group("bad", "flaky", upstream), group("sticky", "ok", upstream),
                   group("shadow", "fail", upstream)],
        # Failures must reach the caller for the analysis to see them: no retries, and circuits that
        # do not open and send the flaky candidate's share to the stable version behind its back.
        "router": {"retries": 0, "circuit": {"failures": 100000}},
        "rollout": {"redis": {"url": redis_url}, "prefix": PREFIX, "poll_s": 0.25, "lease_ttl_s": 2,
                    "status_window_s": 60},
        "rollouts": [
            {"model": "good", **rollout, "templates": {"gate": GATE}, "steps": CANARY},
            {"model": "bad", **rollout, "templates": {"gate": GATE}, "steps": CANARY},
            # Held at 50 % by hand, without the default analysis a rollout that names none gets.
            {"model": "sticky", **rollout, "default_analysis": False, "steps": [{"set_weight": 50}, {"pause": {}}]},
            {"model": "shadow", **rollout, "steps": [{"shadow": {"percent": 100}}, {"pause": {}}]},
        ],
    }  # fmt: skip


def chat(url: str, model: str, user: str) -> tuple[int, str | None, dict[str, Any]]:
    body = json.dumps({"model": model, "user": user, "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.headers.get("x-interlock-deployment"), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        data = err.read()
        return err.code, err.headers.get("x-interlock-deployment"), json.loads(data) if data else {}


def admin(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


class Pair:
    def __init__(self, tmp: Path, upstream: FakeUpstream, redis_server: RedisServer) -> None:
        self.tmp = tmp
        self.config = config(upstream, redis_server.url)
        self.redis = redis.Redis.from_url(redis_server.url)
        self.redis.flushall()
        self.gateways: list[Gateway] = []
        try:
            for _ in range(2):
                self.gateways.append(Gateway(tmp, self.config))
        except BaseException:
            self.close()
            raise

    def snapshot(self, model: str) -> Snapshot:
        blob = self.redis.hget(f"{PREFIX}rollout:{model}", "blob")
        assert blob is not None
        return decode(blob)  # type: ignore[arg-type]  # redis-py's sync stubs type it loosely

    def restart(self, i: int) -> None:
        self.gateways[i].stop()
        self.gateways[i] = Gateway(self.tmp, self.config)

    def close(self) -> None:
        for g in self.gateways:
            g.stop()
        self.redis.close()


@pytest.fixture(scope="module")
def pair(session_tmp: Path, upstream: FakeUpstream) -> Iterator[Pair]:
    server = RedisServer()
    try:
        p = Pair(session_tmp, upstream, server)
        try:
            yield p
        finally:
            p.close()
    finally:
        server.stop()


class Traffic:
    """Requests to the given groups, alternating between the gateways, until stopped."""

    def __init__(self, urls: list[str], models: list[str]) -> None:
        self.urls = urls
        self.models = models
        self.seen: list[tuple[float, str, int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = random.Random(5)
        i = 0
        while not self._stop.is_set():
            i += 1
            model = self.models[i % len(self.models)]
            status, deployment, _ = chat(self.urls[i % len(self.urls)], model, f"user-{rng.randrange(10_000)}")
            self.seen.append((time.time(), model, status, deployment))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_healthy_candidate_promoted_flaky_one_aborted_on_both_processes(pair: Pair) -> None:
    urls = [g.url for g in pair.gateways]
    traffic = Traffic(urls, ["good", "bad"])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            good, bad = pair.snapshot("good").state, pair.snapshot("bad").state
            if good.phase == "Healthy" and bad.phase == "Degraded":
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"good is {good.phase} at step {good.step}, bad is {bad.phase} at step {bad.step}")
        aborted_seen = time.time()
    finally:
        traffic.stop()

    # The healthy candidate went through every step: 20% and 60%, then 100% after an analysis that passed.
    assert good.weights == {"v2": 100.0}
    assert [v.phase for v in good.verdicts] == ["Successful"]
    # The flaky one failed its first analysis interval (well within two) and went to 0 at once.
    assert bad.weights == {"v1": 100.0, "v2": 0.0}
    (verdict,) = bad.verdicts
    assert verdict.phase == "Failed" and "error_rate" in verdict.message
    assert verdict.at - bad.step_started_at <= 2 * INTERVAL + 1.0
    served = Counter((m, d) for _, m, s, d in traffic.seen)
    assert served[("good", "good-v2")] > 0 and served[("bad", "bad-v2")] > 0

    # Within about a second of the abort, neither process sends the flaky candidate anything.
    time.sleep(max(0.0, aborted_seen + 1.0 - time.time()))
    for url in urls:
        for i in range(30):
            status, deployment, _ = chat(url, "bad", f"after-{i}")
            assert status == 200 and deployment == "bad-v1"
            status, deployment, _ = chat(url, "good", f"after-{i}")
            assert status == 200 and deployment == "good-v2"


def test_the_same_user_stays_on_one_version_on_both_processes(pair: Pair) -> None:
    urls = [g.url for g in pair.gateways]
    versions: dict[str, set[str | None]] = {}
    for user in range(40):
        for i in range(4):
            status, deployment, _ = chat(urls[i % 2], "sticky", f"sticky-{user}")
            assert status == 200
            versions.setdefault(f"sticky-{user}", set()).add(deployment)
    assert all(len(v) == 1 for v in versions.values())
    landed = Counter(next(iter(v)) for v in versions.values())
    assert set(landed) == {"sticky-v1", "sticky-v2"}  # 50/50: both versions get users


def test_shadow_traffic_never_changes_or_fails_the_callers_answer(pair: Pair, upstream: FakeUpstream) -> None:
    before = upstream.state.calls["fail"]
    for i in range(20):
        status, deployment, body = chat(pair.gateways[i % 2].url, "shadow", f"shadow-{i}")
        assert status == 200 and deployment == "shadow-v1"
        assert body["choices"][0]["message"]["content"] == "answer from ok"
    deadline = time.monotonic() + 5
    while upstream.state.calls["fail"] - before < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.state.calls["fail"] - before == 20  # every request copied to the (failing) candidate
    shadow_errors = 0.0
    for g in pair.gateways:
        for line in http_get(g.url + "/metrics")[2].decode().splitlines():
            if line.startswith("interlock_shadow_requests_total{") and 'model="shadow"' in line:
                assert 'outcome="error"' in line
                shadow_errors += float(line.rsplit(" ", 1)[1])
            # The shadows are not callers' requests: no failed request of the group was counted.
            assert not (line.startswith("interlock_errors_total{") and 'model="shadow"' in line)
    assert shadow_errors == 20


def test_admin_api_and_cli(pair: Pair) -> None:
    url = pair.gateways[0].url
    assert admin(url, "GET", "/admin/rollouts/nope")[0] == 404
    status, body = admin(url, "POST", "/admin/rollouts", {"model": "good", "stable": "v1", "candidate": "v1"})
    assert status == 400 and "$.candidate" in body["error"]["message"]
    status, body = admin(url, "POST", "/admin/rollouts", {"model": "good", "stable": "v1", "candidate": "v9",
                                                         "steps": [{"set_weight": 10}]})  # fmt: skip
    assert status == 400 and "$.candidate" in body["error"]["message"]
    status, body = admin(url, "POST", "/admin/rollouts", {"model": "good", "stable": "v1", "candidate": "v2",
                                                         "steps": [{"set_weight": 10, "pause": {}}]})  # fmt: skip
    assert status == 400 and "$.steps[0]" in body["error"]["message"]
    assert admin(url, "POST", "/admin/rollouts/bad/resume")[0] == 409  # Degraded: nothing to resume
    assert admin(url, "POST", "/admin/rollouts/bad/explode")[0] == 404
    assert admin(url, "GET", "/admin/rollouts/bad/pause")[0] == 405

    status, body = admin(url, "GET", "/admin/rollouts/bad")
    assert status == 200 and body["phase"] == "Degraded"
    assert {v["version"]: v["weight"] for v in body["versions"]} == {"v1": 100.0, "v2": 0.0}
    cli = [sys.executable, "-m", "interlock", "rollout"]
    out = subprocess.run([*cli, "status", "bad", "--url", url], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("bad: Degraded (analysis)")
    v2 = next(line for line in lines if line.startswith("v2"))
    assert v2.split()[1] == "0%" and int(v2.split()[2]) > 0 and float(v2.split()[3].rstrip("%")) > 5
    assert "last analysis: Failed" in out.stdout and "error_rate" in out.stdout

    # A new rollout of the aborted group through the CLI, then steered by hand.
    spec = pair.tmp / "rollout-bad.yaml"
    spec.write_text(json.dumps({"model": "bad", "stable": "v1", "candidate": "v2", "steps": [{"pause": {}}]}))
    out = subprocess.run([*cli, "start", "--spec", str(spec), "--url", url], capture_output=True, text=True,
                         cwd=ROOT, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("bad: Progressing, step 0 of 1")  # the lease holder moves it on next poll
    deadline = time.monotonic() + 5
    while pair.snapshot("bad").state.phase != "Paused" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pair.snapshot("bad").state.reason == "pause"
    out = subprocess.run([*cli, "start", "--spec", str(spec), "--url", url], capture_output=True, text=True,
                         cwd=ROOT, timeout=30)  # fmt: skip
    assert out.returncode == 1 and "409" in out.stderr
    status, body = admin(pair.gateways[1].url, "POST", "/admin/rollouts/bad/abort")
    assert status == 200 and body["phase"] == "Aborted"


def test_a_restarted_gateway_resumes_the_rollout(pair: Pair) -> None:
    before = pair.snapshot("sticky")
    assert before.state.phase == "Paused" and before.state.weights == {"v1": 50.0, "v2": 50.0}
    pair.restart(0)
    after = pair.snapshot("sticky")
    assert after.state.revision == before.state.revision  # resumed as it was, not started again
    landed = {chat(pair.gateways[0].url, "sticky", f"sticky-{u}")[1] for u in range(20)}
    assert landed == {"sticky-v1", "sticky-v2"}
    # Promoted by hand on one process: every user is on v2 on both within about a second.
    assert admin(pair.gateways[1].url, "POST", "/admin/rollouts/sticky/promote")[0] == 200
    time.sleep(1.0)
    for g in pair.gateways:
        assert {chat(g.url, "sticky", f"sticky-{u}")[1] for u in range(20)} == {"sticky-v2"}
