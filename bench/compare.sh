#!/usr/bin/env bash
# Two trees side by side in one run: bench/run.sh against BASE (a git ref, checked out into a
# temporary worktree) and against this tree, in turn (base, head, head, base, ...), RUNS times
# each; then per row the median requests/s, p50 and p99 of each tree and head / base
# (report.py compare). What a change costs or saves, measured as ratios in one run on this
# noisy machine rather than against figures from another day.
#
#   bench/compare.sh BASE [RUNS]       e.g. bench/compare.sh 73f6781 2
#   BENCH_COMPARE=in-process bench/compare.sh BASE [RUNS]
#                                      bench/secure_cost.py instead (a cache hit through the ASGI
#                                      app, no sockets: plain, key, key+limits, key+dlp, secured),
#                                      pinned to one core; the least disturbed run of each tree
#
# The environment passes through to run.sh; the defaults here measure the rows a change of the
# request path is judged on (cache hit, secured and observed hits, miss at 1, 8 and 64
# connections): BENCH_DURATION=6 BENCH_C1=1 BENCH_AIOHTTP=0. Both trees run on this tree's
# .venv (so on the same dependencies), each with its own src/ first on PYTHONPATH.
set -euo pipefail
BASE=${1:?usage: bench/compare.sh BASE [RUNS]}
RUNS=${2:-2}
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
OUT=${BENCH_OUT:-$BENCH_DIR/out/compare}
TREE=$(mktemp -d "${TMPDIR:-/tmp}/interlock-base.XXXXXX")
cleanup() { git -C "$ROOT" worktree remove --force "$TREE" >/dev/null 2>&1 || rm -rf "$TREE"; }
trap cleanup EXIT
git -C "$ROOT" worktree add --detach -q "$TREE" "$BASE"
export BENCH_DURATION=${BENCH_DURATION:-6} BENCH_C1=${BENCH_C1:-1} BENCH_AIOHTTP=${BENCH_AIOHTTP:-0}
export BENCH_INTERLOCK="$ROOT/.venv/bin/python -m interlock"
rm -rf "$OUT"
base_dirs=() head_dirs=()
for ((run = 1; run <= RUNS; run++)); do
    order="base head"
    ((run % 2)) || order="head base"  # ABBA: neither tree always goes first
    for side in $order; do
        src=$ROOT/src
        [[ $side == base ]] && src=$TREE/src
        dir=$OUT/$side-$run
        echo "$(date +%H:%M:%S) compare: run $run, $side ($(git -C "$(dirname "$src")" rev-parse --short HEAD))" >&2
        if [[ ${BENCH_COMPARE:-wrk} == in-process ]]; then
            mkdir -p "$dir"
            PYTHONPATH=$src:$BENCH_DIR taskset -c "$(($(nproc) - 1))" "$ROOT/.venv/bin/python" \
                "$BENCH_DIR/secure_cost.py" --requests 4000 --rounds 5 >"$dir/costs.txt" 2>/dev/null
        else
            PYTHONPATH=$src BENCH_OUT=$dir "$BENCH_DIR/run.sh" >/dev/null
        fi
        if [[ $side == base ]]; then base_dirs+=("$dir"); else head_dirs+=("$dir"); fi
    done
done
{
    echo "bench/compare.sh $BASE $RUNS, $(date -u '+%Y-%m-%d %H:%M UTC'): base $(git -C "$TREE" rev-parse --short HEAD)," \
        "head $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' (uncommitted changes)')," \
        "BENCH_COMPARE=${BENCH_COMPARE:-wrk} BENCH_DURATION=$BENCH_DURATION BENCH_C1=$BENCH_C1 BENCH_AIOHTTP=$BENCH_AIOHTTP, load average before the last run:" \
        "$(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    command=compare
    [[ ${BENCH_COMPARE:-wrk} == in-process ]] && command=compare-costs
    "$ROOT/.venv/bin/python" "$BENCH_DIR/report.py" $command "${base_dirs[@]}" -- "${head_dirs[@]}"
} | tee "$OUT/table.md"
