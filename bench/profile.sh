#!/usr/bin/env bash
# Where the gateway spends its CPU under load: py-spy samples the one gateway process while wrk
# drives it, then the top frames (self and inclusive) are printed.
#
#   bench/profile.sh [miss|hit] [connections]      (default: miss 64)
#
# Needs py-spy in the venv (.venv/bin/pip install py-spy). Environment:
#   PROFILE_SECONDS=15     how long to sample (wrk runs 2 s longer)
#   PROFILE_RATE=200       samples per second
#   PROFILE_NATIVE=1       include C frames (uvloop, httptools, orjson) as well
#   PROFILE_CLIENT=aiohttp profile a gateway with `upstream: {client: aiohttp}` (default: the default)
#   PROFILE_SECURE=1       profile the secured gateway of run.sh instead (API keys, rate limits in
#                          Redis, DLP; BENCH_SECURE_PARTS picks the parts as for run.sh)
#   PROFILE_OBSERVED=1     profile the observed gateway of run.sh instead (drift, alerts, traces;
#                          BENCH_OBSERVED_PARTS picks the parts); every thread is sampled
#   BENCH_GATEWAY_PORT, BENCH_KEEP as for run.sh
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

MODE=${1:-miss}
CONNS=${2:-64}
SECONDS_TO_SAMPLE=${PROFILE_SECONDS:-15}
RATE=${PROFILE_RATE:-200}
PYSPY="$VENV/bin/py-spy"
[[ $MODE == miss || $MODE == hit ]] || { echo "usage: $0 [miss|hit] [connections]" >&2; exit 2; }
[[ $CONNS =~ ^[0-9]+$ && $SECONDS_TO_SAMPLE =~ ^[0-9]+$ && $SECONDS_TO_SAMPLE -le 300 ]] || {
    echo "bench: connections must be a number, PROFILE_SECONDS at most 300" >&2
    exit 2
}
[[ -x $PYSPY ]] || { echo "bench: $PYSPY missing: $VENV/bin/pip install py-spy" >&2; exit 1; }
OUT=${BENCH_OUT:-$BENCH_DIR/out/profile}
mkdir -p "$OUT"
CLIENT=${PROFILE_CLIENT:-}
[[ -z $CLIENT || $CLIENT == native || $CLIENT == aiohttp ]] || {
    echo "bench: PROFILE_CLIENT must be native or aiohttp" >&2
    exit 2
}
SECURE=${PROFILE_SECURE:-0}
[[ $SECURE == 0 || $SECURE == 1 ]] || { echo "bench: PROFILE_SECURE must be 0 or 1" >&2; exit 2; }
[[ $SECURE == 0 || -z $CLIENT ]] || { echo "bench: PROFILE_SECURE=1 takes no PROFILE_CLIENT" >&2; exit 2; }
OBSERVED=${PROFILE_OBSERVED:-0}
[[ $OBSERVED == 0 || $OBSERVED == 1 ]] || { echo "bench: PROFILE_OBSERVED must be 0 or 1" >&2; exit 2; }
[[ $OBSERVED == 0 || ($SECURE == 0 && -z $CLIENT) ]] || {
    echo "bench: PROFILE_OBSERVED=1 takes neither PROFILE_SECURE nor PROFILE_CLIENT" >&2
    exit 2
}
native=()
suffix=${CLIENT:+-$CLIENT}
if [[ $SECURE == 1 ]]; then suffix="-secure"; fi
if [[ $OBSERVED == 1 ]]; then suffix="-observed"; fi
if [[ ${PROFILE_NATIVE:-0} == 1 ]]; then
    native=(--native)
    suffix="$suffix-native"
fi
raw="$OUT/$MODE-c$CONNS$suffix.raw"

start_nginx
if [[ $SECURE == 1 ]]; then
    start_secure_gateway
    pid=$SECURE_PID url=$SECURE_URL key=$SECURE_KEY
    what="the secured gateway ($SECURE_PARTS)"
elif [[ $OBSERVED == 1 ]]; then
    start_observed_gateway
    pid=$OBSERVED_PID url=$OBSERVED_URL key=bench
    what="the observed gateway ($OBSERVED_PARTS)"
else
    start_gateway "$CLIENT"
    pid=$GATEWAY_PID url=$GATEWAY_URL key=bench
    what="the gateway${CLIENT:+ (upstream client $CLIENT)}"
fi
check_gateway "$url" "$key"
run_wrk "$MODE" 64 3 "$url" "$WORK/warmup.txt" "$key"

log "wrk -c$CONNS $MODE for $((SECONDS_TO_SAMPLE + 2))s; py-spy samples pid $pid for ${SECONDS_TO_SAMPLE}s"
run_wrk "$MODE" "$CONNS" $((SECONDS_TO_SAMPLE + 2)) "$url" "$OUT/$MODE-c$CONNS$suffix-wrk.txt" "$key" &
BG_PIDS+=($!)
sleep 1
"$PYSPY" record --pid "$pid" --duration "$SECONDS_TO_SAMPLE" --rate "$RATE" "${native[@]}" \
    --format raw --output "$raw" >"$WORK/py-spy.log" 2>&1 || { cat "$WORK/py-spy.log" >&2; exit 1; }
wait "${BG_PIDS[@]}"
BG_PIDS=()

echo "Profile of $what, $MODE at $CONNS connections, ${SECONDS_TO_SAMPLE}s at ${RATE} Hz" \
    "(wrk: $(grep -m1 '^Requests/sec' "$OUT/$MODE-c$CONNS$suffix-wrk.txt" || echo '?'))"
"$PY" "$BENCH_DIR/report.py" profile "$raw" 30 | tee "$OUT/$MODE-c$CONNS$suffix.txt"
