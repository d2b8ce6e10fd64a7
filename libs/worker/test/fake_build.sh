#!/bin/bash
# Stands in for `build-runner build --deployment <id>` in the worker's tests and benchmark: it
# moves the deployment through building to ready with the same check-and-set rule as
# dp::state::records (a final status is never left), and records what a test needs to check:
#   <prefix>fake:started:<id>  list of start times (ms), one per run
#   <prefix>fake:overlap       incremented when a run starts while another run of the same
#                              deployment is still alive (it must never happen)
# Behaviour: FAKE_SLEEP seconds of "work"; <prefix>fake:mode:<id> = exit3 | exit1 | hang.
set -u
# The process launcher's clean-up runs `<program> sweep`: nothing to sweep here.
if [ "${1:-}" = sweep ]; then exit 0; fi
id="$3"
p="${KEY_PREFIX:-dp:}"
r() { redis-cli -u "$REDIS_URL" "$@"; }
set_status='local c = redis.call("HGET", KEYS[1], "status")
if not c or c == "ready" or c == "failed" or c == "canceled" then return 0 end
redis.call("HSET", KEYS[1], "status", ARGV[1])
if ARGV[1] == "ready" then redis.call("HSET", KEYS[1], "finished_at", ARGV[2]) end
return 1'
now() { date +%s%3N; }

r RPUSH "${p}fake:started:$id" "$(now)" >/dev/null
for pid in $(r SMEMBERS "${p}fake:pids:$id"); do
  if kill -0 "$pid" 2>/dev/null; then r INCR "${p}fake:overlap" >/dev/null; fi
done
r SADD "${p}fake:pids:$id" $$ >/dev/null
r EVAL "$set_status" 1 "${p}deployment:$id" building "$(now)" >/dev/null
echo "fake build of $id"
case "$(r GET "${p}fake:mode:$id")" in
  exit3) r SREM "${p}fake:pids:$id" $$ >/dev/null; exit 3 ;;
  exit1) r SREM "${p}fake:pids:$id" $$ >/dev/null; exit 1 ;;
  hang) sleep 600 ;;
esac
sleep "${FAKE_SLEEP:-0}"
r SREM "${p}fake:pids:$id" $$ >/dev/null
r EVAL "$set_status" 1 "${p}deployment:$id" ready "$(now)" >/dev/null
