#!/usr/bin/env bash
# The precompressed variants on the real sites (tests/fixtures/sites): the bytes a client
# downloads for each whole site without compression, with Brotli and with gzip, and the runner's
# upload step without and with the variants; then Brotli 5, 9 and 11 against gzip 9 on the same
# files, and the time and peak memory of the largest file the runner compresses (8 MiB).
# bench/compress_bench.cpp says how. Each site is built twice by the runner (real npm in
# bubblewrap, as the e2e tests), so the sites' installs need the npm registry or npm's cache.
#
# Usage: bench/compress_bench.sh [site...]   (default: the sites not marked heavy in
#        tests/e2e/sites.mjs)
# Environment: DP_BIN_DIR, a build tree with bench/compress_bench (default: build/release, built
# here like bench/run.sh does).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z ${DP_BIN_DIR:-} ]]; then
  DP_BIN_DIR="$repo_root/build/release"
  export CCACHE_BASEDIR="$repo_root" CCACHE_NOHASHDIR=1
  cmake -S "$repo_root" -B "$DP_BIN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=ON \
    -DDP_BUILD_BENCH=ON >/dev/null
  cmake --build "$DP_BIN_DIR" --target compress_bench
fi
if ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$DP_BIN_DIR/CMakeCache.txt" 2>/dev/null; then
  echo "compress_bench: warning: $DP_BIN_DIR is not a Release tree: the upload times and the" \
    "peak memory carry its instrumentation (libbrotli and zlib are Debian's either way)" >&2
fi
DP_SOURCE_DIR="$repo_root" exec "$DP_BIN_DIR/bench/compress_bench" "$@"
