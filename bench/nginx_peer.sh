# Sourced by the benchmarks that run a server beside nginx (proxy_bench.sh, tls_bench.sh), after
# `set -euo pipefail` and with BENCH naming the script: a work directory nginx's worker (nobody)
# can read, the servers' pids killed on exit, a free loopback port and a wait until one listens.
WORK=$(mktemp -d "/tmp/dp-$BENCH.XXXXXX")
chmod 755 "$WORK"  # nginx's worker runs as nobody
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$BENCH: nothing listens on $1" >&2
  exit 1
}
