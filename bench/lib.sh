# Shared by run.sh, memory.sh, profile.sh and experiments/stagetiming/boundary.sh (sourced, not
# run): start the fake upstream (nginx) and the gateway process(es) on loopback, wait for them, and
# stop them on exit.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
VENV=${VENV:-$ROOT/.venv}
PY="$VENV/bin/python"
# The gateway command (words split on spaces): another build or a wrapper with the same CLI,
# e.g. BENCH_INTERLOCK=".venv/bin/python -m interlock" with PYTHONPATH naming another tree
read -ra INTERLOCK <<<"${BENCH_INTERLOCK:-$VENV/bin/interlock}"
UPSTREAM_PORT=18080  # fixed in bench/nginx.conf
GATEWAY_PORT=${BENCH_GATEWAY_PORT:-14000}
UPSTREAM_URL="http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions"
GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions"
# run.sh only: a second gateway with `upstream: {client: aiohttp}`, to compare the upstream clients
AIOHTTP_PORT=${BENCH_AIOHTTP_PORT:-$((GATEWAY_PORT + 1))}
AIOHTTP_URL="http://127.0.0.1:$AIOHTTP_PORT/v1/chat/completions"
# run.sh only: a third gateway with API keys, rate limits counted in Redis, and a DLP policy
SECURE_PORT=${BENCH_SECURE_PORT:-$((GATEWAY_PORT + 2))}
SECURE_URL="http://127.0.0.1:$SECURE_PORT/v1/chat/completions"
SECURE_REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/0}
# What the secured gateway turns on, a comma list (for attributing its cost): keys (always, the
# key carries the per-key limits), limits (per key and tenant), redis (count them in Redis, else
# in process), dlp
SECURE_PARTS=${BENCH_SECURE_PARTS:-keys,limits,redis,dlp}
# run.sh only: a fourth gateway with drift monitoring (embeddings on), alert rules and tracing
OBSERVED_PORT=${BENCH_OBSERVED_PORT:-$((GATEWAY_PORT + 3))}
OBSERVED_URL="http://127.0.0.1:$OBSERVED_PORT/v1/chat/completions"
# What the observed gateway turns on, a comma list (for attributing its cost): drift (the monitor,
# live windows in Redis), embeddings (of a sample of prompts; needs drift), alerts, traces (of
# BENCH_TRACE_RATIO=0.01 of the requests)
OBSERVED_PARTS=${BENCH_OBSERVED_PARTS:-drift,embeddings,alerts,traces}
has_observed_part() { [[ ,$OBSERVED_PARTS, == *,$1,* ]]; }
SECURE_KEY=""          # the API key the secured gateway's requests carry (made per run)
SECURE_METRICS_KEY=""  # a second key with role auditor, to read that gateway's /metrics
LUA="$BENCH_DIR/wrk/chat.lua"
# The HTTP server of the gateways (`serve --http`): native or uvicorn, or granian (granian's own
# CLI serving the ASGI app; `pip install '.[bench]'`). Empty: the configured default (native).
SERVER=${BENCH_SERVER:-}
# run.sh only, BENCH_STREAM=1: the canned SSE upstream (bench/sse.py) and the `stream` model on it
SSE_PORT=${BENCH_SSE_PORT:-18081}
SSE_URL="http://127.0.0.1:$SSE_PORT/v1/chat/completions"

NGINX_PID=""
GATEWAY_PID=""
AIOHTTP_PID=""  # the second gateway (run.sh)
SECURE_PID=""  # the third gateway (run.sh)
OBSERVED_PID=""  # the fourth gateway (run.sh)
BG_PIDS=()  # wrk, py-spy: anything else we start in the background

