#!/usr/bin/env bash
# Runs the whole platform on this machine with the embedded defaults: set-up (idempotent), a Release
# build of the three services and deployctl, then Redis (own data directory, AOF on, a password
# kept in the data directory), the api-server, one
# build-runner worker (process launcher, bubblewrap sandbox) and the s3-reverse-proxy over the local
# file store. Ctrl-C (or SIGTERM) stops everything: the services first, then Redis.
#
# Usage: deploy/local/run.sh [--s3]
#   --s3   use a local s3rver instead of the file store
# Environment: DATA_DIR (default .data in the checkout), API_LISTEN (127.0.0.1:9000),
#              PROXY_LISTEN (127.0.0.1:8000), ADMIN_LISTEN (the proxy's port + 1; port 0 with
#              it), a port 0 in these: any free one, read from the JSON "listening" log line
#              (LOG_FORMAT=json needed),
#              BASE_DOMAIN (localhost), WORKER_DRAIN_S (5),
#              DP_BIN_DIR (use the binaries of this build tree, services/<name>/<name>, and
#              skip the set-up and the build: the e2e tests and benchmarks), any service setting.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
use_s3=0
for arg in "$@"; do
  case "$arg" in
    --s3) use_s3=1 ;;
    -h | --help)
      sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "run.sh: unknown option '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

if [[ -n ${DP_BIN_DIR:-} ]]; then
  build_dir="$(cd "$DP_BIN_DIR" && pwd)"
  for name in api-server build-runner s3-reverse-proxy; do
    if [[ ! -x $build_dir/services/$name/$name ]]; then
      echo "run.sh: DP_BIN_DIR: $build_dir/services/$name/$name is missing" >&2
      exit 2
    fi
  done
else
  "$repo_root/deploy/setup.sh"
  build_dir="$repo_root/build/release"
  export CCACHE_BASEDIR="$repo_root" CCACHE_NOHASHDIR=1
  cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_TESTS=ON \
    -DDP_BUILD_BENCH=OFF >/dev/null
  cmake --build "$build_dir" --target api-server build-runner s3-reverse-proxy deployctl
fi
deployctl="$build_dir/services/deployctl/deployctl"

data_dir="${DATA_DIR:-$repo_root/.data}"
mkdir -p "$data_dir/redis" "$data_dir/storage" "$data_dir/logs"

# A free loopback port for Redis (the services' ports are settings with fixed defaults).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Every child runs in its own session (setsid), so a Ctrl-C reaches only this script, which stops
# them in order: the services first (the worker hands its running builds back to the queue, which
# needs Redis), then Redis and s3rver. A child that outlives its grace period is killed.
export WORKER_DRAIN_S="${WORKER_DRAIN_S:-5}"
infra_pids=()
service_pids=()
stop_group() {
  local grace=$1 pid
  shift
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq $((grace * 10))); do
    local alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null && echo "run.sh: killing $pid (no exit after ${grace} s)" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
