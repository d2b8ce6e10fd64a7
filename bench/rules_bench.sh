#!/usr/bin/env bash
# rules_bench: what a site's own rules cost the proxy on cache hits. One proxy serves three
# deployments of the same files: no rules; 100 static and 20 dynamic redirects (issue 19's case);
# the same redirects plus 3 header rules (compiled by bench/rules_compile as the runner compiles
# them). wrk asks each for the same 1 KiB file (no rule redirects it, every header rule is
# matched), taking turns ROUNDS times; each row is the median. Goal (issue 19): the redirects row
# under 5% slower. The header rules' row also sends 74 more bytes a response (their fields), which
# the kernel's send and the client pay for, not the rules' matching.
# Needs a Release build (BUILD, default build/release: s3-reverse-proxy and rules_compile),
# redis-server and wrk. The file store: the bytes come from the proxy's memory either way.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
PROXY_BIN=${PROXY_BIN:-$BUILD/services/s3-reverse-proxy/s3-reverse-proxy}
COMPILE_BIN=${COMPILE_BIN:-$BUILD/bench/rules_compile}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

for tool in redis-server redis-cli wrk curl sha256sum taskset python3; do
  command -v "$tool" >/dev/null || { echo "rules_bench: $tool is missing" >&2; exit 2; }
done
for bin in "$PROXY_BIN" "$COMPILE_BIN"; do
  [[ -x $bin ]] || {
    echo "rules_bench: $bin is missing; build it: cmake -S $ROOT -B $BUILD -G Ninja" \
      "-DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=OFF && ninja -C $BUILD s3-reverse-proxy" \
      "rules_compile" >&2
    exit 2
  }
done

BENCH=rules_bench
# shellcheck source=nginx_peer.sh
source "$ROOT/bench/nginx_peer.sh"

