#!/usr/bin/env bash
# The cache hit of a plain gateway, a secured one and observed ones with one part each (or any
# mix), measured in turn, round after round, in one run: requests/s, p99 and the gateway's CPU
# per request of each, and per variant the median of its ratios to the plain gateway of the same
# round. What run.sh's observed row costs, part by part, on the running server.
#
#   bench/experiments/observed_parts.sh
#
# Environment:
#   PARTS_ROUNDS=5         rounds
#   PARTS_SECONDS=4        seconds per measured row (1 s of unmeasured load before each)
#   PARTS_SECURE=1         include the secured gateway (run.sh's)
#   PARTS_VARIANTS="drift drift,embeddings alerts traces drift,embeddings,alerts,traces"
#                          the observed gateways, one per word: BENCH_OBSERVED_PARTS of each;
#                          `traces@0.1` sets that one's share of requests traced (default 0.01)
# shellcheck source=bench/lib.sh
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

ROUNDS=${PARTS_ROUNDS:-5}
SECONDS_PER_ROW=${PARTS_SECONDS:-4}
read -ra VARIANTS <<<"${PARTS_VARIANTS:-drift drift,embeddings alerts traces drift,embeddings,alerts,traces}"

start_nginx
start_gateway
check_gateway
names=(plain) urls=("$GATEWAY_URL") pids=("$GATEWAY_PID") keys=(bench)
if [[ ${PARTS_SECURE:-1} == 1 ]]; then
    start_secure_gateway
    check_gateway "$SECURE_URL" "$SECURE_KEY"
    names+=(secured) urls+=("$SECURE_URL") pids+=("$SECURE_PID") keys+=("$SECURE_KEY")
fi
port=$((GATEWAY_PORT + 30))
for variant in "${VARIANTS[@]}"; do
    OBSERVED_PARTS=${variant%%@*} OBSERVED_PORT=$port
    OBSERVED_URL="http://127.0.0.1:$port/v1/chat/completions"
    if [[ $variant == *@* ]]; then export BENCH_TRACE_RATIO=${variant##*@}; else unset BENCH_TRACE_RATIO; fi
    start_observed_gateway
    BG_PIDS+=("$OBSERVED_PID")
    check_gateway "$OBSERVED_URL"
    names+=("observed:$variant") urls+=("$OBSERVED_URL") pids+=("$OBSERVED_PID") keys+=(bench)
    port=$((port + 1))
done
unset BENCH_TRACE_RATIO

rows="$WORK/rows.txt"
tick=$(getconf CLK_TCK)
for round in $(seq "$ROUNDS"); do
    for i in "${!names[@]}"; do
        run_wrk hit 64 1 "${urls[i]}" "$WORK/warm.txt" "${keys[i]}"
        before=$(cpu_ticks "${pids[i]}")
        run_wrk hit 64 "$SECONDS_PER_ROW" "${urls[i]}" "$WORK/row.txt" "${keys[i]}"
        after=$(cpu_ticks "${pids[i]}")
        echo "$round ${names[i]} $(awk '/Requests\/sec/ {print $2}' "$WORK/row.txt")" \
            "$(awk '$1 == "99%" {print $2}' "$WORK/row.txt")" "$(awk '/requests in/ {print $1}' "$WORK/row.txt")" \
            "$((after - before))" "$tick" >>"$rows"
        log "round $round ${names[i]}: $(tail -1 "$rows" | cut -d' ' -f3-4)"
        sleep 1
    done
done
"$PY" - "$rows" <<'PYEOF'
import statistics, sys
from collections import defaultdict
rounds = defaultdict(dict)
for line in open(sys.argv[1]):
    r, name, rps, p99, n, ticks, tick = line.split()
    rounds[r][name] = (float(rps), p99, int(ticks) / int(tick) / int(n) * 1e6)
names = list(next(iter(rounds.values())))
print("| Gateway | req/s (median) | p99 by round | CPU / request (median) | / plain, req/s (median; by round) | / plain, CPU |")
print("|---|---:|---|---:|---|---:|")
for name in names:
    rps = [rounds[r][name][0] for r in rounds]
    cpu = [rounds[r][name][2] for r in rounds]
    ratios = [rounds[r][name][0] / rounds[r]["plain"][0] for r in rounds]
    cpu_ratios = [rounds[r]["plain"][2] / rounds[r][name][2] for r in rounds]
    p99 = ", ".join(rounds[r][name][1] for r in rounds)
    print(f"| {name} | {statistics.median(rps):,.0f} | {p99} | {statistics.median(cpu):.1f} µs "
          f"| {statistics.median(ratios):.3f} ({', '.join(f'{x:.2f}' for x in ratios)}) | {statistics.median(cpu_ratios):.3f} |")
PYEOF
