#!/usr/bin/env bash
# What the build sandbox's egress network costs: `npm ci` of tests/fixtures/vite-react under
# bubblewrap, (a) on the host's network (the sandbox before BUILD_NETWORK existed) and (b) in a
# network namespace of its own behind slirp4netns with the routes that close private, link-local,
# CGNAT and host addresses (the set-up libs/runner/src/build_network.cpp does, repeated here in
# shell with the same flags and routes). Every run gets a fresh work directory and an empty npm
# cache, so every package comes from the registry. N runs of each, interleaved; prints each run
# and the medians.
#
# Usage: bench/sandbox_network_bench.sh [N]   (default 3; needs root, bwrap, slirp4netns, ip)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs="${1:-3}"
fixture="$repo_root/tests/fixtures/vite-react"

if ((EUID != 0)); then
  echo "sandbox_network_bench: needs root (slirp4netns and the routes are set up from outside)" >&2
  exit 2
fi
for p in bwrap slirp4netns ip nsenter npm; do
  command -v "$p" >/dev/null || {
    echo "sandbox_network_bench: $p is missing (deploy/setup.sh)" >&2
    exit 2
  }
done

tmp="$(mktemp -d /tmp/dp-netbench.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

# The sandbox of sandbox.cpp, reduced to what npm needs; the same for both variants.
sandbox_args() {
  local work="$1"
  local a=(--unshare-pid --unshare-ipc --unshare-uts --die-with-parent --new-session
    --cap-drop ALL --ro-bind /usr /usr)
  for d in /bin /sbin /lib /lib32 /lib64; do
    if [[ -L $d ]]; then
      a+=(--symlink "$(readlink "$d")" "$d")
    elif [[ -d $d ]]; then
      a+=(--ro-bind "$d" "$d")
    fi
  done
  a+=(--dir /etc --dir /etc/ssl)
  for f in /etc/hosts /etc/nsswitch.conf /etc/passwd /etc/group /etc/ssl/certs \
    /etc/ca-certificates /etc/alternatives /etc/ld.so.cache; do
    a+=(--ro-bind-try "$f" "$f")
  done
  a+=(--proc /proc --dev /dev --tmpfs /tmp --bind "$work" /build --chdir /build --clearenv
    --setenv PATH /usr/local/bin:/usr/bin:/bin --setenv HOME /build/home --setenv CI 1
    --setenv npm_config_cache /build/.npm --setenv npm_config_update_notifier false)
  printf '%s\n' "${a[@]}"
}

new_work() {
  local work
  work="$(mktemp -d "$tmp/work.XXXXXX")"
  cp "$fixture/package.json" "$fixture/package-lock.json" "$work/"
  mkdir -p "$work/home"
  echo "$work"
}

npm_ci=(npm ci --no-audit --no-fund --loglevel=error)

# The routes of build_network.cpp's egress_route_batch for this host.
route_batch() {
  printf 'route add unreachable %s\n' 0.0.0.0/8 10.0.0.0/8 100.64.0.0/10 169.254.0.0/16 \
    172.16.0.0/12 192.168.0.0/16 224.0.0.0/4 240.0.0.0/4
  ip -4 -o addr show scope global | awk '{print $4}' | while read -r cidr; do
    case "$cidr" in 10.*) continue ;; esac
    echo "route add unreachable ${cidr%/*}/32"
  done
  echo "rule add pref 100 to 10.0.2.3/32 ipproto udp dport 53 lookup main"
  echo "rule add pref 101 to 10.0.2.3/32 ipproto tcp dport 53 lookup main"
  echo "rule add pref 102 to 10.0.2.0/24 prohibit"
  echo "route del fe80::/64 dev tap0"
  echo "route add unreachable fe80::/10"
  echo "route add unreachable ::/0"
}
route_batch >"$tmp/routes"
echo "nameserver 10.0.2.3" >"$tmp/resolv.conf"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

run_host() {
  local cmd=("${npm_ci[@]}")
  (($#)) && cmd=("$@")
  local work
  work="$(new_work)"
  mapfile -t args < <(sandbox_args "$work")
  local t0
  t0=$(now_ms)
  bwrap "${args[@]}" --ro-bind /etc/resolv.conf /etc/resolv.conf -- "${cmd[@]}" >"$tmp/out" 2>&1 || {
    cat "$tmp/out" >&2
    return 1
  }
  echo $(($(now_ms) - t0))
  rm -rf "$work"
}

run_egress() {
  local cmd=("${npm_ci[@]}")
  (($#)) && cmd=("$@")
  local work
  work="$(new_work)"
  mapfile -t args < <(sandbox_args "$work")
  rm -f "$tmp/info" "$tmp/block" "$tmp/ready"
  mkfifo "$tmp/block" "$tmp/ready"
  local t0
  t0=$(now_ms)
  bwrap "${args[@]}" --unshare-net --info-fd 3 --block-fd 4 --ro-bind-data 5 /etc/resolv.conf \
    -- "${cmd[@]}" 3>"$tmp/info" 4<"$tmp/block" 5<"$tmp/resolv.conf" >"$tmp/out" 2>&1 &
  local bw=$!
  exec 7>"$tmp/block"
  local pid=""
  while [[ -z $pid ]]; do
    pid="$(sed -n 's/.*"child-pid": *\([0-9]*\).*/\1/p' "$tmp/info" 2>/dev/null)"
  done
  slirp4netns --configure --mtu=65520 --disable-host-loopback --enable-sandbox --enable-seccomp \
    --ready-fd=8 "$pid" tap0 8>"$tmp/ready" >/dev/null 2>&1 &
  local sl=$!
  head -c1 "$tmp/ready" >/dev/null
  nsenter --net="/proc/$pid/ns/net" -- ip -batch "$tmp/routes"
  echo 1 >&7
  exec 7>&-
  local rc=0
  wait "$bw" || rc=$?
  local elapsed=$(($(now_ms) - t0))
  kill "$sl" 2>/dev/null || true
  wait "$sl" 2>/dev/null || true
  if ((rc != 0)); then
    cat "$tmp/out" >&2
    return 1
  fi
  echo "$elapsed"
  rm -rf "$work"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

# The fixed cost first: `true` in the sandbox, 5 runs each.
th=() te=()
for ((i = 1; i <= 5; i++)); do
  th+=("$(run_host true)")
  te+=("$(run_egress true)")
done
thm=$(printf '%s\n' "${th[@]}" | median)
tem=$(printf '%s\n' "${te[@]}" | median)

host=() egress=()
echo "npm ci of tests/fixtures/vite-react in bubblewrap, empty npm cache each run ($runs runs each)"
for ((i = 1; i <= runs; i++)); do
  h=$(run_host)
  e=$(run_egress)
  host+=("$h")
  egress+=("$e")
  printf 'run %d: host network %6d ms   egress (slirp4netns) %6d ms\n' "$i" "$h" "$e"
done
hm=$(printf '%s\n' "${host[@]}" | median)
em=$(printf '%s\n' "${egress[@]}" | median)
echo
printf '| network | npm ci, median of %d |\n|---|---|\n' "$runs"
awk -v h="$hm" -v e="$em" 'BEGIN {
  printf "| host (no namespace) | %.1f s |\n", h / 1000
  printf "| egress (slirp4netns, closed routes) | %.1f s |\n", e / 1000
  printf "| difference | %+.1f s (%+.0f %%) |\n", (e - h) / 1000, (e - h) * 100 / h
}'
printf '\n| sandbox start-up (`true`, median of 5) | host %d ms | egress %d ms | +%d ms |\n' \
  "$thm" "$tem" $((tem - thm))
