#!/usr/bin/env bash
# The semantic cache's hit path next to the exact cache's, in one run: nginx as the canned
# upstream, one gateway (one worker, OPENBLAS_NUM_THREADS=1) with the `hit` group (exact cache)
# and a `semantic` group (cache.semantic on, the embedding timeout raised to 5 s so that queueing
# for the model shows as latency, not as misses); wrk -t1 against each:
# exact hits (bench/wrk/hit.json), then semantic hits (bench/wrk/semantic.lua). Prints both rates,
# their ratio and the gateway's own count of semantic hits, misses and timeouts.
#
#   flock /tmp/interlock-bench.lock bench/semantic.sh
#
# Environment: BENCH_DURATION=5 (seconds per run), BENCH_CONNS=8, BENCH_GATEWAY_PORT=14000,
# BENCH_INTERLOCK (as run.sh), BENCH_KEEP=1 (keep the temp dir).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

DURATION=${BENCH_DURATION:-5}
CONNS=${BENCH_CONNS:-8}
export OPENBLAS_NUM_THREADS=1  # see src/interlock/embeddings/minilm.py
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

start_nginx
config="$WORK/gateway-semantic.yaml"
write_config "$config" "$GATEWAY_PORT"
cat >>"$config" <<YAML
  - name: semantic
    cache:
      mode: deterministic
      ttl: 86400
      semantic: {threshold: 0.92, timeout_ms: 5000}
    deployments:
      - backend: openai
        id: nginx-semantic
        api_base: http://127.0.0.1:$UPSTREAM_PORT/v1
        api_key: bench
YAML
start_interlock GATEWAY_PID gateway "$GATEWAY_PORT" "" "$config"
check_gateway
sed 's/"model":"hit"/"model":"semantic"/' "$BENCH_DIR/wrk/hit.json" >"$WORK/seed.json"
curl -s -o /dev/null --max-time 10 -H 'Content-Type: application/json' --data-binary "@$WORK/seed.json" "$GATEWAY_URL"
probe=$(curl -s -i --max-time 10 -H 'Content-Type: application/json' \
    --data-binary "$(sed 's/benchmark\./benchmark.   /' "$WORK/seed.json")" "$GATEWAY_URL")
grep -qi '^x-interlock-cache: semantic' <<<"$probe" || { echo "bench: no semantic hit:" >&2; echo "$probe" >&2; exit 1; }

metrics="http://127.0.0.1:$GATEWAY_PORT/metrics"
count() { "$PY" "$BENCH_DIR/report.py" metric "$metrics" interlock_semantic_cache_total model=semantic "result=$1"; }
log "wrk -t1 -c$CONNS -d${DURATION}s: exact hit"
run_wrk hit "$CONNS" "$DURATION" "$GATEWAY_URL" "$WORK/exact.txt"
sleep 1
before_hit=$(count hit) before_miss=$(count miss) before_timeout=$(count timeout)
log "wrk -t1 -c$CONNS -d${DURATION}s: semantic hit"
wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency -s "$BENCH_DIR/wrk/semantic.lua" "$GATEWAY_URL" \
    >"$WORK/semantic.txt" 2>&1
exact=$(awk '/^Requests\/sec/ {print $2}' "$WORK/exact.txt")
semantic=$(awk '/^Requests\/sec/ {print $2}' "$WORK/semantic.txt")
p50() { awk '$1 == "50%" {print $2}' "$1"; }
echo "| path (wrk -t1 -c$CONNS, ${DURATION} s) | requests/s | p50 |"
echo "| --- | --- | --- |"
echo "| exact cache hit | $exact | $(p50 "$WORK/exact.txt") |"
echo "| semantic cache hit | $semantic | $(p50 "$WORK/semantic.txt") |"
echo
"$PY" -c "import sys; print(f'semantic / exact: {float(sys.argv[1]) / float(sys.argv[2]):.4f}')" "$semantic" "$exact"
echo "during the semantic run: hits $(($(count hit | cut -d. -f1) - ${before_hit%.*})), misses" \
    "$(($(count miss | cut -d. -f1) - ${before_miss%.*})), timeouts $(($(count timeout | cut -d. -f1) - ${before_timeout%.*}))," \
    "wrk: $("$PY" "$BENCH_DIR/report.py" requests "$WORK/semantic.txt") requests," \
    "$("$PY" "$BENCH_DIR/report.py" errors "$WORK/semantic.txt") errors; load before: $load_before"
