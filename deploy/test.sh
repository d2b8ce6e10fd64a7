#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): set-up, then the build/asan tree (ASan+UBSan at
# -O1) and every test label in it (unit, integration, e2e) but containers: building the images
# from source takes 7 to 8 minutes more (run it with ctest -L containers; docs/deploy.md).
# Safe to run twice: set-up is idempotent and the tree builds incrementally through ccache.
# Ends with one plain line "N passed, N failed"; exits non-zero on any failure; a failed build
# counts as one failure (and the tests that did build still run).
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Where the build tree goes; DP_BUILD_ROOT moves it (e.g. to keep a second checkout's apart).
build_root="${DP_BUILD_ROOT:-$repo_root/build}"
jobs="$(nproc)"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
# Paths below the checkout are hashed relative to it, so a fresh clone elsewhere (as CI makes)
# still hits the cache that an earlier run filled.
export CCACHE_BASEDIR="$repo_root"
export CCACHE_NOHASHDIR=1
# Any sanitizer report fails the test that triggered it, with a stack to read.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:strict_init_order=1:print_summary=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# --containers: a Docker Engine for the docker launcher's tests (they start their own dockerd).
"$repo_root/deploy/setup.sh" --containers || {
  echo "test.sh: deploy/setup.sh failed"
  echo "0 passed, 1 failed"
  exit 1
}

passed=0
failed=0

# build_and_test <dir> <ctest args...> -- <cmake args...>
build_and_test() {
  local dir="$build_root/$1"
  shift
  local ctest_args=()
  while [[ $1 != -- ]]; do
    ctest_args+=("$1")
    shift
  done
  shift

  echo "==> configure and build $dir"
  if ! cmake -S "$repo_root" -B "$dir" -G Ninja -DDP_BUILD_TESTS=ON "$@" >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log"
    echo "test.sh: configuring $dir failed"
    failed=$((failed + 1))
    return
  fi
  # Keep going past a broken target: the tests that did build still run and report.
  if ! cmake --build "$dir" -j "$jobs" -- -k 0; then
    echo "test.sh: building $dir failed (counted as one failure; the tests that built still run)"
    failed=$((failed + 1))
  fi

  echo "==> test $dir"
  local log="$dir/ctest.log"
  ctest --test-dir "$dir" --output-on-failure --no-tests=error --timeout 300 -j "$jobs" \
    "${ctest_args[@]}" 2>&1 | tee "$log"
  # ctest's summary: "95% tests passed, 1 tests failed out of 20".
  local summary
  summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)"
  if [[ -z $summary ]]; then
    echo "test.sh: no test summary from ctest in $dir"
    failed=$((failed + 1))
    return
  fi
  local f total
  f="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$summary")"
  total="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")"
  passed=$((passed + total - f))
  failed=$((failed + f))
}

mkdir -p "$build_root"
# One tree, built with AddressSanitizer and UndefinedBehaviorSanitizer at -O1, runs every label:
# the sanitizers check each test, and one tree instead of two halves the build on CI's 2 cores.
# The benchmarks are compiled here too (not run: their numbers mean something only in the Release
# tree, build/release, which deploy/local/run.sh and bench/run.sh build), so that CI sees them break.
build_and_test asan -LE containers -- -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DDP_SANITIZE=ON -DDP_BUILD_BENCH=ON

# The parsers' libFuzzer targets (clang, a tree of their own), 20 s each: one test per target.
echo "==> fuzz (deploy/fuzz.sh)"
"$repo_root/deploy/fuzz.sh" 20
fuzz_failed=$?
passed=$((passed + 3 - fuzz_failed))
failed=$((failed + fuzz_failed))

echo "${passed} passed, ${failed} failed"
((failed == 0))