missing=()
for tool in wrk nginx curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})) && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "bench: installing ${missing[*]} from Debian's packages" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi
for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done
[[ -x ${INTERLOCK[0]} ]] || { echo "bench: ${INTERLOCK[0]} missing; run 'make setup' first" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/interlock-bench.XXXXXX")
chmod 755 "$WORK"  # nginx workers drop root privileges and must reach their temp dirs

log() { printf '%s bench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Stop one process we started: TERM, wait up to 10 s, then KILL.
stop_pid() {
    local pid=$1 i
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    pkill -TERM -P "$pid" 2>/dev/null || true  # its children first (wrk under a subshell)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$? pid
    trap - EXIT INT TERM
    for pid in "${BG_PIDS[@]}"; do stop_pid "$pid"; done
    stop_pid "$GATEWAY_PID"
    stop_pid "$AIOHTTP_PID"
    stop_pid "$SECURE_PID"
    stop_pid "$OBSERVED_PID"
    stop_pid "$NGINX_PID"
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_http URL SECONDS PID: poll until URL answers 200, the process dies, or time runs out.
wait_http() {
    local url=$1 seconds=$2 pid=$3 i
    for ((i = 0; i < seconds * 10; i++)); do
        if curl -sf -o /dev/null --max-time 1 "$url"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

start_nginx() {
    if port_busy "$UPSTREAM_PORT"; then
        echo "bench: 127.0.0.1:$UPSTREAM_PORT is already in use (a leftover nginx?)" >&2
        exit 1
    fi
    mkdir -p "$WORK/nginx/tmp"
    nginx -p "$WORK/nginx/" -c "$BENCH_DIR/nginx.conf" -e "$WORK/nginx/error.log" \
        -g 'daemon off;' 2>>"$WORK/nginx/error.log" &
    NGINX_PID=$!
    if ! wait_http "http://127.0.0.1:$UPSTREAM_PORT/v1/models" 10 "$NGINX_PID"; then
        cat "$WORK/nginx/error.log" >&2
        echo "bench: nginx did not start" >&2
        exit 1
    fi
    log "nginx (fake upstream) pid $NGINX_PID on 127.0.0.1:$UPSTREAM_PORT"
}

# write_config FILE PORT [CLIENT]: the gateway config; CLIENT (native|aiohttp) sets
# `upstream.client`, otherwise the default applies.
write_config() {
    local file=$1 port=$2 client=${3:-}
    cat >"$file" <<EOF
server:
  host: 127.0.0.1
  port: $port
  workers: 1
  log_level: warning
models:
  - name: miss
    cache:
      mode: "off"
    deployments:
      - backend: openai
        id: nginx-miss
        api_base: http://127.0.0.1:$UPSTREAM_PORT/v1
        api_key: bench
  - name: hit
    cache:
      mode: deterministic
      ttl: 86400
    deployments:
      - backend: openai
        id: nginx-hit
        api_base: http://127.0.0.1:$UPSTREAM_PORT/v1
        api_key: bench
  - name: stream
    cache:
      mode: "off"
    deployments:
      - backend: openai
        id: sse
        api_base: http://127.0.0.1:$SSE_PORT/v1
        api_key: bench
EOF
    if [[ -n $client ]]; then
        printf 'upstream:\n  client: %s\n' "$client" >>"$file"
    fi
}

has_part() { [[ ,$SECURE_PARTS, == *,$1,* ]]; }

# write_secure_config FILE PORT: the same models, plus API keys (SQLite beside FILE), rate limits
# per key and per tenant `bench` counted in Redis (on_redis_error at its default, allow), and a
# DLP policy (tokenize, mask, redact, block), as SECURE_PARTS says. The limits are far above what
# the machine can send, so they count but never refuse.
write_secure_config() {
    local file=$1 port=$2 secret token_key
    write_config "$file" "$port"
    secret=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
    token_key=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(30)[:40])')
    cat >>"$file" <<EOF
security:
  server_secret: "$secret"
  keys: {sqlite_path: $(dirname "$file")/keys.db}
  key_cache_ttl: 30
EOF
    if has_part limits; then
        echo "limits:" >>"$file"
        if has_part redis; then echo "  redis: {url: \"$SECURE_REDIS\", timeout_ms: 50}" >>"$file"; fi
        echo "  tenants: {bench: {rpm: 100000000, tpm: 100000000000}}" >>"$file"
    fi
    if has_part dlp; then
        cat >>"$file" <<EOF
dlp:
  tokenization_key: "$token_key"
  policies:
    default:
      actions: {EMAIL: tokenize, PHONE: tokenize, CREDIT_CARD: mask, IP_ADDRESS: redact, SECRET: block, US_SSN: block}
      classify: {US_SSN: restricted, CREDIT_CARD: confidential}
      default_class: internal
      on_error: block
EOF
    fi
    chmod 600 "$file"
}

# start_observed_gateway: the fourth gateway (OBSERVED_PID, OBSERVED_PORT): the plain config plus
# drift monitoring of every answer (embeddings of a sample, live windows in Redis, a reference of
# the hit group made with `interlock drift baseline`), alert rules evaluated every 10 s, and traces
# of 1 % of requests exported over OTLP to nginx (which drops them), logprobs asked for 2 %.
start_observed_gateway() {
    local file="$WORK/gateway-observed.yaml" past="$WORK/hit-past.jsonl" embed=()
    write_config "$file" "$OBSERVED_PORT"
    if has_observed_part drift; then
        cat >>"$file" <<EOF
drift:
  redis: {url: "$SECURE_REDIS", timeout_ms: 1000, prefix: "interlock:bench-drift:"}
  references: {hit: $WORK/hit.profile}
EOF
        if has_observed_part embeddings; then
            echo "  embeddings: true" >>"$file"
            embed=(--embeddings)
        fi
    fi
    if has_observed_part traces; then
        cat >>"$file" <<EOF
telemetry:
  otlp_endpoint: http://127.0.0.1:$UPSTREAM_PORT
  trace_sample_ratio: ${BENCH_TRACE_RATIO:-0.01}
  logprobs_sample: 0.02
EOF
    fi
    if has_observed_part alerts; then
        cat >>"$file" <<EOF
alerts:
  redis: {url: "$SECURE_REDIS", timeout_ms: 200}
  prefix: "interlock:bench-alerts:"
  rules:
    - {name: Errors, signal: error_rate, op: ">", threshold: 0.05, window_s: 60, min_requests: 50}
    - {name: Slow, signal: p99_latency_ms, op: ">", threshold: 5000, window_s: 60, min_requests: 50}
    - {name: Drift, signal: drift_share, op: ">", threshold: 0.3, min_requests: 100}
EOF
    fi
    if has_observed_part drift; then
        "$PY" - "$BENCH_DIR/wrk/hit.json" "$past" <<'PYEOF'
import json, sys
request = json.load(open(sys.argv[1]))
answer = {"id": "chatcmpl-bench0001", "object": "chat.completion", "choices": [{"index": 0, "message": {
    "role": "assistant", "content": "Hello! This is a canned answer from the benchmark upstream."},
    "finish_reason": "stop"}]}
with open(sys.argv[2], "w") as f:
    for _ in range(200):
        f.write(json.dumps({"request": request, "response": answer}) + "\n")
PYEOF
        "${INTERLOCK[@]}" drift baseline --config "$file" --model hit --jsonl "$past" "${embed[@]}" \
            --out "$WORK/hit.profile" >>"$WORK/drift.log" 2>&1 || {
            cat "$WORK/drift.log" >&2
            echo "bench: no drift reference" >&2
            exit 1
        }
    fi
    start_interlock OBSERVED_PID gateway-observed "$OBSERVED_PORT" "" "$file"
    log "observed gateway: $OBSERVED_PARTS"
}

# new_key CONFIG ARGS...: `interlock keys create --config CONFIG ARGS...`; prints the key.
new_key() {
    local config=$1
    shift
    "${INTERLOCK[@]}" keys create --config "$config" "$@" 2>>"$WORK/keys.log" |
        "$PY" -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}

# start_secure_gateway: the third gateway (SECURE_PID, SECURE_PORT) with write_secure_config. Makes
# two keys first: SECURE_KEY (tenant bench, role user, rpm and tpm limits) carries the load,
# SECURE_METRICS_KEY (role auditor) reads /metrics.
start_secure_gateway() {
    local file="$WORK/gateway-secure.yaml"
    if has_part redis && ! "$PY" -c 'import sys, redis; redis.Redis.from_url(sys.argv[1], socket_timeout=1).ping()' \
        "$SECURE_REDIS" 2>/dev/null; then
        echo "bench: no Redis at $SECURE_REDIS for the secured gateway (start one, or BENCH_SECURE=0)" >&2
        exit 1
    fi
    write_secure_config "$file" "$SECURE_PORT"
    local limits=()
    if has_part limits; then limits=(--rpm 100000000 --tpm 100000000000); fi
    SECURE_KEY=$(new_key "$file" --name bench --tenant bench "${limits[@]}")
    SECURE_METRICS_KEY=$(new_key "$file" --name bench-metrics --role auditor)
    [[ $SECURE_KEY == ik_* && $SECURE_METRICS_KEY == ik_* ]] || {
        cat "$WORK/keys.log" >&2
        echo "bench: could not create the API keys" >&2
        exit 1
    }
    start_interlock SECURE_PID gateway-secure "$SECURE_PORT" "" "$file"
    log "secured gateway: $SECURE_PARTS"
}

# start_interlock PIDVAR NAME PORT [CLIENT] [CONFIG] [SERVER] [WORKERS]: start one gateway process,
# store its pid in the variable named PIDVAR at once (so the exit trap stops it), then wait until it
# is healthy. CONFIG: a config file already written (default: write_config into the temp dir).
# SERVER: native, uvicorn or granian (default: $SERVER, else the configured default). WORKERS: 1.
start_interlock() {
    local pidvar=$1 name=$2 port=$3 client=${4:-} config=${5:-} server=${6:-$SERVER} workers=${7:-1}
    if port_busy "$port"; then
        echo "bench: 127.0.0.1:$port is already in use (set BENCH_GATEWAY_PORT, BENCH_AIOHTTP_PORT, BENCH_SECURE_PORT)" >&2
        exit 1
    fi
    if [[ -z $config ]]; then
        config="$WORK/$name.yaml"
        write_config "$config" "$port" "$client"
    fi
    if [[ $server == granian ]]; then
        INTERLOCK_CONFIG=$config "$PY" -m granian --interface asgi --factory --host 127.0.0.1 --port "$port" \
            --workers "$workers" --loop uvloop --http 1 --no-ws --log-level warning --no-access-log \
            interlock.app:create_app >"$WORK/$name.log" 2>&1 &
    else
        local http=()
        if [[ -n $server ]]; then http=(--http "$server"); fi
        "${INTERLOCK[@]}" serve --config "$config" --host 127.0.0.1 --port "$port" --workers "$workers" \
            "${http[@]}" >"$WORK/$name.log" 2>&1 &
    fi
    printf -v "$pidvar" '%s' "$!"
    if ! wait_http "http://127.0.0.1:$port/healthz" 60 "${!pidvar}"; then
        cat "$WORK/$name.log" >&2
        echo "bench: the gateway ($name) did not become healthy" >&2
        exit 1
    fi
    log "interlock ($name${client:+, upstream client $client}, server ${server:-default}) pid ${!pidvar} on 127.0.0.1:$port ($workers worker(s))"
}

# cpu_ticks PID: CPU time (user + system, in clock ticks) of PID and its child processes so far
# (live children: the workers of `--workers N`).
cpu_ticks() {
    local pid total=0 fields
    for pid in "$1" $(pgrep -P "$1" || true); do
        [[ -r /proc/$pid/stat ]] || continue
        read -ra fields <<<"$(sed 's/^.*) //' "/proc/$pid/stat")"
        total=$((total + fields[11] + fields[12]))  # utime, stime (fields 14 and 15 of stat)
    done
    echo "$total"
}

# start_gateway [CLIENT]: the gateway (GATEWAY_PID, GATEWAY_PORT), by default with the default
# upstream client.
start_gateway() { start_interlock GATEWAY_PID gateway "$GATEWAY_PORT" "${1:-}"; }

# start_aiohttp_gateway: a second gateway with `upstream: {client: aiohttp}` (AIOHTTP_PID, AIOHTTP_PORT).
start_aiohttp_gateway() { start_interlock AIOHTTP_PID gateway-aiohttp "$AIOHTTP_PORT" aiohttp; }

# post MODE [URL] [KEY]: one request with the wrk body and `Authorization: Bearer KEY` (default
# "bench"; the header is read from stdin, so the key is not on a command line); prints the
# response headers and body.
post() {
    local mode=$1 url=${2:-$GATEWAY_URL} key=${3:-bench}
    curl -s -i --max-time 5 -H 'Content-Type: application/json' -H @- \
        --data-binary "@$BENCH_DIR/wrk/$mode.json" "$url" <<<"Authorization: Bearer $key"
}

# check_gateway [URL] [KEY]: both groups answer 200 through the gateway, and the hit group hits its cache.
check_gateway() {
    local url=${1:-$GATEWAY_URL} key=${2:-bench} out
    out=$(post miss "$url" "$key")
    grep -q '^HTTP/1.1 200' <<<"$out" || { echo "bench: miss request failed:" >&2; echo "$out" >&2; exit 1; }
    if grep -qi '^x-interlock-cache: hit' <<<"$out"; then
        echo "bench: the miss body was answered from the cache" >&2
        exit 1
    fi
    post hit "$url" "$key" >/dev/null
    out=$(post hit "$url" "$key")
    grep -q '^HTTP/1.1 200' <<<"$out" || { echo "bench: hit request failed:" >&2; echo "$out" >&2; exit 1; }
    grep -qi '^x-interlock-cache: hit' <<<"$out" || {
        echo "bench: the hit body was not answered from the cache:" >&2
        echo "$out" >&2
        exit 1
    }
}

# run_wrk MODE CONNS SECONDS URL OUTFILE [KEY]: one wrk run, output kept in OUTFILE; chat.lua sends
# KEY (default "bench") as `Authorization: Bearer KEY`.
run_wrk() {
    local mode=$1 conns=$2 seconds=$3 url=$4 out=$5 key=${6:-bench}
    BENCH_API_KEY=$key BENCH_MODE=$mode wrk -t1 -c"$conns" -d"${seconds}s" --timeout 5s --latency -s "$LUA" "$url" >"$out" 2>&1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
