"""The capacity planner behind `interlock plan`: pure arithmetic over measured costs.

The costs come from `bench/scaleout.py`, which writes `bench/costs.json` from runs on this machine:
the gateway's CPU seconds per request on the cache-hit and the cache-miss path (one process is
one event loop, so one replica uses at most one core), its resident memory idle and under load,
and its cold start. From a workload (requests per second, cache hit rate, prompt and answer
sizes) the planner works out the gateway's cores (the utilisation law, U = X * D, held below a
target utilisation), the replicas, their memory, and the GPU pool the misses need, then prices
both hostings. What a GPU serves per second cannot be measured here (no GPU): it is an input.

`predict_scaleout` is the same law turned on the benchmark box itself, to check the model against
a measurement: from a one-replica run it predicts the throughput and P95 of N replicas sharing
the box's cores with the load balancer, the upstream and the load generator.
"""

from __future__ import annotations

import math

import msgspec


class PathCost(msgspec.Struct, frozen=True, kw_only=True):
    cpu_s: float  # gateway CPU seconds per request
    rps_one: float  # requests/s one replica served on the benchmark box (context, not used in sizing)


class Costs(msgspec.Struct, frozen=True, kw_only=True):
    """What `bench/scaleout.py` measured (bench/costs.json)."""

    hit: PathCost
    miss: PathCost
    rss_idle_mib: float
    rss_load_mib: float
    cold_start_s: float  # process start to the first 200 on /readyz, remote backends only
    cold_start_embedded_s: float | None = None
    measured: str = ""  # date, commit and machine of the measurement


class Workload(msgspec.Struct, frozen=True, kw_only=True):
    qps: float
    hit_rate: float
    prompt_tokens: int
    answer_tokens: int

    def __post_init__(self) -> None:
        if self.qps <= 0 or not 0 <= self.hit_rate <= 1 or self.prompt_tokens < 0 or self.answer_tokens < 0:
            raise ValueError("expected qps > 0, 0 <= hit_rate <= 1 and sizes >= 0")


class Prices(msgspec.Struct, frozen=True, kw_only=True):
    """Prices per hour (AKS) and per second (Container Apps), in one currency, from the operator.

    The GPU throughput figures describe the self-hosted model on one GPU at the batch sizes it runs
    (vLLM's own benchmark on the target GPU gives them); they are not measured by this repository.
    """

    aks_node_hour: float  # one CPU node
    aks_node_vcpu: float = 4.0
    aks_node_gib: float = 16.0
    aks_gpu_node_hour: float = 0.0  # one GPU node (one GPU)
    aca_vcpu_second: float = 0.0
    aca_gib_second: float = 0.0
    aca_gpu_second: float = 0.0  # a serverless GPU replica, all in
    gpu_prompt_tokens_per_s: float = 0.0  # prefill throughput of one GPU
    gpu_answer_tokens_per_s: float = 0.0  # decode throughput of one GPU (all sequences together)
    target_utilization: float = 0.6  # of a core and of a GPU, leaving headroom for bursts
    min_replicas: int = 2


