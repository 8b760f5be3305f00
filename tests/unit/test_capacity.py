"""The capacity planner: the utilisation law over measured per-request costs, replicas held under
the target utilisation (and at the minimum), memory from the measured RSS, GPUs from the misses'
tokens, both hostings priced; `predict_scaleout` bound by each replica's core or by the box; and
`interlock plan` reading bench/costs.json's shape and prices from a file and flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlock.capacity import Costs, OneReplicaRun, PathCost, Prices, Workload, plan, predict_scaleout
from interlock.cli import main

COSTS = Costs(
    hit=PathCost(cpu_s=100e-6, rps_one=9000), miss=PathCost(cpu_s=300e-6, rps_one=3000),
    rss_idle_mib=150, rss_load_mib=200, cold_start_s=2.0,
)  # fmt: skip
PRICES = Prices(
    aks_node_hour=0.2, aks_node_vcpu=4, aks_node_gib=16, aks_gpu_node_hour=0.6, aca_vcpu_second=0.00002,
    aca_gib_second=0.000002, aca_gpu_second=0.0003, gpu_prompt_tokens_per_s=10000, gpu_answer_tokens_per_s=1000,
    target_utilization=0.5, min_replicas=2,
)  # fmt: skip


def test_cores_follow_the_hit_rate_and_replicas_keep_the_headroom() -> None:
    # 10,000 req/s, half hits: 10,000 * (0.5 * 100 us + 0.5 * 300 us) = 2 cores busy; at 50 %: 4 replicas
    p = plan(Workload(qps=10_000, hit_rate=0.5, prompt_tokens=0, answer_tokens=0), COSTS, PRICES)
    assert p.cores_busy == pytest.approx(2.0)
    assert p.aks.gateway_replicas == 4 and p.container_apps.gateway_replicas == 4
    assert p.aks.gateway_memory_gib == pytest.approx(4 * 200 / 1024)
    assert p.upstream_qps == pytest.approx(5000)
    more_hits = plan(Workload(qps=10_000, hit_rate=0.9, prompt_tokens=0, answer_tokens=0), COSTS, PRICES)
    assert more_hits.cores_busy == pytest.approx(10_000 * (0.9 * 100e-6 + 0.1 * 300e-6))


def test_a_small_load_still_gets_the_minimum_replicas() -> None:
    p = plan(Workload(qps=1, hit_rate=0, prompt_tokens=10, answer_tokens=10), COSTS, PRICES)
    assert p.aks.gateway_replicas == 2


def test_gpus_come_from_the_misses_tokens() -> None:
    # 20 req/s, 75 % hits: 5 req/s to the model, each 1000/10000 + 200/1000 = 0.3 GPU-seconds: 1.5 busy
    p = plan(Workload(qps=20, hit_rate=0.75, prompt_tokens=1000, answer_tokens=200), COSTS, PRICES)
    assert p.gpu_busy == pytest.approx(1.5)
    assert p.aks.gpus == 3 and p.container_apps.gpus == 3  # 1.5 / 0.5


def test_no_gpu_figures_no_gpus() -> None:
    prices = Prices(aks_node_hour=0.2)
    p = plan(Workload(qps=100, hit_rate=0, prompt_tokens=1000, answer_tokens=200), COSTS, prices)
    assert p.gpu_busy == 0 and p.aks.gpus == 0


def test_both_hostings_are_priced() -> None:
    p = plan(Workload(qps=10_000, hit_rate=0.5, prompt_tokens=1000, answer_tokens=200), COSTS, PRICES)
    gpus = p.aks.gpus
    assert p.aks.nodes == 1  # 4 replicas of one core fit one 4-vCPU node
    assert p.aks.cost_per_hour == pytest.approx(0.2 + gpus * 0.6)
    assert p.container_apps.cost_per_hour == pytest.approx(3600 * (4 * (0.00002 + 2 * 0.000002) + gpus * 0.0003))
    big = plan(Workload(qps=40_000, hit_rate=0.5, prompt_tokens=0, answer_tokens=0), COSTS, PRICES)
    assert big.aks.gateway_replicas == 16 and big.aks.nodes == 4


def test_a_bad_workload_is_refused() -> None:
    with pytest.raises(ValueError):
        Workload(qps=10, hit_rate=1.5, prompt_tokens=1, answer_tokens=1)


def test_scaleout_is_bound_by_each_replicas_core_until_the_box_is_full() -> None:
    # 1 replica at 100 % of its core: 1 / 200 us = 5000 req/s; the rest costs 100 us a request.
    run = OneReplicaRun(rps=5000, p95_ms=20, gateway_cpu_s=200e-6, other_cpu_s=100e-6, cores=2.0)
    two = predict_scaleout(run, 2)
    assert two.bound == "box" and two.rps == pytest.approx(2 / 300e-6)
    assert two.p95_ms == pytest.approx(20 * 5000 / (2 / 300e-6))
    big_box = OneReplicaRun(rps=5000, p95_ms=20, gateway_cpu_s=200e-6, other_cpu_s=100e-6, cores=16.0)
    assert predict_scaleout(big_box, 2).bound == "replicas"
    assert predict_scaleout(big_box, 2).rps == pytest.approx(10_000)
    assert predict_scaleout(big_box, 2).p95_ms == pytest.approx(10)


def test_the_plan_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    costs = tmp_path / "costs.json"
    costs.write_text(json.dumps({
        "hit": {"cpu_s": 100e-6, "rps_one": 9000}, "miss": {"cpu_s": 300e-6, "rps_one": 3000},
        "rss_idle_mib": 150, "rss_load_mib": 200, "cold_start_s": 2.0, "measured": "here",
    }))  # fmt: skip
    prices = tmp_path / "prices.yaml"
    prices.write_text("aks_node_hour: 0.2\ntarget_utilization: 0.5\n")
    args = ["plan", "--costs", str(costs), "--prices", str(prices), "--qps", "10000", "--hit-rate", "0.5"]
    assert main([*args, "--price", "aks-node-hour=1.0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["aks"]["gateway_replicas"] == 4 and out["aks"]["cost_per_hour"] == pytest.approx(1.0)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "AKS" in text and "Container Apps" in text and "gateway cores busy: 2.00" in text
    assert main(["plan", "--costs", str(tmp_path / "missing.json"), "--qps", "1"]) == 2
