#!/usr/bin/env bash
# docker-compose.yml end to end, with the commands of the README's container section, on a Docker
# Engine of the test's own (tests/harness/docker-engine.sh, ports published on 127.0.0.1 through
# the userland proxy) and Debian's docker-compose 1.29 (or COMPOSE="docker compose").
#   1. a clean copy of the tree (its tracked and unignored files, as a clone has them);
#   2. deploy/docker/local-images.sh (redis and s3rver), .env by deploy/docker/compose-env.sh
#      (generated secrets), `build`, then ports and `up -d --build` (cold: both timed); Redis
#      refuses a client without its password, which no process on the host has on its command
#      line;
#   3. a directory uploaded to the API's published port is built by a build container the worker
#      starts, and the proxy's published port serves it (Host: the deployment's alias);
#   4. the copy becomes a working tree (a build tree, node_modules, an edited README and test),
#      `down`, `up -d --build` again (warm: timed): .dockerignore kept all that out of the build
#      context, so the images are the same ones; the project, the deployment and the site are
#      still there (volumes);
#   5. the images' sizes and users, the two times; `down --volumes` and the engine stopped.
# Usage: tests/compose/compose-stack.sh DIR   (DIR: short, it holds dockerd's socket)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${1:?usage: compose-stack.sh DIR}"
engine="$repo_root/tests/harness/docker-engine.sh"
compose=(${COMPOSE:-docker-compose} -f docker-compose.yml -f deploy/docker/compose.local.yml)

log() { echo "compose-stack: $*"; }
fail() {
  echo "compose-stack: FAIL: $*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  if [[ -S $dir/docker.sock && -d $dir/src ]]; then
    if ((rc != 0)); then
      (cd "$dir/src" && "${compose[@]}" ps && "${compose[@]}" logs --no-color --tail=40) >&2 || true
      docker ps -a >&2 || true
      echo "compose-stack: the end of dockerd's log:" >&2
      tail -30 "$dir/dockerd.log" >&2 || true
    fi
    (cd "$dir/src" && "${compose[@]}" down --volumes --remove-orphans >/dev/null 2>&1) || true
  fi
  "$engine" stop "$dir" || true
  exit "$rc"
}
trap cleanup EXIT

command -v "${compose[0]}" >/dev/null 2>&1 ||
  { echo "compose-stack: SKIP: no ${compose[0]} (deploy/setup.sh --containers)"; exit 0; }
DP_DOCKER_PUBLISH=1 "$engine" start "$dir"
if [[ -f $dir/skip ]]; then
  echo "compose-stack: SKIP: $(cat "$dir/skip")"
  trap - EXIT
  "$engine" stop "$dir" || true
  exit 0
fi
export DOCKER_HOST="unix://$dir/docker.sock"

# 1. A clean copy, as a clone has it (no build trees, no node_modules in the build context).
mkdir -p "$dir/src"
(cd "$repo_root" && git ls-files -z -co --exclude-standard | xargs -0 tar -c --no-recursion) |
  tar -x -C "$dir/src"
cd "$dir/src"

