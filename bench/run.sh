#!/usr/bin/env bash
# The gateway benchmark: nginx as a canned upstream, one Interlock process (one worker) as
# configured by default, and a second one with `upstream: {client: aiohttp}` for the cache-miss
# rows of the aiohttp client; wrk -t1. Everything runs on 127.0.0.1 and stops by itself (about
# 100 s, 135 s with BENCH_C1=1). Prints one markdown table.
#
#   bench/run.sh                      (or: make bench)
#
# Environment:
#   BENCH_DURATION=10      seconds per measured wrk run (5 runs)
#   BENCH_WARMUP=2         seconds of unmeasured load before each target
#   BENCH_GATEWAY_PORT=14000
#   BENCH_AIOHTTP_PORT=14001   the second gateway (upstream client aiohttp)
#   BENCH_AIOHTTP=0        leave out the aiohttp-client gateway and its rows
#   BENCH_OUT=bench/out/latest   where the raw wrk outputs and the table are kept
#   BENCH_KEEP=1           keep the temp dir (config, logs) after the run
#   BENCH_C1=1             also measure 1 connection (unloaded added latency), nginx and cache miss
#   BENCH_INTERLOCK="cmd"  run this instead of .venv/bin/interlock (same `serve` CLI); see
#                          bench/experiments/ for a minimal reference proxy and a what-if wrapper
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
OUT=${BENCH_OUT:-$BENCH_DIR/out/latest}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 600 ]] || {
    echo "bench: BENCH_DURATION must be 1..600 seconds" >&2
    exit 2
}
[[ $WARMUP =~ ^[0-9]+$ && $WARMUP -le 60 ]] || { echo "bench: BENCH_WARMUP must be 0..60" >&2; exit 2; }
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/table.md

AIOHTTP=${BENCH_AIOHTTP:-1}
[[ $AIOHTTP == 0 || $AIOHTTP == 1 ]] || { echo "bench: BENCH_AIOHTTP must be 0 or 1" >&2; exit 2; }

start_nginx
start_gateway
check_gateway
if [[ $AIOHTTP == 1 ]]; then
    start_aiohttp_gateway
    check_gateway "$AIOHTTP_URL"
fi

warm() {  # warm MODE URL: unmeasured load (connection pools, caches, allocator)
    if ((WARMUP > 0)); then run_wrk "$1" 64 "$WARMUP" "$2" "$WORK/warmup.txt"; fi
}

measure() {  # measure NAME MODE CONNS URL
    log "wrk -t1 -c$3 -d${DURATION}s: $1"
    run_wrk "$2" "$3" "$DURATION" "$4" "$OUT/$1.txt"
    sleep 1  # let the previous run's connections close
}

C1=${BENCH_C1:-0}

warm miss "$UPSTREAM_URL"
if [[ $C1 == 1 ]]; then measure direct-c1 miss 1 "$UPSTREAM_URL"; fi
measure direct-c8 miss 8 "$UPSTREAM_URL"
measure direct-c64 miss 64 "$UPSTREAM_URL"

warm miss "$GATEWAY_URL"
if [[ $C1 == 1 ]]; then measure miss-c1 miss 1 "$GATEWAY_URL"; fi
measure miss-c8 miss 8 "$GATEWAY_URL"
measure miss-c64 miss 64 "$GATEWAY_URL"

if [[ $AIOHTTP == 1 ]]; then
    warm miss "$AIOHTTP_URL"
    measure aiohttp-miss-c8 miss 8 "$AIOHTTP_URL"
    measure aiohttp-miss-c64 miss 64 "$AIOHTTP_URL"
    aiohttp_rss=$(rss_kb "$AIOHTTP_PID")
fi

metrics="http://127.0.0.1:$GATEWAY_PORT/metrics"
post hit >/dev/null  # the cache already holds the hit body (check_gateway); make sure of it
warm hit "$GATEWAY_URL"
hits_before=$("$PY" "$BENCH_DIR/report.py" metric "$metrics" interlock_requests_total model=hit cache=hit status=200)
measure hit-c64 hit 64 "$GATEWAY_URL"
hits_after=$("$PY" "$BENCH_DIR/report.py" metric "$metrics" interlock_requests_total model=hit cache=hit status=200)
hit_requests=$("$PY" "$BENCH_DIR/report.py" requests "$OUT/hit-c64.txt")
rss=$(rss_kb "$GATEWAY_PID")

{
    echo "Interlock benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(uname -m)), wrk -t1 --latency," \
        "${DURATION}s per row, one gateway process per row (uvicorn, uvloop, httptools), nginx 1 worker as" \
        "upstream, load average before: $load_before."
    echo
    "$PY" "$BENCH_DIR/report.py" table "$OUT"
    echo
    echo "vs nginx: requests/s relative to nginx direct at the same connection count. Added latency:" \
        "the gateway's percentile minus nginx direct's at the same connection count." \
        "Cache-hit row: wrk counted $hit_requests responses; the gateway's /metrics counted" \
        "$((hits_after - hits_before)) cache hits in that time. Gateway RSS after the run: $((rss / 1024)) MiB."
    if [[ $AIOHTTP == 1 ]]; then
        echo
        echo "\"Interlock\" rows: the default config (upstream client native). \"aiohttp client\" rows: a second" \
            "gateway process, the same config plus \`upstream: {client: aiohttp}\`, measured right after" \
            "(RSS $((aiohttp_rss / 1024)) MiB). Native vs aiohttp, cache miss:"
        "$PY" "$BENCH_DIR/report.py" clients "$OUT"
    fi
} | tee "$OUT/table.md"

errors=$("$PY" "$BENCH_DIR/report.py" errors "$OUT"/*.txt)
if ((errors > 0)); then
    log "WARNING: $errors socket errors or non-2xx responses (or unparsable runs); see $OUT"
    exit 1
fi
