#!/usr/bin/env bash
# One bounded memory run of bench/experiments/memprobe.py (the real gateway + GET /__mem) under
# wrk load, sampling /__mem after every chunk. Everything on 127.0.0.1; stops by itself.
#
#   CLIENT=native|aiohttp GCTUNE=1|0 MODE=mixed|hit|miss CHUNKS=12 CHUNK=10 COLLECT=1|0 \
#   TRACE=0|1 NAME=run1 bench/experiments/memrun.sh
#
# COLLECT=1: every sample forces gc.collect() (numbers before and after it are kept);
# COLLECT=0: samples do not collect, except the last one. COLLECT=garbage: every sample lists
# what a full collection frees (gc.DEBUG_SAVEALL), then frees it; COLLECT=lastgarbage: only
# the last sample does (everything that accumulated during the run). MID=1: one more sample
# (no gc) half-way through each chunk, under load.
# TRACE=1: tracemalloc starts after the warm-up; a snapshot diff is taken at every sample.
# MEMPROBE_SRC=ref (default: commit MEMPROBE_REF of src/, see below) or worktree.
# Output: bench/out/mem-NAME/samples.jsonl (+ wrk outputs)
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

CLIENT=${CLIENT:-native}
GCTUNE=${GCTUNE:-1}
MODE=${MODE:-mixed}
CHUNKS=${CHUNKS:-12}
CHUNK=${CHUNK:-10}
COLLECT=${COLLECT:-1}
TRACE=${TRACE:-0}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-10}
NAME=${NAME:-$CLIENT-gc$GCTUNE-$MODE}
OUT=$BENCH_DIR/out/mem-$NAME
PORT=${BENCH_GATEWAY_PORT:-14000}
mkdir -p "$OUT"
rm -f "$OUT"/*
MEM="http://127.0.0.1:$PORT/__mem"

# The lead engineer edits (and commits) src/ meanwhile: by default run one fixed commit,
# MEMPROBE_REF (dd1445f: the code of the 1.58M-request memory run), exported to a temp dir and
# put first on PYTHONPATH, with MEMPROBE_PATCH applied if set. MEMPROBE_SRC=worktree runs src/
# as it is.
if [[ ${MEMPROBE_SRC:-ref} == ref ]]; then
    ref=${MEMPROBE_REF:-dd1445f}
    git -C "$ROOT" archive "$ref" src | tar -x -C "$WORK"
    if [[ -n ${MEMPROBE_PATCH:-} ]]; then  # a patch to apply to the exported tree first
        patch -s -d "$WORK" -p1 <"$MEMPROBE_PATCH"
        log "applied $MEMPROBE_PATCH"
    fi
    export PYTHONPATH=$WORK/src
    log "running $ref from $WORK/src"
fi
start_nginx
cfg=$WORK/probe.yaml
write_config "$cfg" "$PORT" "$CLIENT"
if [[ $GCTUNE == 0 ]]; then
    # write_config starts with `server:`; add the two keys under it
    sed -i 's/^server:$/server:\n  gc_freeze: false\n  gc_gen0_threshold: 700/' "$cfg"
fi
cp "$cfg" "$OUT/config.yaml"
"$PY" "$BENCH_DIR/experiments/memprobe.py" "$cfg" "$PORT" >"$OUT/gateway.log" 2>&1 &
GATEWAY_PID=$!
wait_http "http://127.0.0.1:$PORT/healthz" 60 "$GATEWAY_PID" || { cat "$OUT/gateway.log"; exit 1; }
check_gateway "http://127.0.0.1:$PORT/v1/chat/completions"
log "probe pid $GATEWAY_PID: client=$CLIENT gctune=$GCTUNE mode=$MODE chunks=${CHUNKS}x${CHUNK}s collect=$COLLECT trace=$TRACE"

load() {  # load SECONDS PREFIX
    local s=$1 p=$2 pids=()
    case $MODE in
        mixed)
            run_wrk hit $((CONNS / 2)) "$s" "$GATEWAY_URL" "$p-hit.txt" & pids+=($!)
            run_wrk miss $((CONNS / 2)) "$s" "$GATEWAY_URL" "$p-miss.txt" & pids+=($!) ;;
        hit | miss)
            run_wrk "$MODE" "$CONNS" "$s" "$GATEWAY_URL" "$p-$MODE.txt" & pids+=($!) ;;
    esac
    BG_PIDS=("${pids[@]}")
    if [[ ${MID:-0} == 1 && $p == */chunk* ]]; then  # a sample in the middle of the load, no gc
        sleep $((s / 2))
        sample "${p##*/}-mid" "census=1"
    fi
    wait "${pids[@]}"
    BG_PIDS=()
}

sample() {  # sample LABEL QUERY
    local q=$2
    printf '{"label":"%s","requests":%s,"data":' "$1" "$sent" >>"$OUT/samples.jsonl"
    curl -sf --max-time 120 "$MEM?$q" >>"$OUT/samples.jsonl"
    printf '}\n' >>"$OUT/samples.jsonl"
}

sent=0
load "$WARMUP" "$OUT/warmup"
sleep 1
sample warmup "collect=1&census=1&internals=1"
if [[ $TRACE == 1 ]]; then curl -sf "$MEM?trace=start" >/dev/null; fi
for ((i = 1; i <= CHUNKS; i++)); do
    load "$CHUNK" "$OUT/chunk$i"
    sent=$((sent + $("$PY" "$BENCH_DIR/report.py" requests "$OUT"/chunk$i-*.txt)))
    sleep 0.5
    q="census=1&internals=1"
    if [[ $COLLECT == garbage || ($COLLECT == lastgarbage && $i == "$CHUNKS") ]]; then q="$q&garbage=1";
    elif [[ $COLLECT == 1 || $i == "$CHUNKS" ]]; then q="$q&collect=1"; fi
    if [[ $TRACE == 1 ]]; then q="$q&trace=snap"; fi
    sample "chunk$i" "$q"
    log "chunk $i: $sent requests"
done
sample final-trim "collect=1&trim=1"
errors=$("$PY" "$BENCH_DIR/report.py" errors "$OUT"/chunk*.txt)
log "done: $sent requests, $errors errors; $OUT/samples.jsonl"
"$PY" "$BENCH_DIR/experiments/memsummary.py" "$OUT/samples.jsonl" | tee "$OUT/summary.txt"