# The rules: 100 static and 20 dynamic redirects that the measured path does not take (the
# static lookup misses, all 20 dynamic ones are scanned), and header rules that it does match.
mkdir -p "$WORK/rules"
{
  for i in $(seq 1 100); do echo "/old/page-$i /new/page-$i 301"; done
  for i in $(seq 1 20); do echo "/blog-$i/:year/* /posts-$i/:year/:splat 302"; done
} >"$WORK/rules/_redirects"
mkdir -p "$WORK/redirects"
cp "$WORK/rules/_redirects" "$WORK/redirects/_redirects"
"$COMPILE_BIN" "$WORK/redirects" >"$WORK/redirects.json"
cat >"$WORK/rules/_headers" <<'H'
/*
  X-Frame-Options: DENY
  Referrer-Policy: strict-origin-when-cross-origin
/assets/*
  Cache-Control: public, max-age=600
/nothing/*
  X-Never: 1
H
"$COMPILE_BIN" "$WORK/rules" >"$WORK/rules.json"

# Two deployments of the same files in a file store; the second names the compiled rules.
STORE=$WORK/store
head -c 1024 /dev/urandom >"$WORK/1k.bin"
echo '<!doctype html><h1>bench</h1>' >"$WORK/index.html"
deployment() {  # id [rules]
  local id=$1 dir=$STORE/__outputs/$1 files="" sep=""
  mkdir -p "$dir/assets"
  cp "$WORK/index.html" "$dir/index.html"
  cp "$WORK/1k.bin" "$dir/assets/1k.bin"
  for f in index.html assets/1k.bin; do
    files+="$sep\"$f\":{\"size\":$(stat -c %s "$dir/$f"),\"sha256\":\"$(sha256sum "$dir/$f" | cut -d' ' -f1)\",\"content_type\":\"application/octet-stream\",\"cache_control\":\"public, max-age=60\"}"
    sep=","
  done
  local rules=""
  if [[ -n ${2:-} ]]; then
    cp "$2" "$dir/.site-rules.json"
    rules=',"rules":".site-rules.json"'
  fi
  echo "{\"v\":1,\"deployment_id\":\"$id\",\"created_at\":1764000009000,\"mode\":\"static\",\"files\":{$files}$rules}" \
    >"$dir/.deployment.json"
}
PLAIN=01jh5k7q3x9m2c8r4t6v0w1y3z
RULED=01jh5k7q3x9m2c8r4t6v0w1y40
REDIRECTED=01jh5k7q3x9m2c8r4t6v0w1y41
deployment "$PLAIN"
deployment "$REDIRECTED" "$WORK/redirects.json"
deployment "$RULED" "$WORK/rules.json"

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT"
redis-cli -p "$REDIS_PORT" SET dp:alias:plain "$PLAIN" >/dev/null
redis-cli -p "$REDIS_PORT" SET dp:alias:ruled "$RULED" >/dev/null
redis-cli -p "$REDIS_PORT" SET dp:alias:redirected "$REDIRECTED" >/dev/null

PROXY_PORT=$(free_port)
REDIS_URL=redis://127.0.0.1:$REDIS_PORT STORAGE_URL=file://$STORE \
  PROXY_LISTEN=127.0.0.1:$PROXY_PORT ADMIN_LISTEN=127.0.0.1:0 BASE_DOMAIN=localhost \
  ACCESS_LOG=false LOG_LEVEL=warn taskset -c "$SERVER_CPU" "$PROXY_BIN" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT"

URL=http://127.0.0.1:$PROXY_PORT/assets/1k.bin
# The rules are in force: the headers are there, a static and a dynamic redirect answer.
check() { curl -sf -o /dev/null -D - -H "Host: ruled.localhost" "$@"; }
check "$URL" | grep -qi '^cache-control: public, max-age=600' ||
  { echo "rules_bench: the header rules are not applied" >&2; exit 1; }
curl -s -o /dev/null -w '%{http_code}' -H "Host: ruled.localhost" \
  "http://127.0.0.1:$PROXY_PORT/old/page-100" | grep -q 301 ||
  { echo "rules_bench: the static redirect does not answer" >&2; exit 1; }
curl -s -o /dev/null -w '%{http_code}' -H "Host: ruled.localhost" \
  "http://127.0.0.1:$PROXY_PORT/blog-20/2024/x" | grep -q 302 ||
  { echo "rules_bench: the dynamic redirect does not answer" >&2; exit 1; }

curl -s -o /dev/null -w '%{http_code}' -H "Host: redirected.localhost" \
  "http://127.0.0.1:$PROXY_PORT/blog-20/2024/x" | grep -q 302 ||
  { echo "rules_bench: the redirects-only site does not redirect" >&2; exit 1; }
# The proxy's CPU time so far (user + system), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PROXY_PID/stat"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))
# measure <host>: one wrk run after a warm-up; prints "<req/s> <p99 in ms> <proxy CPU us per
# request>". The CPU time per request hardly moves when other processes share the machine (req/s
# does): both are shown.
measure() {
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s -H "Host: $1" "$URL" >/dev/null
  local before out
  before=$(cpu_ticks)
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $1" "$URL")
  awk -v ticks=$(($(cpu_ticks) - before)) -v tick_us="$TICK_US" '
       /requests in/ {n = $1}
       /^Requests\/sec:/ {rps = $2}
       $1 == "99%" {v = $2; ms = v ~ /us$/ ? v / 1000 : v ~ /ms$/ ? v + 0 : v * 1000}
       END {printf "%.0f %.2f %.2f\n", rps, ms, ticks * tick_us / n}' <<<"$out"
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
plain_rps="" plain_p99="" plain_cpu="" ruled_rps="" ruled_p99="" ruled_cpu=""
redirected_rps="" redirected_p99="" redirected_cpu=""
for ((r = 0; r < ROUNDS; r++)); do
  read -r rps p99 cpu < <(measure plain.localhost)
  plain_rps+="$rps " plain_p99+="$p99 " plain_cpu+="$cpu "
  read -r rps p99 cpu < <(measure redirected.localhost)
  redirected_rps+="$rps " redirected_p99+="$p99 " redirected_cpu+="$cpu "
  read -r rps p99 cpu < <(measure ruled.localhost)
  ruled_rps+="$rps " ruled_p99+="$p99 " ruled_cpu+="$cpu "
done
p_rps=$(median <<<"$plain_rps") r_rps=$(median <<<"$ruled_rps") d_rps=$(median <<<"$redirected_rps")
p_cpu=$(median <<<"$plain_cpu") r_cpu=$(median <<<"$ruled_cpu") d_cpu=$(median <<<"$redirected_cpu")
pct() { python3 -c "print(f'{($2 - $1) / $1 * 100:+.1f}%')"; }
echo "rules_bench: cache hits of a 1 KiB file, $CONNS connections, median of $ROUNDS runs of ${DURATION}s"
echo "| site | rules | req/s | p99 | vs none | proxy CPU per request | vs none |"
echo "|---|---|---|---|---|---|---|"
echo "| plain | none | $p_rps | $(median <<<"$plain_p99") ms | - | $p_cpu us | - |"
echo "| redirected | 100 static + 20 dynamic redirects | $d_rps | $(median <<<"$redirected_p99") ms | $(pct "$p_rps" "$d_rps") | $d_cpu us | $(pct "$p_cpu" "$d_cpu") |"
echo "| ruled | 100 static + 20 dynamic redirects, 3 header rules | $r_rps | $(median <<<"$ruled_p99") ms | $(pct "$p_rps" "$r_rps") | $r_cpu us | $(pct "$p_cpu" "$r_cpu") |"