class Hosting(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    gateway_replicas: int
    gateway_vcpu: float
    gateway_memory_gib: float
    gpus: int
    nodes: int  # AKS: CPU nodes; Container Apps: 0
    cost_per_hour: float


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    cores_busy: float  # gateway cores the workload keeps busy (before headroom)
    upstream_qps: float  # the misses: what reaches a model
    gpu_busy: float  # GPUs the misses keep busy (before headroom); 0 when no GPU figures are given
    aks: Hosting
    container_apps: Hosting


def _ceil(x: float) -> int:
    """Whole units for `x`, not one more for a float's rounding error (1.5000000000000002 / 0.5)."""
    return math.ceil(x - 1e-9)


def plan(workload: Workload, costs: Costs, prices: Prices) -> Plan:
    h = workload.hit_rate
    cpu_per_request = h * costs.hit.cpu_s + (1 - h) * costs.miss.cpu_s
    cores_busy = workload.qps * cpu_per_request
    util = prices.target_utilization
    replicas = max(prices.min_replicas, _ceil(cores_busy / util))
    memory_gib = replicas * costs.rss_load_mib / 1024
    upstream_qps = workload.qps * (1 - h)
    gpu_busy = 0.0
    if prices.gpu_prompt_tokens_per_s > 0 and prices.gpu_answer_tokens_per_s > 0:
        per_request = (
            workload.prompt_tokens / prices.gpu_prompt_tokens_per_s
            + workload.answer_tokens / prices.gpu_answer_tokens_per_s
        )
        gpu_busy = upstream_qps * per_request
    gpus = _ceil(gpu_busy / util) if gpu_busy > 0 else 0
    # AKS: replicas request one core each and their memory under load; nodes fit whichever binds.
    nodes = max(1, math.ceil(replicas / math.floor(prices.aks_node_vcpu)), math.ceil(memory_gib / prices.aks_node_gib))
    aks = Hosting(
        name="AKS", gateway_replicas=replicas, gateway_vcpu=float(replicas), gateway_memory_gib=memory_gib,
        gpus=gpus, nodes=nodes, cost_per_hour=nodes * prices.aks_node_hour + gpus * prices.aks_gpu_node_hour,
    )  # fmt: skip
    # Container Apps: 1 vCPU and 2 GiB per replica, a pairing of the consumption profile (the memory
    # measured under load is well below it).
    aca_memory = 2.0
    aca_cost = 3600 * (
        replicas * (prices.aca_vcpu_second + aca_memory * prices.aca_gib_second) + gpus * prices.aca_gpu_second
    )
    aca = Hosting(
        name="Container Apps", gateway_replicas=replicas, gateway_vcpu=float(replicas),
        gateway_memory_gib=replicas * aca_memory, gpus=gpus, nodes=0, cost_per_hour=aca_cost,
    )  # fmt: skip
    return Plan(cores_busy=cores_busy, upstream_qps=upstream_qps, gpu_busy=gpu_busy, aks=aks, container_apps=aca)


class OneReplicaRun(msgspec.Struct, frozen=True, kw_only=True):
    """A closed-loop run (a fixed number of connections) through the load balancer to one replica."""

    rps: float
    p95_ms: float
    gateway_cpu_s: float  # gateway CPU seconds per request
    other_cpu_s: float  # everything else on the box per request: balancer, upstream, load generator, Redis
    cores: float  # cores our processes had: their CPU plus the box's idle time, per second of the run


class Prediction(msgspec.Struct, frozen=True, kw_only=True):
    rps: float
    p95_ms: float
    bound: str  # "replicas" (each replica's one core) or "box" (the cores they share)


def predict_scaleout(run: OneReplicaRun, replicas: int) -> Prediction:
    """Throughput of N single-core replicas: each serves at most 1 / D_gateway, and together with the
    rest of the box they cannot use more than its cores: X = min(N / D_g, cores / (D_g + D_other)).
    Latency from Little's law at the same connection count: the mean scales with 1 / X, and the
    P95 is taken to keep its ratio to the mean."""
    per_replicas = replicas / run.gateway_cpu_s
    per_box = run.cores / (run.gateway_cpu_s + run.other_cpu_s)
    rps = min(per_replicas, per_box)
    return Prediction(
        rps=rps, p95_ms=run.p95_ms * run.rps / rps, bound="replicas" if per_replicas <= per_box else "box"
    )


def format_plan(workload: Workload, costs: Costs, prices: Prices, result: Plan) -> str:
    lines = [
        f"workload: {workload.qps:g} requests/s, {workload.hit_rate:.0%} cache hits, "
        f"{workload.prompt_tokens} prompt + {workload.answer_tokens} answer tokens",
        f"measured costs ({costs.measured or 'bench/costs.json'}): hit {costs.hit.cpu_s * 1e6:.0f} us CPU, "
        f"miss {costs.miss.cpu_s * 1e6:.0f} us CPU per request; {costs.rss_load_mib:.0f} MiB per replica under load; "
        f"cold start {costs.cold_start_s:.1f} s",
        f"gateway cores busy: {result.cores_busy:.2f}; to the models: {result.upstream_qps:g} requests/s; "
        + (f"GPUs busy: {result.gpu_busy:.2f}" if result.gpu_busy else "GPUs: no GPU throughput given"),
        f"at {prices.target_utilization:.0%} target utilisation:",
        f"{'':16}{'replicas':>9}{'vCPU':>7}{'memory GiB':>12}{'GPUs':>6}{'nodes':>7}{'cost/hour':>11}",
    ]
    for h in (result.aks, result.container_apps):
        nodes = str(h.nodes) if h.nodes else "-"
        lines.append(
            f"{h.name:16}{h.gateway_replicas:>9}{h.gateway_vcpu:>7.0f}{h.gateway_memory_gib:>12.1f}"
            f"{h.gpus:>6}{nodes:>7}{h.cost_per_hour:>11.2f}"
        )
    return "\n".join(lines)
