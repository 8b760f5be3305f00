#!/usr/bin/env bash
# Resident memory of one gateway process under load: VmRSS after a warm-up, then after
# MEM_REQUESTS more requests (cache hits and misses at the same time: two wrk processes, 32
# connections each, in chunks), and the growth in percent. Bounded by MEM_MAX_SECONDS.
#
#   bench/memory.sh
#
# Environment:
#   MEM_REQUESTS=500000    requests to send after the warm-up
#   MEM_WARMUP=10          seconds of mixed warm-up load
#   MEM_CHUNK=10           seconds per chunk (RSS is sampled after each)
#   MEM_MAX_SECONDS=600    stop after this long even if MEM_REQUESTS were not reached
#   BENCH_GATEWAY_PORT, BENCH_KEEP as for run.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

TARGET=${MEM_REQUESTS:-500000}
WARMUP=${MEM_WARMUP:-10}
CHUNK=${MEM_CHUNK:-10}
MAX_SECONDS=${MEM_MAX_SECONDS:-600}
for v in TARGET WARMUP CHUNK MAX_SECONDS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench: $v must be a whole number" >&2; exit 2; }
done
((CHUNK >= 1 && CHUNK <= 600 && MAX_SECONDS <= 3600)) || {
    echo "bench: MEM_CHUNK must be 1..600, MEM_MAX_SECONDS at most 3600" >&2
    exit 2
}
OUT=${BENCH_OUT:-$BENCH_DIR/out/memory}
mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/memory.md

start_nginx
start_gateway
check_gateway

# mixed SECONDS PREFIX: hit and miss load at the same time, 32 connections each.
mixed() {
    local seconds=$1 prefix=$2 hit miss
    run_wrk hit 32 "$seconds" "$GATEWAY_URL" "$prefix-hit.txt" &
    hit=$!
    BG_PIDS+=("$hit")
    run_wrk miss 32 "$seconds" "$GATEWAY_URL" "$prefix-miss.txt" &
    miss=$!
    BG_PIDS+=("$miss")
    wait "$hit" "$miss"
    BG_PIDS=()
}

log "warm-up: ${WARMUP}s of mixed hit/miss load"
if ((WARMUP > 0)); then mixed "$WARMUP" "$OUT/warmup"; fi
sleep 1
rss_start=$(rss_kb "$GATEWAY_PID")
log "RSS after warm-up: $rss_start kB"

samples=("| 0 | 0 | $rss_start |")
sent=0
hits=0
chunk=0
started=$SECONDS
max_chunks=$(((MAX_SECONDS + CHUNK - 1) / CHUNK))
while ((sent < TARGET && chunk < max_chunks && SECONDS - started < MAX_SECONDS)); do
    chunk=$((chunk + 1))
    mixed "$CHUNK" "$OUT/chunk$chunk"
    sent=$((sent + $("$PY" "$BENCH_DIR/report.py" requests "$OUT/chunk$chunk-hit.txt" "$OUT/chunk$chunk-miss.txt")))
    hits=$((hits + $("$PY" "$BENCH_DIR/report.py" requests "$OUT/chunk$chunk-hit.txt")))
    rss=$(rss_kb "$GATEWAY_PID")
    samples+=("| $((SECONDS - started)) | $sent | $rss |")
    log "chunk $chunk: $sent requests so far, RSS $rss kB"
done
sleep 1
rss_end=$(rss_kb "$GATEWAY_PID")
errors=$("$PY" "$BENCH_DIR/report.py" errors "$OUT"/chunk*.txt)
growth=$(awk -v a="$rss_start" -v b="$rss_end" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }')

{
    echo "Interlock memory run, $(date -u '+%Y-%m-%d %H:%M UTC'): one gateway process, ${WARMUP}s warm-up," \
        "then $sent requests ($hits cache hits, $((sent - hits)) misses) in $((SECONDS - started))s;" \
        "$errors errors."
    echo
    echo "| | VmRSS |"
    echo "|---|---:|"
    echo "| after warm-up | $rss_start kB ($((rss_start / 1024)) MiB) |"
    echo "| after $sent more requests | $rss_end kB ($((rss_end / 1024)) MiB) |"
    echo "| growth | $growth % |"
    echo
    echo "<details><summary>RSS after each ${CHUNK}s chunk</summary>"
    echo
    echo "| seconds | requests | VmRSS kB |"
    echo "|---:|---:|---:|"
    printf '%s\n' "${samples[@]}"
    echo
    echo "</details>"
} | tee "$OUT/memory.md"

if ((sent < TARGET)); then
    log "WARNING: only $sent of $TARGET requests within ${MAX_SECONDS}s"
    exit 1
fi
if ((errors > 0)); then
    log "WARNING: $errors socket errors or non-2xx responses; see $OUT"
    exit 1
fi
