#!/usr/bin/env bash
# Installs everything the platform and its tests need: Debian packages, then the npm dev tools
# (s3rver, playwright-core) pinned by package-lock.json. Idempotent and quick when everything is
# present: apt-get runs only for what is missing, npm ci only when node_modules is older than the
# lockfile.
# It never starts a service: tests and deploy/local/run.sh start their own Redis on free ports.
#
# Usage: deploy/setup.sh [--bench] [--containers]
#   --bench        also install the benchmark peers (wrk, nginx-light)
#   --containers   also install a Docker Engine (docker.io), Debian's docker-compose (1.29) and
#                  debootstrap, for the docker launcher's tests and the images; dockerd is never
#                  started here: tests start their own (tests/harness/docker-engine.sh)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# What to install. Later work adds its packages to these lists (or a new option below).
packages=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libhiredis-dev libcurl4-openssl-dev libssl-dev libfmt-dev zlib1g-dev libgtest-dev googletest
  libbrotli-dev # the Brotli variants written at upload (libs/runner/src/compress.cpp)
  redis-server bubblewrap git curl ca-certificates python3 python3-yaml
  e2fsprogs # mkfs.ext4: a filesystem of BUILD_DISK_MB per build (libs/runner/src/work_fs.cpp)
  slirp4netns iproute2 # the build sandbox's egress network (BUILD_NETWORK=egress)
  zstd # the build cache's archives (tar --zstd; gzip without it)
  chromium # the dashboard's e2e test (driven by playwright-core from package.json)
  pebble # Let's Encrypt's test CA and its DNS stub: the ACME tests (dp::test::pebble)
  clang-14 libclang-rt-14-dev # libFuzzer: the site-rule parsers' fuzz targets (deploy/fuzz.sh)
)
bench_packages=(wrk nginx-light)
# docker.io brings dockerd, containerd and runc; debootstrap makes the base images
# (deploy/docker/base-images.sh), which need no registry.
container_packages=(docker.io docker-compose debootstrap)
# Packages whose maintainer scripts would start a system service we do not want running.
service_packages=(redis-server nginx-light docker.io)

for arg in "$@"; do
  case "$arg" in
    --bench) packages+=("${bench_packages[@]}") ;;
    --containers) packages+=("${container_packages[@]}") ;;
    -h | --help)
      sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "setup.sh: unknown option '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

# Node.js 20 comes with the machine as one package bundling npm; Debian's own npm conflicts with
# it, so install Debian's nodejs only where node is missing, and never Debian's npm.
if ! command -v node >/dev/null 2>&1; then
  packages+=(nodejs)
fi

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
  if ((EUID != 0)); then
    sudo=(sudo)
  else
    sudo=()
  fi
  echo "setup.sh: installing ${missing[*]}"

  # A policy-rc.d that answers 101 forbids maintainer scripts to start services during the
  # install. Ours is temporary; an administrator's existing one is left alone.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# written by deploy/setup.sh for the duration of apt-get install\nexit 101\n' |
      "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
  fi
  cleanup_policy() {
    if ((own_policy)); then
      "${sudo[@]}" rm -f "$policy"
    fi
  }
  trap cleanup_policy EXIT

  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"

  # Belt and braces: if a pre-existing policy let a freshly installed service start, stop it.
  for p in "${missing[@]}"; do
    for s in "${service_packages[@]}"; do
      [[ $p == "$s" ]] || continue
      unit="${s%-light}"
      [[ $s == docker.io ]] && unit=docker
      if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit" 2>/dev/null; then
        "${sudo[@]}" systemctl disable --now "$unit" >/dev/null 2>&1 || true
      elif command -v service >/dev/null 2>&1; then
        "${sudo[@]}" service "$unit" stop >/dev/null 2>&1 || true
      fi
    done
  done
  cleanup_policy
  own_policy=0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "setup.sh: npm is missing; install Node.js 20 with its bundled npm (not Debian's npm package)" >&2
  exit 1
fi

# npm writes node_modules/.package-lock.json on every install: older than the lockfile means stale.
cd "$repo_root"
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "setup.sh: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
