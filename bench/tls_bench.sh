#!/usr/bin/env bash
# tls_bench: HTTPS through the s3-reverse-proxy against nginx with the same certificate, one
# table:
#   (a) keep-alive: requests per second over established TLS connections (1 KiB file);
#   (b) new connections: every request on a new connection (Connection: close), so each is a
#       full TLS handshake (wrk does not resume sessions): handshakes per second;
#   (c) for scale, plain HTTP keep-alive, nginx's and the proxy's (what TLS costs on top).
# BASELINE_BIN=<another s3-reverse-proxy binary> adds its rows to each scenario, measured in the
# same turns: a change's before and after in one run.
# Both servers: one worker / one thread on SERVER_CPU, wrk on LOAD_CPU; the same P-256 ECDSA
# certificate for "localhost", TLS 1.2/1.3 with the same cipher list (wrk negotiates TLS 1.3,
# X25519). The servers take turns, ROUNDS times; each row is the median.
# The proxy serves the site from the local file store, "localhost" being a custom domain.
# Needs a Release build of s3-reverse-proxy (BUILD, default build/release), redis-server,
# redis-cli, nginx (nginx-light), wrk, openssl (deploy/setup.sh --bench).
# Where the rates come from (README "Benchmarks", 2026-12-07): per keep-alive request over TLS
# the proxy makes 3 system calls (a recv that finds nothing, the recv, the send) and nginx 2 for
# the connection plus about 5 for the file (open, stat, read, close); per full handshake OpenSSL takes
# 2.66 million instructions in the proxy (one session ticket) and 2.87 million in nginx (two).
# On a machine shared with other work the load moves every row; compare rows of one run.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
PROXY_BIN=${PROXY_BIN:-$BUILD/services/s3-reverse-proxy/s3-reverse-proxy}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

for tool in redis-server redis-cli nginx wrk openssl curl sha256sum taskset python3; do
  command -v "$tool" >/dev/null || { echo "tls_bench: $tool is missing (deploy/setup.sh --bench)" >&2; exit 2; }
done
[[ -z ${BASELINE_BIN:-} || -x $BASELINE_BIN ]] || {
  echo "tls_bench: BASELINE_BIN $BASELINE_BIN is not an executable" >&2
  exit 2
}
[[ -x $PROXY_BIN ]] || {
  echo "tls_bench: $PROXY_BIN is missing; build it: cmake -S $ROOT -B $BUILD -G Ninja" \
    "-DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=OFF && ninja -C $BUILD s3-reverse-proxy" >&2
  exit 2
}

BENCH=tls_bench
# shellcheck source=nginx_peer.sh
source "$ROOT/bench/nginx_peer.sh"

# The certificate both servers present.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost 2>/dev/null
chmod 644 "$WORK/key.pem"

# The site: the same bytes for nginx (from disk) and the proxy (its file store).
ID=01jh5k7q3x9m2c8r4t6v0w1y3z
mkdir -p "$WORK/www" "$WORK/store/__outputs/$ID"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
echo '<!doctype html><h1>bench</h1>' >"$WORK/www/index.html"
manifest="{\"v\":1,\"deployment_id\":\"$ID\",\"created_at\":1764000009000,\"mode\":\"static\",\"files\":{"
sep=""
for f in index.html 1k.bin; do
  type=application/octet-stream
  [[ $f == *.html ]] && type="text/html; charset=utf-8"
  cp "$WORK/www/$f" "$WORK/store/__outputs/$ID/$f"
  manifest+="$sep\"$f\":{\"size\":$(stat -c %s "$WORK/www/$f"),\"sha256\":\"$(sha256sum "$WORK/www/$f" | cut -d' ' -f1)\",\"content_type\":\"$type\",\"cache_control\":\"public, max-age=60\"}"
  sep=","
done
echo "$manifest}}" >"$WORK/store/__outputs/$ID/.deployment.json"

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT"
redis-cli -p "$REDIS_PORT" SET dp:alias:site "$ID" >/dev/null
redis-cli -p "$REDIS_PORT" SET dp:domain:localhost site >/dev/null

# start_proxy <binary>: one proxy serving HTTPS (with a certificate for localhost it redirects
# plain HTTP) and a second one without TLS for (c); sets TLS_PORT and PLAIN_PORT.
start_proxy() {
  TLS_PORT=$(free_port)
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT STORAGE_URL="file://$WORK/store" \
    PROXY_LISTEN=127.0.0.1:$(free_port) PROXY_TLS_LISTEN=127.0.0.1:$TLS_PORT \
    PROXY_TLS_CERT_FILE="$WORK/cert.pem" PROXY_TLS_KEY_FILE="$WORK/key.pem" \
    ADMIN_LISTEN=127.0.0.1:0 BASE_DOMAIN=bench.test ACCESS_LOG=false LOG_LEVEL=warn \
    taskset -c "$SERVER_CPU" "$1" >>"$WORK/proxy.log" 2>&1 &
  PIDS+=($!)
  wait_port "$TLS_PORT"
  PLAIN_PORT=$(free_port)
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT STORAGE_URL="file://$WORK/store" \
    PROXY_LISTEN=127.0.0.1:$PLAIN_PORT ADMIN_LISTEN=127.0.0.1:0 BASE_DOMAIN=bench.test \
    ACCESS_LOG=false LOG_LEVEL=warn taskset -c "$SERVER_CPU" "$1" >>"$WORK/plain.log" 2>&1 &
  PIDS+=($!)
  wait_port "$PLAIN_PORT"
}
start_proxy "$PROXY_BIN"
PROXY_TLS_PORT=$TLS_PORT
PROXY_PLAIN_PORT=$PLAIN_PORT
if [[ -n ${BASELINE_BIN:-} ]]; then
  start_proxy "$BASELINE_BIN"
  BASE_TLS_PORT=$TLS_PORT
  BASE_PLAIN_PORT=$PLAIN_PORT
