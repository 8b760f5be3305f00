#!/usr/bin/env bash
# One secured gateway (BENCH_SECURE_PARTS as for run.sh) under wrk -c64 for 70 s, so across at
# least one turn of the minute; then the stage timings the gateway logged (see sitecustomize.py).
set -euo pipefail
source "$(dirname "$0")/../../lib.sh"
start_nginx
start_secure_gateway
check_gateway "$SECURE_URL" "$SECURE_KEY"
run_wrk hit 64 3 "$SECURE_URL" "$WORK/warmup.txt" "$SECURE_KEY"
run_wrk hit 64 70 "$SECURE_URL" "$WORK/run.txt" "$SECURE_KEY"
grep -E "Requests/sec|Latency|99%" "$WORK/run.txt" || true
sleep 6  # one more report
for label in limit.stage: "limit.stage>100us:" redis.acquire: redis._grant:; do
    grep -F "TIMING $label" "$WORK/gateway-secure.log" | tail -n 1 || true
done
