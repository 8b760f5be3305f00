"""Interlock: an OpenAI-compatible LLM gateway and control plane.

A request enters at the edge (`edge`), a raw ASGI app that identifies the caller (`security.auth`:
API keys, OIDC tokens, roles), checks the route's permission and parses the body once into a frozen
`Request` (`edge.parse`; a named prompt template, `prompts`, is rendered into it there). The
handler puts it in a `RequestContext` and runs the pipeline (`pipeline`): stages that each wrap the
rest (`await stage(ctx, call_next)`), in order requests per minute (`security.limit_stage`), data
protection (`security.dlp`: PII detection, classification, masking, tokenization), the exact-match
cache with coalescing (`cache`), spend budgets and tokens per minute for what reaches a model
(`security.limit_stage` again) and, innermost, telemetry (`observe.stage`: finish reasons, token
timing, logprob confidence; only a deployment's answers reach it). The pipeline's terminal is the
router (`routing`), which picks a deployment of the requested model group cleared for the request's
data class, by strategy, skips deployments whose circuit is open, retries and falls back to other
groups. Providers (`providers`) speak to the backends: any OpenAI-compatible server and Azure
OpenAI through one pooled HTTP/1.1 client per process, and an embedded llama.cpp model on worker
threads. Once the answer is out, the recorders (`observe.record`) write the audit trail
(`security.audit`), the request log, metrics, the windows alerts and rollouts read, the trace, and
offer the exchange to drift monitoring and shadow traffic. `app.build` is the composition root that
wires all of it from `config`, and `lifecycle` starts it in order and closes it in reverse.

One BLAS thread by default: `OPENBLAS_NUM_THREADS` is read once, when numpy is imported, and the
imports below import it (the drift statistics, the embedder), so it is set here, before them, or
it comes too late for `interlock serve` too (the CLI is inside this package). With numpy's default
of one OpenBLAS thread per core, each of numpy's and scipy's OpenBLAS keeps a worker thread that
spins after a matmul (an embedding, the drift tests' kernels). On the 2-core machine, numpy's took
1-15 % of a core in each 5-10 s window of wrk load that held a drift evaluation (every 10 s) from
the observed gateway of bench/run.sh, which served 15-30 % fewer cache hits than with one BLAS
thread. Set the variable before importing the package to choose otherwise.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .app import build, create_app
from .config import Settings, default_settings, load_settings, parse_settings
from .errors import ConfigError, InterlockError

__all__ = [
    "ConfigError",
    "InterlockError",
    "Settings",
    "build",
    "create_app",
    "default_settings",
    "load_settings",
    "parse_settings",
]
__version__ = "0.1.0"