stop_all() {
  trap - INT TERM EXIT
  echo
  echo "run.sh: stopping"
  ((${#service_pids[@]})) && stop_group $((WORKER_DRAIN_S + 20)) "${service_pids[@]}"
  ((${#infra_pids[@]})) && stop_group 10 "${infra_pids[@]}"
  echo "run.sh: stopped"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Redis wants a password: every process of this machine (any user's) can reach a loopback port,
# and Redis holds the platform (queue, aliases, logs). Made once and kept in the data directory
# (0600, like the API token); handed to redis-server in a config file and to redis-cli in
# REDISCLI_AUTH, never on a command line that ps shows. The services get it in REDIS_URL and log
# the URL redacted.
redis_password_file="$data_dir/redis-password"
[[ -s $redis_password_file ]] ||
  (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$redis_password_file")
redis_password="$(cat "$redis_password_file")"
redis_conf="$data_dir/redis.conf"
(umask 077 && printf 'requirepass %s\n' "$redis_password" >"$redis_conf")
chmod 600 "$redis_password_file" "$redis_conf"
redis_port="$(free_port)"
setsid redis-server "$redis_conf" --port "$redis_port" --bind 127.0.0.1 --dir "$data_dir/redis" \
  --appendonly yes --save "" --daemonize no >"$data_dir/logs/redis.log" 2>&1 &
redis_pid=$!
infra_pids+=("$redis_pid")
# Up when INFO answers with its pid: a PONG could come from another Redis that took the port
# between free_port and the bind (this one then exits).
redis_up=0
for _ in $(seq 50); do
  REDISCLI_AUTH="$redis_password" redis-cli -p "$redis_port" info server 2>/dev/null | tr -d '\r' |
    grep -qx "process_id:$redis_pid" && redis_up=1 && break
  kill -0 "$redis_pid" 2>/dev/null || break
  sleep 0.1
done
if ((!redis_up)); then
  echo "run.sh: redis-server did not answer on port $redis_port within 5 s; see $data_dir/logs/redis.log" >&2
  exit 1
fi

export REDIS_URL="redis://:$redis_password@127.0.0.1:$redis_port"
export BASE_DOMAIN="${BASE_DOMAIN:-localhost}"
export API_LISTEN="${API_LISTEN:-127.0.0.1:9000}"
export PROXY_LISTEN="${PROXY_LISTEN:-127.0.0.1:8000}"
# The proxy's /healthz and /metrics listen next to it, so that two platforms do not collide.
if [[ ${PROXY_LISTEN##*:} == 0 ]]; then
  export ADMIN_LISTEN="${ADMIN_LISTEN:-${PROXY_LISTEN%:*}:0}"
else
  export ADMIN_LISTEN="${ADMIN_LISTEN:-${PROXY_LISTEN%:*}:$((${PROXY_LISTEN##*:} + 1))}"
fi
export ALLOWED_GIT_PROTOCOLS="${ALLOWED_GIT_PROTOCOLS:-https,file}"
if ((use_s3)); then
  s3_port="$(free_port)"
  mkdir -p "$data_dir/s3rver"
  setsid "$repo_root/node_modules/.bin/s3rver" --directory "$data_dir/s3rver" --port "$s3_port" \
    --address 127.0.0.1 --configure-bucket deployments --silent >"$data_dir/logs/s3rver.log" 2>&1 &
  infra_pids+=($!)
  export STORAGE_URL="s3://deployments?endpoint=http://127.0.0.1:$s3_port&region=us-east-1&path_style=true"
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
  # The build cache's archives are kept on this machine too: a build does not download them.
  export BUILD_CACHE_DIR="${BUILD_CACHE_DIR:-$data_dir/build-cache}"
else
  export STORAGE_URL="file://$data_dir/storage"
fi
# On a loopback address the API serves this machine's clients without a token (local mode). Bound
# anywhere else it requires the token (kept in the data directory, the same on every run).
token_file="$data_dir/api-token"
[[ -s $token_file ]] || (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")
# The platform key (32 bytes, hex) seals certificate private keys in Redis: the certificate
# issuer and the proxy share it.
key_file="$data_dir/platform-key"
[[ -s $key_file ]] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$key_file")
export PLATFORM_KEY="${PLATFORM_KEY:-$(cat "$key_file")}"
case "${API_LISTEN%:*}" in
  127.* | localhost | "[::1]") token_note="not needed from this machine: the API listens on loopback only" ;;
  *)
    export API_TOKENS="${API_TOKENS:-$(cat "$token_file")}"
    token_note="required: Authorization: Bearer <token>, or DEPLOYCTL_TOKEN for deployctl"
    ;;
esac

# host:port of a service's `field` (listen, admin) from its JSON "listening" log line: with port 0
# in a *_LISTEN setting, the one it bound. Fails if the service exits first or says nothing in 10 s.
bound_address() {
  local log=$1 field=$2 pid=$3 address
  for _ in $(seq 100); do
    address="$(python3 - "$log" "$field" <<'PY'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if isinstance(entry, dict) and str(entry.get("msg", "")).endswith(" listening"):
        print(entry.get(sys.argv[2], ""))
        break
PY
)"
    [[ -n $address ]] && echo "$address" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "run.sh: no $field address in $log (a port 0 needs LOG_FORMAT=json)" >&2
  return 1
}

# The proxy first: the site URLs the API hands out name its port (SITE_PORT).
setsid "$build_dir/services/s3-reverse-proxy/s3-reverse-proxy" >"$data_dir/logs/proxy.log" 2>&1 &
service_pids+=($!)
if [[ ${PROXY_LISTEN##*:} == 0 || ${ADMIN_LISTEN##*:} == 0 ]]; then
  PROXY_LISTEN="$(bound_address "$data_dir/logs/proxy.log" listen $!)"
  ADMIN_LISTEN="$(bound_address "$data_dir/logs/proxy.log" admin $!)"
fi
export SITE_PORT="${SITE_PORT:-${PROXY_LISTEN##*:}}"
setsid "$build_dir/services/api-server/api-server" >"$data_dir/logs/api-server.log" 2>&1 &
service_pids+=($!)
if [[ ${API_LISTEN##*:} == 0 ]]; then
  API_LISTEN="$(bound_address "$data_dir/logs/api-server.log" listen $!)"
fi
setsid "$build_dir/services/build-runner/build-runner" worker >"$data_dir/logs/worker.log" 2>&1 &
service_pids+=($!)

# The banner only once both listeners answer; a service that exits first stops the platform.
http_up() { curl -sf -o /dev/null --max-time 1 "http://$1/healthz"; }
for _ in $(seq 100); do
  http_up "$API_LISTEN" && http_up "$ADMIN_LISTEN" && break
  for pid in "${service_pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run.sh: a service exited while starting; see $data_dir/logs" >&2
      exit 1
    fi
  done
  sleep 0.1
done

api_host="${API_LISTEN/0.0.0.0/127.0.0.1}"
cat <<INFO

The platform is running (logs in $data_dir/logs):
  dashboard   http://$api_host/
  API token   $(cat "$token_file") ($token_note)
  sites       http://<project>.$BASE_DOMAIN:${PROXY_LISTEN##*:}/
  storage     $STORAGE_URL

Deploy a directory or a git repository with the CLI (it follows the build and prints the URL):
  export DEPLOYCTL_API_URL=http://$api_host
  $deployctl deploy ./my-site --project my-site --follow
  $deployctl deploy https://github.com/<you>/<repo>.git --follow
or with curl:
  curl -X POST http://$api_host/v1/deployments -H 'content-type: application/json' \\
       -d '{"git_url":"https://github.com/<you>/<repo>.git","project":"my-site"}'

Ctrl-C stops everything.
INFO
wait -n "${infra_pids[@]}" "${service_pids[@]}" || true
echo "run.sh: a service stopped; see $data_dir/logs" >&2
exit 1
