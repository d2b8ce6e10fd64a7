#!/usr/bin/env bash
# A Docker Engine of the tests' own: dockerd with its data root, exec root, pid file and socket in
# one directory, no bridge and no iptables rules (tests use host networking or ports published
# on 127.0.0.1), the local base images loaded (deploy/docker/base-images.sh) and the build-runner
# image built from an already built binary (deploy/docker/Dockerfile, target build-runner-prebuilt).
#
# Usage: tests/harness/docker-engine.sh start DIR [BUILD_RUNNER_BINARY]
#        tests/harness/docker-engine.sh stop DIR
# Without BUILD_RUNNER_BINARY no build-runner image is made. DP_DOCKER_PUBLISH=1 turns on the
# userland proxy, which serves ports published on 127.0.0.1 (there are no iptables rules).
# start leaves DIR/docker.sock; when the engine cannot run here (no dockerd, not root, or dockerd
# does not come up) it writes the reason to DIR/skip and exits 0, so that the tests skip with it.
# start refuses a DIR whose dockerd still runs (another test run of the same build tree).
# stop kills dockerd and its containerd, unmounts what they left and removes DIR.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
test_image=deploy-platform-test/build-runner:asan

usage() {
  sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

skip() {
  echo "docker-engine.sh: $*" | tee "$dir/skip" >&2
  exit 0
}

# Unmounts everything below DIR, deepest first (overlay mounts, netns and shm of containers).
unmount_below() {
  local m
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
}

stop_engine() {
  local pid
  # The bridges of networks it made (compose's) outlive dockerd: remove its containers and
  # networks while it answers.
  if [[ -S $dir/docker.sock ]]; then
    export DOCKER_HOST="unix://$dir/docker.sock"
    timeout 60 docker ps -aq 2>/dev/null | xargs -r timeout 60 docker rm --force >/dev/null 2>&1 || true
    timeout 60 docker network prune --force >/dev/null 2>&1 || true
  fi
  if [[ -f $dir/dockerd.pid ]]; then
    pid="$(cat "$dir/dockerd.pid")"
    # TERM lets dockerd stop its containers and containerd; KILL after 30 s.
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # containerd and the shims of any container left are ours if their command line names DIR.
  local p
  for p in $(pgrep -f -- "$dir/exec/" || true); do
    kill -KILL "$p" 2>/dev/null || true
  done
  unmount_below "$dir"
}

cmd="${1:-}"
dir="${2:-}"
[[ -n $cmd && -n $dir ]] || usage

case "$cmd" in
  start)
    binary="${3:-}"
    # Starting over would delete the data root under a running engine (its images' layers among
    # it): refuse, loudly, when another run of this build tree still has its engine up here.
    if [[ -f $dir/dockerd.pid ]] && kill -0 "$(cat "$dir/dockerd.pid")" 2>/dev/null; then
      echo "docker-engine.sh: a dockerd (pid $(cat "$dir/dockerd.pid")) already runs in $dir:" \
        "another test run of this build tree? Let it end, or: $0 stop $dir" >&2
      exit 1
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    command -v dockerd >/dev/null 2>&1 ||
      skip "no dockerd (install it with deploy/setup.sh --containers)"
    ((EUID == 0)) || skip "dockerd needs root; the tests that need a Docker Engine are skipped"
    # A unix socket path is limited to 107 bytes.
    ((${#dir} < 90)) || skip "$dir is too long a path for dockerd's socket"

    started=$SECONDS
    setsid dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
      --host "unix://$dir/docker.sock" --bridge=none --iptables=false --ip-masq=false \
      --ip-forward=false --userland-proxy="$([[ ${DP_DOCKER_PUBLISH:-} == 1 ]] && echo true || echo false)" \
      --log-level=warn \
      >"$dir/dockerd.log" 2>&1 </dev/null &
    export DOCKER_HOST="unix://$dir/docker.sock"
    up=0
    for _ in $(seq 600); do
      if docker version >/dev/null 2>&1; then
        up=1
        break
      fi
      kill -0 $! 2>/dev/null || break
      sleep 0.2
    done
    if ((!up)); then
      tail -20 "$dir/dockerd.log" >&2 || true
      stop_engine
      skip "dockerd did not start (its log is above)"
    fi
    echo "docker-engine.sh: dockerd up in $((SECONDS - started)) s at $DOCKER_HOST"

    "$repo_root/deploy/docker/base-images.sh"
    if [[ -z $binary ]]; then
      echo "docker-engine.sh: ready in $((SECONDS - started)) s"
      exit 0
    fi

    # The build context: the binary and the shared libraries it needs beyond glibc's.
    context="$dir/context"
    mkdir -p "$context/prebuilt/bin" "$context/prebuilt/lib"
    cp "$binary" "$context/prebuilt/bin/build-runner"
    ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' |
      grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
      xargs -r cp -L -t "$context/prebuilt/lib"
    mapfile -t build_args < <("$repo_root/deploy/docker/base-images.sh" --print-build-args)
    DOCKER_BUILDKIT=0 docker build --quiet --network host "${build_args[@]}" \
      -f "$repo_root/deploy/docker/Dockerfile" --target build-runner-prebuilt \
      -t "$test_image" "$context" >/dev/null
    rm -rf "$context"
    echo "docker-engine.sh: ready in $((SECONDS - started)) s ($test_image built)"
    ;;
  stop)
    started=$SECONDS
    stop_engine
    stopped=$SECONDS
    rm -rf "$dir"
    echo "docker-engine.sh: stopped in $((stopped - started)) s, its files removed in" \
      "$((SECONDS - stopped)) s"
    ;;
  *) usage ;;
esac
