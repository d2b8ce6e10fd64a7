#!/usr/bin/env bash
# proxy_bench: the s3-reverse-proxy against two references, printed as one table.
#   (a) cache hits, 1 KiB and 100 KiB files: the proxy (S3 backend, files in its LRU cache; and
#       the file store, small files from memory, larger ones with sendfile) vs nginx (one worker,
#       sendfile, the same files from disk);
#   (b) cache misses through s3rver (PROXY_CACHE_MB=0, every request streams from S3) vs the
#       original design's express + http-proxy proxy (bench/anchors/),
#       and s3rver asked directly, the ceiling for any proxy in front of it;
#       the same misses against an origin with no cost of its own (nginx serving the bucket's
#       files at their S3 paths, answering the proxy's signed GETs), which shows what each proxy
#       itself can do per miss, where s3rver's ceiling hides it;
#   (c) the proxy's resident memory (VmRSS at the end of each run, VmHWM peak).
# The server runs on SERVER_CPU, wrk (keep-alive) and s3rver on LOAD_CPU. The (a) servers take
# turns, ROUNDS times, and each row is the median: on shared cores the machine's speed drifts
# between runs by more than the differences being measured.
# Needs a Release build of s3-reverse-proxy (BUILD, default build/release), redis-server, nginx,
# wrk, node_modules (npm ci at the root and in bench/anchors).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
PROXY_BIN=${PROXY_BIN:-$BUILD/services/s3-reverse-proxy/s3-reverse-proxy}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

for tool in redis-server redis-cli nginx wrk node curl sha256sum taskset; do
  command -v "$tool" >/dev/null || { echo "proxy_bench: $tool is missing" >&2; exit 2; }
done
[[ -x $PROXY_BIN ]] || {
  echo "proxy_bench: $PROXY_BIN is missing; build it: cmake -S $ROOT -B $BUILD -G Ninja" \
    "-DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=OFF && ninja -C $BUILD s3-reverse-proxy" >&2
  exit 2
}
[[ -d $ROOT/bench/anchors/node_modules ]] || (cd "$ROOT/bench/anchors" && npm ci --no-audit --no-fund >/dev/null)

BENCH=proxy_bench
# shellcheck source=nginx_peer.sh
source "$ROOT/bench/nginx_peer.sh"

# The site: the same bytes for nginx (from disk) and for the proxies (uploaded to s3rver).
ID=01jh5k7q3x9m2c8r4t6v0w1y3z
mkdir -p "$WORK/www"
head -c 1024 /dev/urandom >"$WORK/www/1k.bin"
head -c 102400 /dev/urandom >"$WORK/www/100k.bin"
echo '<!doctype html><h1>bench</h1>' >"$WORK/www/index.html"

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
S3_PORT=$(free_port)
taskset -c "$LOAD_CPU" "$ROOT/node_modules/.bin/s3rver" -d "$WORK/s3" -a 127.0.0.1 -p "$S3_PORT" \
  --configure-bucket bench >"$WORK/s3rver.log" 2>&1 &
PIDS+=($!)
wait_port "$REDIS_PORT"
wait_port "$S3_PORT"

manifest="{\"v\":1,\"deployment_id\":\"$ID\",\"created_at\":1764000009000,\"mode\":\"static\",\"files\":{"
sep=""
for f in index.html 1k.bin 100k.bin; do
  type=application/octet-stream
  [[ $f == *.html ]] && type="text/html; charset=utf-8"
  curl -sf -X PUT -H "Content-Type: $type" --data-binary "@$WORK/www/$f" \
    "http://127.0.0.1:$S3_PORT/bench/__outputs/$ID/$f" >/dev/null
  size=$(stat -c %s "$WORK/www/$f")
  sum=$(sha256sum "$WORK/www/$f" | cut -d' ' -f1)
  manifest+="$sep\"$f\":{\"size\":$size,\"sha256\":\"$sum\",\"content_type\":\"$type\",\"cache_control\":\"public, max-age=60\"}"
  sep=","
done
manifest+="}}"
curl -sf -X PUT --data-binary "$manifest" \
  "http://127.0.0.1:$S3_PORT/bench/__outputs/$ID/.deployment.json" >/dev/null
redis-cli -p "$REDIS_PORT" SET dp:alias:site "$ID" >/dev/null

# A second deployment of the site, for the promote latency.
ID2=01jh5k7q3x9m2c8r4t6v0w1y40
echo '<!doctype html><h1>next</h1>' >"$WORK/next.html"
curl -sf -X PUT -H "Content-Type: text/html; charset=utf-8" --data-binary "@$WORK/next.html" \
  "http://127.0.0.1:$S3_PORT/bench/__outputs/$ID2/index.html" >/dev/null
