#!/bin/sh
# Builds and runs the storage upload benchmark (Release) and prints its table.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$src/build-bench}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_BENCH=ON >/dev/null
ninja -C "$build" storage_bench
DP_SOURCE_DIR="$src" "$build/bench/storage_bench"
