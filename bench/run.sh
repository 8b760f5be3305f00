#!/usr/bin/env bash
# The gateway benchmark: nginx as a canned upstream, one Interlock process (one worker) as
# configured by default, a second one with `upstream: {client: aiohttp}` for the cache-miss rows
# of the aiohttp client, a third one with security on (API keys, rate limits counted in Redis, a
# DLP policy) and a fourth one observed (drift monitoring, alert rules, tracing), each for a
# cache-hit row of its own; wrk -t1. Everything runs on 127.0.0.1 and stops by itself. Prints one
# markdown table. The current figures and their commands are in bench/RESULTS.md.
#
#   bench/run.sh                      (or: make bench)
#
# Environment:
#   BENCH_DURATION=10      seconds per measured wrk run (9 runs, 11 with BENCH_C1=1, 3 more for
#                          each round past the first; fewer with BENCH_AIOHTTP/SECURE/OBSERVED=0)
#   BENCH_WARMUP=2         seconds of unmeasured load before each target
#   BENCH_GATEWAY_PORT=14000
#   BENCH_AIOHTTP_PORT=14001   the second gateway (upstream client aiohttp)
#   BENCH_AIOHTTP=0        leave out the aiohttp-client gateway and its rows
#   BENCH_SECURE_PORT=14002    the third gateway (keys, limits, DLP); needs Redis
#   BENCH_REDIS_URL=redis://127.0.0.1:6379/0   where it counts rate limits
#   BENCH_SECURE_PARTS=keys,limits,redis,dlp   what the secured gateway turns on (see lib.sh)
#   BENCH_ROUNDS=1         measure the cache-hit rows (plain, secured, observed) this many times in
#                          turn; the ratios are reported per round and as their median
#   BENCH_OBSERVED=0       leave out the fourth gateway (drift monitoring, alerts, tracing) and its row
#   BENCH_OBSERVED_PORT=14003
#   BENCH_SECURE=0         leave out the secured gateway and its row (needed when BENCH_INTERLOCK
#                          has no `keys create` command)
#   BENCH_OUT=bench/out/latest   where the raw wrk outputs and the table are kept
#   BENCH_KEEP=1           keep the temp dir (config, logs) after the run
#   BENCH_C1=1             also measure 1 connection (unloaded added latency), nginx and cache miss
#   BENCH_INTERLOCK="cmd"  run this instead of .venv/bin/interlock (same `serve` CLI): another
#                          build, or a wrapper
#   BENCH_SERVER=native    the HTTP server of every gateway above: native, uvicorn or granian
#                          (empty: the configured default, `server.http`)
#   BENCH_SERVERS=uvicorn,granian  more plain gateways, one per server named, each measured on the
#                          cache miss (1 with BENCH_C1=1, 8, 64 connections) and hit (64) rows
#                          right after the first gateway's, and on the hit row of every round;
#                          ports BENCH_GATEWAY_PORT+10...
#   BENCH_WORKERS2=1       a gateway with `--workers 2` (port +20): its cache-hit row next to the
#                          first gateway's, with each one's CPU use and the machine's
#   BENCH_WRK_THREADS=1    wrk threads of those two rows (2: wrk can send more than one core's worth)
#   BENCH_STREAM=1         streams: a canned SSE upstream of 200 events (bench/sse.py, port
#                          BENCH_SSE_PORT=18081), timed directly and through each server's
#                          gateway, 1 connection (time to first event) and 8 (events/s)
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
rm -f "$OUT"/*.txt "$OUT"/*.json "$OUT"/*.log "$OUT"/*.cpu "$OUT"/table.md

AIOHTTP=${BENCH_AIOHTTP:-1}
[[ $AIOHTTP == 0 || $AIOHTTP == 1 ]] || { echo "bench: BENCH_AIOHTTP must be 0 or 1" >&2; exit 2; }
SECURE=${BENCH_SECURE:-1}
[[ $SECURE == 0 || $SECURE == 1 ]] || { echo "bench: BENCH_SECURE must be 0 or 1" >&2; exit 2; }
OBSERVED=${BENCH_OBSERVED:-1}
[[ $OBSERVED == 0 || $OBSERVED == 1 ]] || { echo "bench: BENCH_OBSERVED must be 0 or 1" >&2; exit 2; }

IFS=',' read -ra SERVERS <<<"${BENCH_SERVERS:-}"
for server in "${SERVERS[@]}"; do
    [[ $server == native || $server == uvicorn || $server == granian ]] || {
        echo "bench: BENCH_SERVERS names native, uvicorn or granian, not '$server'" >&2
        exit 2
    }
done
[[ -z $SERVER || $SERVER == native || $SERVER == uvicorn || $SERVER == granian ]] || {
    echo "bench: BENCH_SERVER must be native, uvicorn or granian" >&2
    exit 2
}
WORKERS2=${BENCH_WORKERS2:-0}
STREAM=${BENCH_STREAM:-0}
WRK_THREADS=${BENCH_WRK_THREADS:-1}

start_nginx
if [[ $STREAM == 1 ]]; then
    port_busy "$SSE_PORT" && { echo "bench: 127.0.0.1:$SSE_PORT is already in use" >&2; exit 1; }
    "$PY" "$BENCH_DIR/sse.py" upstream "$SSE_PORT" >"$WORK/sse.log" 2>&1 &
    BG_PIDS+=("$!")
fi
start_gateway
check_gateway
if [[ $AIOHTTP == 1 ]]; then
    start_aiohttp_gateway
    check_gateway "$AIOHTTP_URL"
fi
if [[ $SECURE == 1 ]]; then
    start_secure_gateway
    check_gateway "$SECURE_URL" "$SECURE_KEY"
    post hit "$SECURE_URL" | grep -q '^HTTP/1.1 401' || {
        echo "bench: the secured gateway answered a request without a valid key" >&2
        exit 1
    }
fi

if [[ $OBSERVED == 1 ]]; then
    start_observed_gateway
    check_gateway "$OBSERVED_URL"
fi

SERVER_URLS=()
for i in "${!SERVERS[@]}"; do
    start_interlock server_pid "gateway-${SERVERS[i]}" "$((GATEWAY_PORT + 10 + i))" "" "" "${SERVERS[i]}"
    BG_PIDS+=("$server_pid")
    SERVER_URLS+=("http://127.0.0.1:$((GATEWAY_PORT + 10 + i))/v1/chat/completions")
    check_gateway "${SERVER_URLS[i]}"
done
if [[ $WORKERS2 == 1 ]]; then
    WORKERS2_URL="http://127.0.0.1:$((GATEWAY_PORT + 20))/v1/chat/completions"
    start_interlock WORKERS2_PID gateway-workers2 "$((GATEWAY_PORT + 20))" "" "" "" 2
    BG_PIDS+=("$WORKERS2_PID")
    # Each worker has its own cache, and a burst of new connections can all go to one worker of
    # the two (they accept on one socket): the plain checks, then hit requests until one is
    # answered from a cache. The warm-up load before its row fills both workers' caches.
    post miss "$WORKERS2_URL" | grep -q '^HTTP/1.1 200' || { echo "bench: workers2 miss request failed" >&2; exit 1; }
    for ((try = 1; ; try++)); do
        post hit "$WORKERS2_URL" | grep -qi '^x-interlock-cache: hit' && break
        ((try < 20)) || { echo "bench: the workers2 gateway never answered the hit body from its cache" >&2; exit 1; }
    done
fi

warm() {  # warm MODE URL [KEY]: unmeasured load (connection pools, caches, allocator)
    if ((WARMUP > 0)); then run_wrk "$1" 64 "$WARMUP" "$2" "$WORK/warmup.txt" "${3:-}"; fi
}

measure() {  # measure NAME MODE CONNS URL [KEY] [PID]: with PID, also the CPU time it took (NAME.cpu)
    local before=0
    log "wrk -t1 -c$3 -d${DURATION}s: $1"
    if [[ -n ${6:-} ]]; then before=$(cpu_ticks "$6"); fi
    run_wrk "$2" "$3" "$DURATION" "$4" "$OUT/$1.txt" "${5:-}"
    if [[ -n ${6:-} ]]; then echo "$(($(cpu_ticks "$6") - before)) $(getconf CLK_TCK)" >"$OUT/$1.cpu"; fi
    sleep 1  # let the previous run's connections close
}

C1=${BENCH_C1:-0}

warm miss "$UPSTREAM_URL"
if [[ $C1 == 1 ]]; then measure direct-c1 miss 1 "$UPSTREAM_URL"; fi
measure direct-c8 miss 8 "$UPSTREAM_URL"
measure direct-c64 miss 64 "$UPSTREAM_URL"

warm miss "$GATEWAY_URL"
if [[ $C1 == 1 ]]; then measure miss-c1 miss 1 "$GATEWAY_URL" "" "$GATEWAY_PID"; fi
measure miss-c8 miss 8 "$GATEWAY_URL" "" "$GATEWAY_PID"
measure miss-c64 miss 64 "$GATEWAY_URL" "" "$GATEWAY_PID"

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
measure hit-c64 hit 64 "$GATEWAY_URL" "" "$GATEWAY_PID"
hits_after=$("$PY" "$BENCH_DIR/report.py" metric "$metrics" interlock_requests_total model=hit cache=hit status=200)
hit_requests=$("$PY" "$BENCH_DIR/report.py" requests "$OUT/hit-c64.txt")
rss=$(rss_kb "$GATEWAY_PID")

for i in "${!SERVERS[@]}"; do  # the other servers, on the same rows
    name=${SERVERS[i]}
    warm miss "${SERVER_URLS[i]}"
    if [[ $C1 == 1 ]]; then measure "$name-miss-c1" miss 1 "${SERVER_URLS[i]}"; fi
    measure "$name-miss-c8" miss 8 "${SERVER_URLS[i]}"
    measure "$name-miss-c64" miss 64 "${SERVER_URLS[i]}"
    post hit "${SERVER_URLS[i]}" >/dev/null
    warm hit "${SERVER_URLS[i]}"
    measure "$name-hit-c64" hit 64 "${SERVER_URLS[i]}"
done

if [[ $WORKERS2 == 1 ]]; then  # one worker against two, the same wrk, with the CPU each one took
    busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
    measure_cpu() {  # measure_cpu NAME URL PID
        local before_gw before_all after_gw after_all
        warm hit "$2"
        before_gw=$(cpu_ticks "$3")
        before_all=$(busy_ticks)
        log "wrk -t$WRK_THREADS -c64 -d${DURATION}s: $1"
        BENCH_API_KEY=bench BENCH_MODE=hit wrk -t"$WRK_THREADS" -c64 -d"${DURATION}s" --timeout 5s --latency \
            -s "$LUA" "$2" >"$OUT/$1.txt" 2>&1
        after_gw=$(cpu_ticks "$3")
        after_all=$(busy_ticks)
        echo "$1 $((after_gw - before_gw)) $((after_all - before_all)) $(getconf CLK_TCK) $DURATION $(nproc)" >>"$OUT/workers-cpu.log"
        sleep 1
    }
    post hit "$WORKERS2_URL" >/dev/null
    measure_cpu workers1-hit-c64 "$GATEWAY_URL" "$GATEWAY_PID"
    measure_cpu workers2-hit-c64 "$WORKERS2_URL" "$WORKERS2_PID"
fi

if [[ $STREAM == 1 ]]; then  # time to first event at 1 connection, events/s at 8
    stream_rows() {  # stream_rows NAME URL
        "$PY" "$BENCH_DIR/sse.py" client "$2" 1 1 "$WORK/stream-warmup.json"
        log "sse.py client, 1 and 8 connections, ${DURATION}s each: $1"
        "$PY" "$BENCH_DIR/sse.py" client "$2" 1 "$DURATION" "$OUT/stream-$1-c1.json"
        "$PY" "$BENCH_DIR/sse.py" client "$2" 8 "$DURATION" "$OUT/stream-$1-c8.json"
    }
    stream_rows direct "$SSE_URL"
    stream_rows "${SERVER:-native}" "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions"
    for i in "${!SERVERS[@]}"; do stream_rows "${SERVERS[i]}" "${SERVER_URLS[i]}"; done
fi

if [[ $SECURE == 1 ]]; then  # right after the plain hit row: the same body, the same cached answer
    secure_metrics="http://127.0.0.1:$SECURE_PORT/metrics"
    smetric() { BENCH_METRICS_KEY=$SECURE_METRICS_KEY "$PY" "$BENCH_DIR/report.py" metric "$secure_metrics" "$@"; }
    post hit "$SECURE_URL" "$SECURE_KEY" >/dev/null
    warm hit "$SECURE_URL" "$SECURE_KEY"
    secure_before=$(smetric interlock_requests_total model=hit cache=hit status=200)
    measure secure-hit-c64 hit 64 "$SECURE_URL" "$SECURE_KEY" "$SECURE_PID"
    secure_after=$(smetric interlock_requests_total model=hit cache=hit status=200)
    secure_requests=$("$PY" "$BENCH_DIR/report.py" requests "$OUT/secure-hit-c64.txt")
    secure_rss=$(rss_kb "$SECURE_PID")
    secure_limited=$(smetric interlock_rate_limited_total)
    secure_limit_errors=$(smetric interlock_limit_store_errors_total)
fi

if [[ $OBSERVED == 1 ]]; then  # the same body and cached answer again, drift and traces on
    post hit "$OBSERVED_URL" >/dev/null
    warm hit "$OBSERVED_URL"
    measure observed-hit-c64 hit 64 "$OBSERVED_URL" "" "$OBSERVED_PID"
    observed_rss=$(rss_kb "$OBSERVED_PID")
    observed_dropped=$("$PY" "$BENCH_DIR/report.py" metric "http://127.0.0.1:$OBSERVED_PORT/metrics" \
        interlock_drift_dropped_total)
fi

# More rounds of the cache-hit rows, in turn, for the ratios (report.py against_plain).
ROUNDS=${BENCH_ROUNDS:-1}
for ((round = 2; round <= ROUNDS; round++)); do
    measure "hit-c64-r$round" hit 64 "$GATEWAY_URL" "" "$GATEWAY_PID"
    for i in "${!SERVERS[@]}"; do measure "${SERVERS[i]}-hit-c64-r$round" hit 64 "${SERVER_URLS[i]}"; done
    if [[ $SECURE == 1 ]]; then measure "secure-hit-c64-r$round" hit 64 "$SECURE_URL" "$SECURE_KEY" "$SECURE_PID"; fi
    if [[ $OBSERVED == 1 ]]; then measure "observed-hit-c64-r$round" hit 64 "$OBSERVED_URL" "" "$OBSERVED_PID"; fi
done

{
    echo "Interlock benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(uname -m)), wrk -t1 --latency," \
        "${DURATION}s per row, one gateway process per row (server ${SERVER:-native (the default)}, uvloop, httptools), nginx 1 worker as" \
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
    if [[ $SECURE == 1 ]]; then
        echo
        echo "\"Secured\" row: a third gateway process, the same config plus ($SECURE_PARTS) security.keys" \
            "(SQLite; one key with tenant bench and rpm/tpm limits, sent by wrk as a bearer token)," \
            "limits per key and tenant counted in Redis ($SECURE_REDIS), and a DLP policy (EMAIL/PHONE" \
            "tokenize, CREDIT_CARD mask, IP_ADDRESS redact, US_SSN/SECRET block; the body holds no PII)," \
            "measured right after the plain cache-hit row. wrk counted $secure_requests" \
            "responses; its /metrics counted $((secure_after - secure_before)) cache hits," \
            "$secure_limited rate-limited and $secure_limit_errors limit-store errors. RSS $((secure_rss / 1024)) MiB."
        "$PY" "$BENCH_DIR/report.py" secure "$OUT"
    fi
    if [[ $OBSERVED == 1 ]]; then
        echo
        echo "\"Observed\" row ($OBSERVED_PARTS): a fourth gateway process, the same config plus drift monitoring (every answer" \
            "offered, at most 200 a second observed, 10 % of those embedded up to 5 a second, live windows" \
            "published to Redis, a reference of the hit group), three alert rules evaluated every 10 s," \
            "traces of 1 % of requests exported over OTLP/HTTP to nginx, and logprobs asked for 2 % of" \
            "upstream calls; measured after the secured row. Answers over the per-second cap (counted," \
            "not observed): $observed_dropped. RSS $((observed_rss / 1024)) MiB."
        "$PY" "$BENCH_DIR/report.py" observed "$OUT"
    fi
    if ((${#SERVERS[@]})); then
        echo
        echo "HTTP servers side by side: the first gateway (${SERVER:-native}) and one more plain gateway per" \
            "server, the same config and pipeline, measured in turn in this run (hit rows: every round; the" \
            "ratio is the median of the rounds' ratios):"
        "$PY" "$BENCH_DIR/report.py" servers "$OUT" "${SERVER:-native}" "${SERVERS[@]}"
    fi
    if [[ $WORKERS2 == 1 ]]; then
        echo
        echo "\`--workers 2\` against one worker, cache hit, wrk -t$WRK_THREADS -c64, one after the other:"
        "$PY" "$BENCH_DIR/report.py" workers "$OUT"
    fi
    if [[ $STREAM == 1 ]]; then
        echo
        echo "Streams of 200 events from a canned SSE upstream (bench/sse.py, Python asyncio), the client" \
            "bench/sse.py too (it shares the cores):"
        "$PY" "$BENCH_DIR/report.py" streams "$OUT" "${SERVER:-native}" "${SERVERS[@]}"
    fi
} | tee "$OUT/table.md"

if [[ $SECURE == 1 && ${secure_limit_errors:-0} != 0 ]]; then
    log "WARNING: the secured gateway counted $secure_limit_errors limit-store errors: those requests were counted" \
        "in process, not in Redis (see interlock_limit_store_errors_total)"
fi
errors=$("$PY" "$BENCH_DIR/report.py" errors "$OUT"/*.txt)
if ((errors > 0)); then
    log "WARNING: $errors socket errors or non-2xx responses (or unparsable runs); see $OUT"
    exit 1
fi