curl -sf -X PUT --data-binary "{\"v\":1,\"deployment_id\":\"$ID2\",\"created_at\":1764000009000,\"mode\":\"static\",\"files\":{\"index.html\":{\"size\":$(stat -c %s "$WORK/next.html"),\"sha256\":\"$(sha256sum "$WORK/next.html" | cut -d' ' -f1)\",\"content_type\":\"text/html; charset=utf-8\",\"cache_control\":\"\"}}}" \
  "http://127.0.0.1:$S3_PORT/bench/__outputs/$ID2/.deployment.json" >/dev/null

# promote_ms <rounds>: switches alias:site between the two deployments (SET + PUBLISH of its event,
# as dp::state::records::set_alias does) over one Redis connection, polling the proxy over one
# keep-alive connection until it serves the new deployment; prints the milliseconds per switch.
promote_ms() {
  python3 - "$REDIS_PORT" "$PROXY_PORT" "$ID" "$ID2" "$1" <<'PY'
import http.client, socket, sys, time
redis_port, proxy_port, a, b, rounds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
r = socket.create_connection(("127.0.0.1", redis_port))
def cmd(*args):
    r.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(x.encode()), x) for x in args)).encode())
    r.recv(4096)
h = http.client.HTTPConnection("127.0.0.1", proxy_port)
def body():
    h.request("GET", "/", headers={"Host": "site.localhost"})
    return h.getresponse().read()
out = []
for i in range(rounds):
    target, marker = (b, b"next") if i % 2 == 0 else (a, b"bench")
    body()  # the alias is cached before the switch
    t0 = time.perf_counter()
    cmd("SET", "dp:alias:site", target)
    cmd("PUBLISH", "dp:events:deployments", '{"v":1,"type":"alias","alias":"site","deployment_id":"%s","project":"site","ts_ms":0}' % target)
    while marker not in body():
        pass
    out.append("%.1f" % ((time.perf_counter() - t0) * 1000))
print(" ".join(out))
PY
}

start_proxy() {  # cache_mb [storage_url] -> sets PROXY_PORT, PROXY_PID
  PROXY_PORT=$(free_port)
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT \
    STORAGE_URL="${2:-s3://bench?endpoint=http://127.0.0.1:$S3_PORT&region=us-east-1&path_style=true}" \
    AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER PROXY_LISTEN=127.0.0.1:$PROXY_PORT \
    ADMIN_LISTEN=127.0.0.1:0 BASE_DOMAIN=localhost PROXY_CACHE_MB=$1 ACCESS_LOG=false \
    LOG_LEVEL=warn taskset -c "$SERVER_CPU" "$PROXY_BIN" >"$WORK/proxy-$1.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=($PROXY_PID)
  wait_port "$PROXY_PORT"
}

NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
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
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; etag on; }
}
EOF
taskset -c "$SERVER_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
PIDS+=($!)
wait_port "$NGINX_PORT"

