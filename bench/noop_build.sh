#!/bin/bash
# worker_bench's build that does nothing: one redis-cli call that records when this script
# started (bash's clock, before redis-cli starts; in <prefix>fake:started:<id> as
# libs/worker/test/fake_build.sh does) and sets the deployment ready with the same check-and-set
# rule. fake_build.sh makes ~8 redis-cli calls (~0.3 s of CPU per job on this machine), which
# would measure redis-cli rather than the queue.
set -u
started="${EPOCHREALTIME/./}"
p="${KEY_PREFIX:-dp:}"
exec redis-cli -u "$REDIS_URL" EVAL '
redis.call("RPUSH", KEYS[2], ARGV[1])
local t = redis.call("TIME")
local ms = tostring(t[1] * 1000 + math.floor(t[2] / 1000))
local c = redis.call("HGET", KEYS[1], "status")
if not c or c == "ready" or c == "failed" or c == "canceled" then return 0 end
redis.call("HSET", KEYS[1], "status", "ready", "finished_at", ms)
return 1' 2 "${p}deployment:$3" "${p}fake:started:$3" "${started:0:-3}" >/dev/null