fi

NGINX_PORT=$(free_port)
NGINX_PLAIN_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx;
  scgi_temp_path $WORK/nginx;
  types { text/html html; application/octet-stream bin; }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    listen 127.0.0.1:$NGINX_PLAIN_PORT;
    server_name localhost;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers $CIPHERS;
    ssl_session_cache shared:SSL:10m;
    root $WORK/www;
    etag on;
  }
}
CONF
taskset -c "$SERVER_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
wait_port "$NGINX_PORT"
wait_port "$NGINX_PLAIN_PORT"

for url in "https://localhost:$PROXY_TLS_PORT/1k.bin" "https://localhost:$NGINX_PORT/1k.bin"; do
  curl -sf --cacert "$WORK/cert.pem" -o /dev/null "$url" || { echo "tls_bench: $url fails" >&2; exit 1; }
done

# measure <url> [header]: one wrk run after a warm-up; prints "<req/s> <p99 ms> <errors>".
measure() {
  local -a extra=()
  [[ -n ${2:-} ]] && extra=(-H "$2")
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "${extra[@]}" "$1" >/dev/null
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${extra[@]}" "$1" |
    awk '/^Requests\/sec:/ {rps = $2}
         $1 == "99%" {v = $2; ms = v ~ /us$/ ? v / 1000 : v ~ /ms$/ ? v + 0 : v * 1000}
         /Non-2xx or 3xx responses:/ {err = err $5 " non-2xx "}
         /Socket errors/ {err = err "socket errors: " $0}
         END {printf "%.0f %.2f %s\n", rps, ms, err}'
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

ROWS=()
# take_turns <label> <header> <server|url>...: ROUNDS rounds, each server once per round.
take_turns() {
  local label=$1 header=$2 i r rps p99 errors
  shift 2
  local -a all_rps all_p99 all_err
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 1; i <= $#; i++)); do
      IFS='|' read -r _ url <<<"${!i}"
      read -r rps p99 errors < <(measure "$url" "$header")
      all_rps[i]+="$rps "
      all_p99[i]+="$p99 "
      all_err[i]+="${errors:-}"
    done
  done
  local base=""
  for ((i = 1; i <= $#; i++)); do
    IFS='|' read -r server _ <<<"${!i}"
    rps=$(median <<<"${all_rps[i]}")
    [[ -z $base ]] && base=$rps
    ROWS+=("$(printf '| %-26s | %-22s | %9s | %6s | %9s ms | %s' "$label" "$server" "$rps" \
      "$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2fx", a / b}')" \
      "$(median <<<"${all_p99[i]}")" "${all_err[i]}")")
  done
}

# The servers of a scenario: nginx, the proxy and, with BASELINE_BIN, the baseline proxy.
servers() {
  local scheme=$1 nginx_port=$2 proxy_port=$3 base_port=${4:-}
  echo "nginx 1 worker|$scheme://localhost:$nginx_port/1k.bin"
  echo "s3-reverse-proxy|$scheme://localhost:$proxy_port/1k.bin"
  [[ -n $base_port ]] && echo "proxy BASELINE_BIN|$scheme://localhost:$base_port/1k.bin"
  return 0
}
mapfile -t TLS_SERVERS < <(servers https "$NGINX_PORT" "$PROXY_TLS_PORT" "${BASE_TLS_PORT:-}")
mapfile -t PLAIN_SERVERS < <(servers http "$NGINX_PLAIN_PORT" "$PROXY_PLAIN_PORT" \
  "${BASE_PLAIN_PORT:-}")
take_turns "(a) HTTPS keep-alive 1 KiB" "" "${TLS_SERVERS[@]}"
take_turns "(b) new TLS connections" "Connection: close" "${TLS_SERVERS[@]}"
take_turns "(c) plain HTTP keep-alive" "" "${PLAIN_SERVERS[@]}"

echo
echo "tls_bench: $(uptime | sed 's/.*load/load/')"
echo "tls_bench: wrk -t1 -c$CONNS -d${DURATION}s; server on cpu $SERVER_CPU, wrk on cpu $LOAD_CPU;" \
  "median of $ROUNDS turns; x: against the first row of the scenario; (b): req/s = handshakes/s"
echo "| scenario                   | server                 |     req/s |      x |       p99 | errors"
echo "|----------------------------|------------------------|-----------|--------|-----------|-------"
printf '%s\n' "${ROWS[@]}"