ROWS=()
# measure <host> <url>: one wrk run after a warm-up (which fills the proxy's caches and the JIT of
# the node proxy); prints "<req/s> <p99 in ms> <errors>".
measure() {
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s -H "Host: $1" "$2" >/dev/null
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $1" "$2" |
    awk '/^Requests\/sec:/ {rps = $2}
         $1 == "99%" {v = $2; ms = v ~ /us$/ ? v / 1000 : v ~ /ms$/ ? v + 0 : v * 1000}
         /Non-2xx or 3xx responses:/ {err = err $5 " non-2xx "}
         /Socket errors/ {err = err "socket errors"}
         END {printf "%.0f %.2f %s\n", rps, ms, err}'
}
# row <label> <server> <req/s> <p99 ms> <errors> [pid]: a table row, with the pid's memory.
row() {
  local rss="-" hwm="-"
  if [[ -n ${6:-} ]]; then
    rss=$(awk '/^VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$6/status")
    hwm=$(awk '/^VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$6/status")
  fi
  ROWS+=("$(printf '| %-28s | %-22s | %9s | %8s | %-10s | %-10s | %s' "$1" "$2" "$3" "$4 ms" \
    "$rss" "$hwm" "$5")")
}
# run <label> <server> <host> <url> [pid]: one measured run, one row.
run() {
  local rps p99 errors
  read -r rps p99 errors < <(measure "$3" "$4")
  row "$1" "$2" "$rps" "$p99" "${errors:-}" "${5:-}"
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# take_turns <label> <server|host|url|pid>...: ROUNDS rounds in which each server runs once, in
# turn; one row per server with its median req/s and median p99.
take_turns() {
  local label=$1 i r rps p99 errors
  shift
  local -a all_rps all_p99 all_err
  for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 1; i <= $#; i++)); do
      IFS='|' read -r _ host url _ <<<"${!i}"
      read -r rps p99 errors < <(measure "$host" "$url")
      all_rps[i]+="$rps "
      all_p99[i]+="$p99 "
      all_err[i]+="${errors:-}"
    done
  done
  for ((i = 1; i <= $#; i++)); do
    IFS='|' read -r server _ _ pid <<<"${!i}"
    row "$label" "$server" "$(median <<<"${all_rps[i]}")" "$(median <<<"${all_p99[i]}")" \
      "${all_err[i]}" "$pid"
  done
}

start_proxy 256
HIT_PID=$PROXY_PID
HIT_PORT=$PROXY_PORT
# The same site in the local file store (the platform's default): small files from memory, larger
# ones with sendfile from the page cache, as nginx does.
mkdir -p "$WORK/store/__outputs/$ID"
cp "$WORK/www/"* "$WORK/store/__outputs/$ID/"
curl -sf "http://127.0.0.1:$S3_PORT/bench/__outputs/$ID/.deployment.json" \
  >"$WORK/store/__outputs/$ID/.deployment.json"
start_proxy 256 "file://$WORK/store"
FILE_PID=$PROXY_PID
FILE_PORT=$PROXY_PORT
for f in 1k 100k; do
  take_turns "(a) hit ${f/k/ KiB}" \
    "s3-reverse-proxy, S3|site.localhost|http://127.0.0.1:$HIT_PORT/$f.bin|$HIT_PID" \
    "s3-reverse-proxy, file|site.localhost|http://127.0.0.1:$FILE_PORT/$f.bin|$FILE_PID" \
    "nginx 1 worker|localhost|http://127.0.0.1:$NGINX_PORT/$f.bin|"
done
# (d) promote latency.
PROXY_PORT=$HIT_PORT
PROMOTE=$(promote_ms 10)
kill "$HIT_PID" "$FILE_PID"

# miss_rows <label> <origin>: the proxy without its cache, then the original design's proxy, both
# asking the S3 endpoint <origin> for every request.
miss_rows() {
  local label=$1 origin=$2 anchor_port anchor_pid
  start_proxy 0 "s3://bench?endpoint=$origin&region=us-east-1&path_style=true"
  run "$label" "s3-reverse-proxy" site.localhost "http://127.0.0.1:$PROXY_PORT/1k.bin" "$PROXY_PID"
  anchor_port=$(free_port)
  PORT=$anchor_port BASE_PATH=$origin/bench/__outputs \
    taskset -c "$SERVER_CPU" node "$ROOT/bench/anchors/s3-reverse-proxy.js" >>"$WORK/anchor.log" 2>&1 &
  anchor_pid=$!
  PIDS+=($anchor_pid)
  wait_port "$anchor_port"
  run "$label" "express + http-proxy" "$ID.localhost" "http://127.0.0.1:$anchor_port/1k.bin" "$anchor_pid"
  kill "$anchor_pid" "$PROXY_PID"
}

miss_rows "(b) miss 1 KiB via s3rver" "http://127.0.0.1:$S3_PORT"
# The ceiling of (b): s3rver itself, asked directly. No proxy in front of it can serve more misses.
run "(b) ceiling: no proxy" "s3rver alone" localhost "http://127.0.0.1:$S3_PORT/bench/__outputs/$ID/1k.bin"

# (b') The same misses against a fast origin: a second nginx, on the load core as s3rver was,
# serving the bucket's objects at their path-style S3 URLs. It ignores the signature; the proxy
# still signs every request and checks each object's length against the manifest.
ORIGIN_PORT=$(free_port)
mkdir -p "$WORK/origin/bench/__outputs/$ID" "$WORK/origin-nginx"
cp "$WORK/store/__outputs/$ID/"* "$WORK/store/__outputs/$ID/.deployment.json" \
  "$WORK/origin/bench/__outputs/$ID/"
sed -e "s|listen 127.0.0.1:$NGINX_PORT; root $WORK/www;|listen 127.0.0.1:$ORIGIN_PORT; root $WORK/origin;|" \
  -e "s|$WORK/nginx|$WORK/origin-nginx|g" "$WORK/nginx/nginx.conf" >"$WORK/origin-nginx/nginx.conf"
taskset -c "$LOAD_CPU" nginx -p "$WORK/origin-nginx" -c "$WORK/origin-nginx/nginx.conf" &
PIDS+=($!)
wait_port "$ORIGIN_PORT"
miss_rows "(b') miss 1 KiB via nginx" "http://127.0.0.1:$ORIGIN_PORT"
run "(b') ceiling: no proxy" "nginx origin alone" localhost "http://127.0.0.1:$ORIGIN_PORT/bench/__outputs/$ID/1k.bin"

echo
echo "proxy_bench: wrk -t1 -c$CONNS -d${DURATION}s keep-alive; server on cpu $SERVER_CPU, wrk and s3rver on cpu $LOAD_CPU; (a) rows: median of $ROUNDS turns"
echo "| scenario                     | server                 |     req/s |      p99 | RSS end    | RSS peak   | errors"
echo "|------------------------------|------------------------|-----------|----------|------------|------------|-------"
printf '%s\n' "${ROWS[@]}"
echo
echo "promote -> new deployment served, ms per switch (10 switches): $PROMOTE"