# 2. The README's commands: .env with generated secrets (and ports of this test's own on
# 127.0.0.1), the socket's group, up.
deploy/docker/local-images.sh
deploy/docker/compose-env.sh
[[ $(stat -c %a .env) == 600 ]] || fail ".env is mode $(stat -c %a .env), not 600"
sed -i -e "s/^PUBLISH_ADDRESS=.*/PUBLISH_ADDRESS=127.0.0.1/" .env
token="$(sed -n 's/^API_TOKENS=//p' .env)"
redis_password="$(sed -n 's/^REDIS_PASSWORD=//p' .env)"
platform_key="$(sed -n 's/^PLATFORM_KEY=//p' .env)"
[[ ${#token} -ge 32 && ${#redis_password} -ge 32 && $platform_key =~ ^[0-9a-f]{64}$ ]] ||
  fail "compose-env.sh left a secret empty"
echo "DOCKER_SOCKET_HOST=$dir/docker.sock" >>.env
export DOCKER_GID="$(stat -c %g "$dir/docker.sock")"

# compose_log LABEL ARGS...: the compose command, its output in $dir/LABEL.log, timed; prints the
# seconds.
compose_log() {
  local label="$1" started=$SECONDS
  shift
  "${compose[@]}" "$@" >"$dir/$label.log" 2>&1 || {
    tail -40 "$dir/$label.log" >&2
    fail "$* ($label) failed"
  }
  echo $((SECONDS - started))
}

# The images first (what `up --build` would build), and only then the ports: a port that was free
# when picked is published by `up` minutes later, after the cold build, and by then any connect()
# on this machine may have taken it as its ephemeral port ("address already in use").
built="$(compose_log build-cold build)"
read -r api_port proxy_port admin_port tls_port < <(python3 -c '
import socket
held = [socket.socket() for _ in range(4)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))')
sed -i -e "s/^API_PORT=.*/API_PORT=$api_port/" -e "s/^PROXY_PORT=.*/PROXY_PORT=$proxy_port/" \
  -e "s/^PROXY_TLS_PORT=.*/PROXY_TLS_PORT=$tls_port/" .env
echo "PROXY_ADMIN_PORT=$admin_port" >>.env
api="http://127.0.0.1:$api_port"

# curl_json METHOD PATH [curl args...]: the body; fails on a transport error.
api_call() {
  local method="$1" path="$2"
  shift 2
  curl -sS --max-time 60 -X "$method" -H "Authorization: Bearer $token" "$@" "$api$path"
}
wait_ready() { # the API's /readyz answers 200
  for _ in $(seq 600); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$api/readyz") == 200 ]] && return 0
    sleep 0.5
  done
  fail "the api-server's /readyz never answered 200"
}
field() { python3 -c 'import json,sys; v=json.load(sys.stdin); [v:=v[k] for k in sys.argv[1:]]; print(v)' "$@"; }
site() { # the site's page through the proxy's published port
  curl -sS --max-time 30 -H "Host: $host" "http://127.0.0.1:$proxy_port/"
}

cold="$(compose_log up-cold up -d --build)"
cold=$((built + cold))
log "cold up -d --build: $cold s (the build $built s)"
wait_ready

# Redis wants its password (redis-cli exits 0 on an error reply: its answer is what counts), and
# the password is on no command line that ps shows.
redis_container="$("${compose[@]}" ps -q redis)"
answer="$(docker exec "$redis_container" env -u REDISCLI_AUTH redis-cli ping 2>&1 || true)"
[[ $answer == *NOAUTH* ]] || fail "redis answered '$answer' to a client without the password"
[[ $(docker exec "$redis_container" redis-cli ping) == PONG ]] ||
  fail "redis refused its own password"
if pgrep -a -f -- "$redis_password" >&2; then
  fail "the Redis password is on the command line of the processes above"
fi
log "redis requires its password"

# 3. A directory deployed as the CLI does it (a tar.gz upload); its build runs in a build container.
mkdir -p "$dir/site"
cat >"$dir/site/package.json" <<'JSON'
{"name":"app","version":"1.0.0","scripts":{"build":"node build.js"}}
JSON
cat >"$dir/site/build.js" <<'JS'
const fs = require('fs');
fs.mkdirSync('dist');
fs.writeFileSync('dist/index.html', '<h1>built by compose</h1>\n');
JS
tar -czf "$dir/site.tar.gz" -C "$dir/site" .
created="$(api_call POST '/v1/deployments?project=composed' -H 'Content-Type: application/gzip' \
  --data-binary "@$dir/site.tar.gz")"
id="$(field id <<<"$created")" || fail "the upload was not accepted: $created"
log "deployment $id queued"
status=
for _ in $(seq 1200); do
  status="$(api_call GET "/v1/deployments/$id" | field status)"
  [[ $status == ready || $status == failed || $status == canceled ]] && break
  sleep 0.5
done
[[ $status == ready ]] || {
  api_call GET "/v1/deployments/$id/logs" >&2 || true
  fail "deployment $id is '$status', not ready"
}
# Its own alias, <project>-<short id>.<BASE_DOMAIN> (the API answers with the ports of .env).
url="$(api_call GET "/v1/deployments/$id" | field url)"
host="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).hostname)' "$url")"
[[ -n $host && $host != None ]] || fail "deployment $id has no url"
page="$(site)"
[[ $page == *'built by compose'* ]] || fail "the proxy served '$page' for $host"
log "$host served through 127.0.0.1:$proxy_port"
# HTTPS is published: the proxy answers the handshake, and fails it, as no certificate covers the
# alias (curl: 35 is a TLS failure, 7 would be a closed port).
https_code=0
curl -sS --max-time 10 -o /dev/null --resolve "$host:$tls_port:127.0.0.1" \
  "https://$host:$tls_port/" 2>"$dir/https.err" || https_code=$?
[[ $https_code == 35 ]] || fail "https on 127.0.0.1:$tls_port: curl exit $https_code, $(cat "$dir/https.err")"
log "the proxy's HTTPS port is published (a name without a certificate fails its handshake)"

# 4. The copy as a working tree has it: a build tree, node_modules, edits to docs and tests. None
# of it is in the build context (.dockerignore), so the warm build makes the same images. Then
# down and up again: Redis's AOF and the bucket live in volumes.
platform_images=(deploy-platform/api-server:latest deploy-platform/s3-reverse-proxy:latest
  deploy-platform/build-runner:latest)
images_before="$(docker image inspect -f '{{.Id}}' "${platform_images[@]}")"
mkdir -p build/asan node_modules/left-over
head -c 1000000 /dev/urandom >build/asan/libdp_core.a
echo 'module.exports = 1;' >node_modules/left-over/index.js
echo "edited by compose-stack" >>README.md
echo "// edited by compose-stack" >>libs/core/test/config_test.cpp
"${compose[@]}" down >"$dir/down.log" 2>&1 || fail "down failed: $(tail -5 "$dir/down.log")"
[[ -z $(docker ps -q) ]] || fail "containers still run after down: $(docker ps)"
warm="$(compose_log up-warm up -d --build)"
log "warm up -d --build: $warm s"
context="$(grep -ho 'Sending build context to Docker daemon *[0-9.]*[kMG]*B' "$dir/up-warm.log" |
  awk '{ print $NF }' | sort -u | paste -sd, -)"
[[ $(docker image inspect -f '{{.Id}}' "${platform_images[@]}") == "$images_before" ]] ||
  fail "the warm up --build made new images (build context ${context:-?}): $(cat "$dir/up-warm.log")"
log "warm up --build kept the images (build context ${context:-?})"
wait_ready
[[ $(api_call GET /v1/projects/composed | field name) == composed ]] || fail "the project is gone"
[[ $(api_call GET "/v1/deployments/$id" | field status) == ready ]] || fail "the deployment is gone"
for _ in $(seq 120); do
  page="$(site || true)"
  [[ $page == *'built by compose'* ]] && break
  sleep 0.5
done
[[ $page == *'built by compose'* ]] || fail "after down and up the proxy served '$page'"
log "after down and up: the project, the deployment and the site are there"

# 5. What the README reports.
for image in api-server s3-reverse-proxy build-runner redis:local s3rver:local; do
  [[ $image == *:* ]] || image="$image:latest"
  docker image inspect -f "compose-stack: deploy-platform/$image {{.Size}} bytes, user {{.Config.User}}" \
    "deploy-platform/$image"
done
for image in api-server s3-reverse-proxy; do
  # No shell: the image is the binary, its libraries and the CA certificates.
  if out="$(docker run --rm --network none --entrypoint /bin/sh "deploy-platform/$image:latest" \
    -c true 2>&1)"; then
    fail "deploy-platform/$image has a shell"
  fi
  [[ $out == *'no such file'* || $out == *'not found'* ]] ||
    fail "deploy-platform/$image: /bin/sh failed for another reason: $out"
done
log "PASS (cold $cold s, warm $warm s, context ${context:-?}, ${compose[0]} $("${compose[0]}" version --short 2>/dev/null || true))"
