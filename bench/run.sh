#!/usr/bin/env bash
# Builds the Release tree (build/release) and runs the benchmarks; each prints its own table.
# Usage: bench/run.sh [name...]   names: proto storage http build cache compress worker api proxy rules tls e2e
# sites
# (default: all)
# Needs `deploy/setup.sh --bench` (wrk, nginx) for http, api, proxy and tls. Run it on an idle machine:
# the numbers are only as quiet as the box.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/release"
names=("$@")
((${#names[@]})) || names=(proto storage http build cache compress worker api proxy rules tls e2e sites)

export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1 DP_SOURCE_DIR="$root"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=ON \
  -DDP_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target api-server build-runner s3-reverse-proxy proto_bench storage_bench \
  http_server_bench build_bench cache_bench compress_bench worker_bench api_bench worker_node deployctl rules_compile

run_one() {
  local name="$1"
  case "$name" in
    proto) "$build/libs/proto/proto_bench" ;;
    storage) "$build/bench/storage_bench" ;;
    http) "$build/bench/http_server_bench/http_server_bench" ;;
    build) "$build/bench/build_bench" ;;
    cache) "$build/bench/cache_bench" ;;
    compress) DP_BIN_DIR="$build" "$root/bench/compress_bench.sh" ;;
    worker) "$build/bench/worker_bench" ;;
    api) "$build/bench/api_bench" ;;
    proxy) BUILD="$build" "$root/bench/proxy_bench.sh" ;;
    rules) BUILD="$build" "$root/bench/rules_bench.sh" ;;
    tls) BUILD="$build" "$root/bench/tls_bench.sh" ;;
    e2e) DP_BIN_DIR="$build" "$root/bench/e2e_bench.sh" ;;
    sites) DP_BIN_DIR="$build" "$root/bench/sites_bench.sh" ;;
    *)
      echo "bench/run.sh: unknown benchmark '$name'" >&2
      return 2
      ;;
  esac
}

# One failing benchmark does not hide the others' tables; the exit status reports it.
failed=()
for name in "${names[@]}"; do
  echo
  echo "== $name"
  run_one "$name" || failed+=("$name")
done
if ((${#failed[@]})); then
  echo "bench/run.sh: failed: ${failed[*]}" >&2
  exit 1
fi
