#!/usr/bin/env bash
# Builds the libFuzzer targets (libs/siteconfig/fuzz: _redirects, _headers, vercel.json) with clang
# in a tree of their own, then runs each for a bounded time on a corpus seeded from
# tests/fixtures/siteconfig (kept in the tree, so it grows from run to run). deploy/test.sh runs it.
#
# Usage: deploy/fuzz.sh [seconds per target, default 20]
# Exit status: the number of targets that failed (a crash, a leak, a check in fuzz_check.hpp);
# a failed configure or build fails all three. A crash's input is kept as build/fuzz/<target>-crash-*.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${DP_BUILD_ROOT:-$repo_root/build}/fuzz"
seconds="${1:-20}"
targets=(redirects headers vercel)
export CCACHE_BASEDIR="$repo_root" CCACHE_NOHASHDIR=1

mkdir -p "$build"
if ! cmake -S "$repo_root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDP_FUZZ=ON -DDP_BUILD_TESTS=OFF -DDP_BUILD_BENCH=OFF \
  >"$build.configure.log" 2>&1; then
  cat "$build.configure.log"
  echo "fuzz.sh: configuring $build failed"
  exit ${#targets[@]}
fi
if ! cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/siteconfig_fuzz_}"; then
  echo "fuzz.sh: building the fuzz targets failed"
  exit ${#targets[@]}
fi

# The seed corpus: every fixture file of the target's kind.
declare -A file_of=([redirects]=_redirects [headers]=_headers [vercel]=vercel.json)
failed=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  while IFS= read -r -d '' f; do
    cp "$f" "$corpus/seed-$(basename "$(dirname "$f")")"
  done < <(find "$repo_root/tests/fixtures/siteconfig" -name "${file_of[$t]}" -type f -print0)
  log="$build/$t.log"
  echo "==> fuzz $t for ${seconds}s"
  if "$build/libs/siteconfig/siteconfig_fuzz_$t" -max_total_time="$seconds" -max_len=16384 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/$t-" "$corpus" >"$log" 2>&1; then
    grep -E '^stat::number_of_executed_units' "$log" || true
  else
    tail -60 "$log"
    echo "fuzz.sh: $t failed (log: $log)"
    failed=$((failed + 1))
  fi
done
exit "$failed"
