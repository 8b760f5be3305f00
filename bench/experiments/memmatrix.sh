#!/usr/bin/env bash
# The comparison matrix for the slow RSS rise: native vs aiohttp client, gc tuning on/off,
# mixed / hit-only / miss-only load. Each run: 10 s warm-up + 8 x 10 s chunks, no forced gc
# until the last sample, which lists what a full collection frees. About 12 minutes of load.
set -euo pipefail
cd "$(dirname "$0")/../.."
run() { env COLLECT=lastgarbage CHUNKS=8 CHUNK=10 "$@" bench/experiments/memrun.sh; }
# done first (dd1445f): run NAME=M1-native-gc1-mixed CLIENT=native GCTUNE=1 MODE=mixed
run NAME=M2-aiohttp-gc1-mixed CLIENT=aiohttp GCTUNE=1 MODE=mixed
run NAME=M3-native-gc0-mixed CLIENT=native GCTUNE=0 MODE=mixed
run NAME=M4-aiohttp-gc0-mixed CLIENT=aiohttp GCTUNE=0 MODE=mixed
run NAME=M5-native-gc1-hit CLIENT=native GCTUNE=1 MODE=hit
run NAME=M6-native-gc1-miss CLIENT=native GCTUNE=1 MODE=miss
run NAME=M7-native-gc1-mixed-1chunk CLIENT=native GCTUNE=1 MODE=mixed CHUNKS=1 CHUNK=60 MID=1
