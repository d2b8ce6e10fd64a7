#include "dp/state/records.hpp"

#include <algorithm>
#include <chrono>

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/preview_alias.hpp"
#include "dp/proto/json.hpp"
#include "dp/redis/client.hpp"

namespace dp::state {
namespace {

using proto::deployment_status;
using redis::reply;

// The status event, built in Lua from the stored project so the script needs no second round trip.
// Strings go through cjson.encode, numbers are passed as decimal text (cjson would print floats).
constexpr std::string_view status_event_lua = R"lua(
local function status_event(id, status, ts, err, project)
  local e = '{"v":1,"type":"status","deployment_id":' .. cjson.encode(id) ..
            ',"project":' .. cjson.encode(project) .. ',"status":' .. cjson.encode(status) ..
            ',"ts_ms":' .. ts
  if err ~= '' then e = e .. ',"error":' .. cjson.encode(err) end
  return e .. '}'
end
)lua";

// Check-and-set of a deployment's status, then the status event: one script, so no other writer
// can slip in between (a late `ready` never overwrites `canceled`). A caller that may not publish
// on the events channel (a container build's Redis user, which could otherwise publish made-up
// events of any deployment) moves the status without an event: its worker publishes the final
// one when the build has ended (worker::build_redis_users::close).
// KEYS: deployment hash, events channel.
// ARGV: id, to, ts_ms, error ("" for none), n, n field/value strings, allowed previous statuses.
constexpr std::string_view transition_body = R"lua(
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {-1, ''} end
local n = tonumber(ARGV[5])
local ok = false
for i = 6 + n, #ARGV do
  if ARGV[i] == cur then ok = true break end
end
if not ok then return {0, cur} end
local args = {'status', ARGV[2]}
for i = 6, 5 + n do args[#args + 1] = ARGV[i] end
if ARGV[4] ~= '' then
  args[#args + 1] = 'error'
  args[#args + 1] = ARGV[4]
end
redis.call('HSET', KEYS[1], unpack(args))
local project = redis.call('HGET', KEYS[1], 'project') or ''
local event = status_event(ARGV[1], ARGV[2], ARGV[3], ARGV[4], project)
-- Redis 6 has no acl_check_cmd (nor the per-build users it would be for): publish.
if not redis.acl_check_cmd or redis.acl_check_cmd('PUBLISH', KEYS[2], event) then
  redis.call('PUBLISH', KEYS[2], event)
end
return {1, cur}
)lua";

// Back to the queue for another attempt, unless the deployment reached a final state meanwhile.
// KEYS: deployment hash, processing list, queue list, events channel.
// ARGV: id, taken job text, next job text, attempt, ts_ms.
constexpr std::string_view requeue_body = R"lua(
redis.call('LREM', KEYS[2], 1, ARGV[2])
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {-1, ''} end
if cur == 'ready' or cur == 'failed' or cur == 'canceled' then return {0, cur} end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', ARGV[4])
redis.call('HDEL', KEYS[1], 'started_at')
redis.call('LPUSH', KEYS[3], ARGV[3])
local project = redis.call('HGET', KEYS[1], 'project') or ''
redis.call('PUBLISH', KEYS[4], status_event(ARGV[1], 'queued', ARGV[5], '', project))
return {1, cur}
)lua";

// Project names and immutable aliases share alias:<label>, and names made before the "--"
// scheme may equal an older deployment's "<project>-<short id>": an alias that serves another
// project's deployment is never moved or removed. A deployment without a record (deleted) owns
// nothing. Expects ARGV[1] (the deployment id) and ARGV[2] (the project); `record` is the
// deployment key's prefix.
constexpr std::string_view alias_owner_lua = R"lua(
local function other_owner(alias_key, record)
  local cur = redis.call('GET', alias_key)
  if not cur or cur == ARGV[1] then return false end
  local owner = redis.call('HGET', record .. cur, 'project')
  if owner and owner ~= ARGV[2] then return owner end
  return false
end
)lua";

// Production and the preview aliases move forward only: a build that finishes late never
// replaces a newer deployment (ids sort by creation time). Rollback goes through set_alias instead.
// The end of a successful build, in one script: the status becomes ready (with its fields) and
// the aliases move to the deployment (immutable, then the previews: branch and pull request, then
// production for a production deployment), so that whoever sees `ready` finds the site served.
// The status event goes out after the alias events.
// KEYS: deployment hash, events channel, production alias, immutable alias, project previews set.
// ARGV: id, project, immutable label, ts, deployment key prefix, "1" for production, alias key
// prefix, m, m preview labels, n, n field/value strings, allowed previous statuses.
// Returns {applied, previous status} (applied -1: no record, nothing moved; 0: refused, and
// nothing moved unless the status was ready already: a retry), then {label, owner} of another
// project's alias.
constexpr std::string_view go_live_body = R"lua(
local function alias_event(alias)
  return '{"v":1,"type":"alias","alias":' .. cjson.encode(alias) .. ',"deployment_id":' ..
         cjson.encode(ARGV[1]) .. ',"project":' .. cjson.encode(ARGV[2]) .. ',"ts_ms":' ..
         ARGV[4] .. '}'
end
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {-1, ''} end
if redis.call('HEXISTS', KEYS[1], 'pruned_at') == 1 then return {0, cur} end
local m = tonumber(ARGV[8])
local nat = 9 + m
local n = tonumber(ARGV[nat])
local applied = 0
local allowed = false
for i = nat + 1 + n, #ARGV do
  if ARGV[i] == cur then allowed = true break end
end
if allowed then
  local args = {'status', 'ready'}
  for i = nat + 1, nat + n do args[#args + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(args))
  applied = 1
elseif cur ~= 'ready' then
  return {0, cur}
end
local function move_aliases()
  local owner = other_owner(KEYS[4], ARGV[5])
  if owner then return {ARGV[3], owner} end
  redis.call('SET', KEYS[4], ARGV[1])
  redis.call('PUBLISH', KEYS[2], alias_event(ARGV[3]))
  for i = 9, 8 + m do
    local key = ARGV[7] .. ARGV[i]
    owner = other_owner(key, ARGV[5])
    if owner then return {ARGV[i], owner} end
    local live = redis.call('GET', key)
    if not (live and live > ARGV[1]) then
      redis.call('SET', key, ARGV[1])
      redis.call('SADD', KEYS[5], ARGV[i])
      redis.call('PUBLISH', KEYS[2], alias_event(ARGV[i]))
    end
  end
  if ARGV[6] ~= '1' then return nil end
  owner = other_owner(KEYS[3], ARGV[5])
  if owner then return {ARGV[2], owner} end
  local live = redis.call('GET', KEYS[3])
  if live and live > ARGV[1] then return nil end
  if live and live ~= ARGV[1] and redis.call('EXISTS', ARGV[5] .. live) == 1 then
    redis.call('HSET', ARGV[5] .. live, 'production_until', ARGV[4])
  end
  redis.call('SET', KEYS[3], ARGV[1])
  redis.call('PUBLISH', KEYS[2], alias_event(ARGV[2]))
  return nil
end
local conflict = move_aliases()
if applied == 1 then
  local project = redis.call('HGET', KEYS[1], 'project') or ''
  redis.call('PUBLISH', KEYS[2], status_event(ARGV[1], 'ready', ARGV[4], '', project))
end
if conflict then return {applied, cur, conflict[1], conflict[2]} end
return {applied, cur}
)lua";

// A branch deleted or a pull request closed: its preview alias goes, unless it serves another
// project's deployment. KEYS: alias, project previews set, events channel.
// ARGV: id ("" here: no deployment is the caller's), project, deployment key prefix, label, ts.
// Returns 1 when the alias was removed, 0 when there was none, or the other owner.
constexpr std::string_view remove_preview_body = R"lua(
local owner = other_owner(KEYS[1], ARGV[3])
if owner then return owner end
redis.call('SREM', KEYS[2], ARGV[4])
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', KEYS[3], '{"v":1,"type":"alias","alias":' .. cjson.encode(ARGV[4]) ..
           ',"deployment_id":' .. cjson.encode(cur) .. ',"project":' .. cjson.encode(ARGV[2]) ..
           ',"ts_ms":' .. ARGV[5] .. '}')
return 1
)lua";

// The production branch a project learns (a forge's default branch) unless it has one.
// KEYS: project hash. ARGV: branch. Returns 1 when it was set.
constexpr std::string_view learn_production_branch_script = R"lua(
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'branch') == 1 then return 0 end
return redis.call('HSETNX', KEYS[1], 'production_branch', ARGV[1])
)lua";

// Promote and rollback. KEYS: alias, events channel.
// ARGV: id, project, alias event, deployment key prefix, "1" for the production alias, ts.
// Returns 1, 0 for a pruned deployment (its files are gone), or the other owner. The deployment
// production leaves gets production_until (what the retention policy counts from).
constexpr std::string_view set_alias_body = R"lua(
if redis.call('HEXISTS', ARGV[4] .. ARGV[1], 'pruned_at') == 1 then return 0 end
local owner = other_owner(KEYS[1], ARGV[4])
if owner then return owner end
local cur = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[5] == '1' and cur and cur ~= ARGV[1] and redis.call('EXISTS', ARGV[4] .. cur) == 1 then
  redis.call('HSET', ARGV[4] .. cur, 'production_until', ARGV[6])
end
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
)lua";

// Retention marks a deployment pruned before its files go, so that promote (which refuses a
// pruned one in the same Redis) can never point production at files being removed.
// KEYS: deployment hash, production alias, pruning set, project previews set.
// ARGV: id, ts, alias key prefix.
// Returns 1, or 0 (left alone: not final, pruned already, in production or served by a preview
// alias).
constexpr std::string_view mark_pruned_script = R"lua(
local st = redis.call('HGET', KEYS[1], 'status')
if st ~= 'ready' and st ~= 'failed' and st ~= 'canceled' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'pruned_at') == 1 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then return 0 end
for _, label in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('GET', ARGV[3] .. label) == ARGV[1] then return 0 end
end
redis.call('HSET', KEYS[1], 'pruned_at', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
)lua";

// What a project's deployments keep in storage, summed from their records: outputs of those not
// pruned (files, bytes), uploaded sources of those not pruned, records, pruned records.
// KEYS: project index. ARGV: deployment key prefix.
constexpr std::string_view usage_script = R"lua(
local of, ob, sf, sb, n, p = 0, 0, 0, 0, 0, 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. id, 'status', 'files', 'bytes', 'source_bytes',
                       'pruned_at')
  if f[1] then
    n = n + 1
    if f[5] then
      p = p + 1
    else
      if f[2] then of = of + tonumber(f[2]) end
      if f[3] then ob = ob + tonumber(f[3]) end
      if f[4] then
        sf = sf + 1
        sb = sb + tonumber(f[4])
      end
    end
  end
end
return {of, ob, sf, sb, n, p}
)lua";

// KEYS: deployment hash, logbook, cancel key, project index, immutable alias ("" for none).
// ARGV: id. The alias goes only if it still serves this deployment.
constexpr std::string_view delete_deployment_script = R"lua(
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
return 1
)lua";

// KEYS: project hash, project index, production alias, projects set, previews set.
// ARGV: name, deployment key prefix, alias key prefix. The production and preview aliases go
// unless they serve another project.
constexpr std::string_view delete_project_script = R"lua(
local function drop(alias_key)
  local cur = redis.call('GET', alias_key)
  if cur then
    local owner = redis.call('HGET', ARGV[2] .. cur, 'project')
    if not owner or owner == ARGV[1] then redis.call('DEL', alias_key) end
  end
end
for _, label in ipairs(redis.call('SMEMBERS', KEYS[5])) do drop(ARGV[3] .. label) end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[5])
redis.call('SREM', KEYS[4], ARGV[1])
drop(KEYS[3])
return 1
)lua";

// The immutable alias of a new deployment, unless a project of that name exists (one made
// before the "--" scheme): KEYS: alias, project hash. ARGV: id.
constexpr std::string_view reserve_alias_script = R"lua(
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
return 1
)lua";

// Counts every project's deployments by their status, inside Redis: one round trip, O(deployments).
// KEYS: projects set. ARGV: the key of a project's index around its name (before, after), the
// deployment key's prefix. Returns status, count, status, count...
constexpr std::string_view count_by_status_script = R"lua(
local counts = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, id in ipairs(redis.call('ZRANGE', ARGV[1] .. name .. ARGV[2], 0, -1)) do
    local s = redis.call('HGET', ARGV[3] .. id, 'status')
    if s then counts[s] = (counts[s] or 0) + 1 end
  end
end
local out = {}
for s, n in pairs(counts) do
  out[#out + 1] = s
  out[#out + 1] = n
end
return out
)lua";

// KEYS: project hash, projects set, alias:<name>. ARGV: name, then field/value pairs.
// 0: the project exists; -1: the name is an alias already (an older deployment's URL).
constexpr std::string_view create_project_script = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
)lua";

const std::string& transition_script() {
  static const std::string s = std::string(status_event_lua) + std::string(transition_body);
  return s;
}
const std::string& requeue_script() {
  static const std::string s = std::string(status_event_lua) + std::string(requeue_body);
  return s;
}
const std::string& go_live_script() {
  static const std::string s =
      std::string(status_event_lua) + std::string(alias_owner_lua) + std::string(go_live_body);
  return s;
}
const std::string& remove_preview_script() {
  static const std::string s = std::string(alias_owner_lua) + std::string(remove_preview_body);
  return s;
}
const std::string& set_alias_script() {
  static const std::string s = std::string(alias_owner_lua) + std::string(set_alias_body);
  return s;
}

dp::error alias_conflict(std::string_view label, std::string_view owner) {
  return make_error(errc::conflict,
                    "alias '{}' serves a deployment of project '{}': it is left as it is", label,
                    owner);
}

proto::hash_fields hash_from_reply(const reply& r) {
  proto::hash_fields fields;
  const auto& e = r.elements();
  for (size_t i = 0; i + 1 < e.size(); i += 2) {
    fields.emplace_back(e[i].as_string(), e[i + 1].as_string());
  }
  return fields;
}

std::vector<std::string> hset_argv(std::string key, const proto::hash_fields& fields) {
  std::vector<std::string> argv{"HSET", std::move(key)};
  for (const auto& [k, v] : fields) {
    argv.push_back(k);
    argv.push_back(v);
  }
  return argv;
}

// The first error reply of a MULTI/EXEC pipeline, as an error.
dp::result<void> check_pipeline(const std::vector<reply>& replies, std::string_view what) {
  for (const auto& r : replies) {
    if (r.is_error()) {
      return make_error(errc::protocol, "{}: {}", what, r.as_string());
    }
    if (r.is_array()) {
      for (const auto& inner : r.elements()) {
        if (inner.is_error()) {
          return make_error(errc::protocol, "{}: {}", what, inner.as_string());
        }
      }
    }
  }
  if (!replies.empty() && replies.back().is_nil()) {
    return make_error(errc::conflict, "{}: transaction aborted", what);
  }
  return {};
}

// Sends `commands` as one pipeline and checks every reply, as check_pipeline does.
task<void> checked_pipeline(redis::client& redis, std::vector<std::vector<std::string>> commands,
                            std::string_view what) {
  auto replies = co_await redis.pipeline(std::move(commands));
  if (!replies) {
    co_return replies.error();
  }
  co_return check_pipeline(*replies, what);
}

// The statuses from which proto::can_transition allows `to`: what the scripts accept as stored.
std::vector<deployment_status> statuses_before(deployment_status to) {
  std::vector<deployment_status> from;
  for (int s = 0; s <= static_cast<int>(deployment_status::canceled); ++s) {
    if (proto::can_transition(static_cast<deployment_status>(s), to)) {
      from.push_back(static_cast<deployment_status>(s));
    }
  }
  return from;
}

dp::result<transition_outcome> outcome_from(const reply& r, std::string_view id) {
  const auto& e = r.elements();
  if (e.size() != 2) {
    return make_error(errc::protocol, "unexpected script reply for deployment {}", id);
  }
  if (e[0].as_integer() < 0) {
    return make_error(errc::not_found, "deployment {} not found", id);
  }
  transition_outcome out;
  out.applied = e[0].as_integer() == 1;
  if (auto prev = proto::parse_deployment_status(e[1].as_string())) {
    out.previous = *prev;
  }
  return out;
}

}  // namespace

std::vector<std::string> preview_aliases(const proto::deployment& d) {
  std::vector<std::string> labels;
  // A fork's pull request has no branch of the project's: its pull request alias only.
  if (d.branch && !d.fork) {
    labels.push_back(dp::branch_alias(d.project, *d.branch));
  }
  if (d.pull_request) {
    labels.push_back(dp::pull_request_alias(d.project, *d.pull_request));
  }
  return labels;
}

bool same_branch(const proto::deployment& a, const proto::deployment& b) {
  return a.branch.value_or("") == b.branch.value_or("");
}

records::records(redis::client& redis, proto::keys keys) : redis_(redis), keys_(std::move(keys)) {}

task<void> records::create_project(const proto::project& p) {
  // One script: the existence check and the write cannot be split by another creator.
  std::vector<std::string> command{"EVAL",
                                   std::string(create_project_script),
                                   "3",
                                   keys_.project(p.name),
                                   keys_.projects(),
                                   keys_.alias(p.name),
                                   p.name};
  for (auto& [k, v] : proto::to_hash(p)) {
    command.push_back(std::move(k));
    command.push_back(std::move(v));
  }
  auto created = co_await redis_.exec(std::move(command));
  if (!created) {
    co_return created.error();
  }
  if (created->as_integer() == 0) {
    co_return make_error(errc::conflict, "project '{}' already exists", p.name);
  }
  if (created->as_integer() < 0) {
    co_return make_error(errc::conflict,
                         "the name '{}' is already the URL of a deployment (an immutable "
                         "alias): choose another project name",
                         p.name);
  }
  co_return dp::result<void>{};
}

task<void> records::save_project(const proto::project& p) {
  auto key = keys_.project(p.name);
  std::vector<std::vector<std::string>> commands{{"MULTI"},
                                                 {"DEL", key},
                                                 hset_argv(key, proto::to_hash(p)),
                                                 {"SADD", keys_.projects(), p.name},
                                                 {"EXEC"}};
  co_return co_await checked_pipeline(redis_, std::move(commands), "save project");
}

task<void> records::publish_routes(proto::route_event e) {
  if (e.ts_ms == 0) {
    e.ts_ms = now_ms();
  }
  std::vector<std::string> command{"PUBLISH", keys_.routes_channel(), proto::to_json(e)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<proto::project> records::get_project(std::string_view name) {
  std::vector<std::string> command{"HGETALL", keys_.project(name)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return proto::project_from_hash(name, hash_from_reply(*r));
}

task<std::vector<std::string>> records::project_names() {
  co_return co_await redis_.smembers(keys_.projects());
}

task<void> records::delete_project(std::string_view name) {
  std::vector<std::string> command{"EVAL",
                                   std::string(delete_project_script),
                                   "5",
                                   keys_.project(name),
                                   keys_.project_deployments(name),
                                   keys_.alias(name),
                                   keys_.projects(),
                                   keys_.project_previews(name),
                                   std::string(name),
                                   keys_.deployment(""),
                                   keys_.alias("")};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<void> records::create_deployment(proto::deployment& d, const proto::job& j) {
  co_return co_await insert_deployment(d, &j);
}

task<void> records::record_deployment(proto::deployment& d) {
  co_return co_await insert_deployment(d, nullptr);
}

task<void> records::insert_deployment(proto::deployment& d, const proto::job* j) {
  std::string label = dp::immutable_alias(d.project, d.id);
  std::vector<std::string> command{
      "EVAL", std::string(reserve_alias_script), "2", keys_.alias(label), keys_.project(label),
      d.id};
  auto reserved = co_await redis_.exec(std::move(command));
  if (!reserved) {
    co_return reserved.error();
  }
  if (reserved->as_integer() == 0) {
    co_return make_error(errc::conflict, "alias {} is taken", label);
  }
  d.alias = label;
  std::vector<std::vector<std::string>> commands{
      {"MULTI"},
      hset_argv(keys_.deployment(d.id), proto::to_hash(d)),
      {"ZADD", keys_.project_deployments(d.project), std::to_string(d.created_at), d.id}};
  if (j) {
    commands.push_back({"LPUSH", keys_.queue(), proto::to_json(*j)});
  }
  commands.push_back({"EXEC"});
  co_return co_await checked_pipeline(redis_, std::move(commands), "create deployment");
}

task<proto::deployment> records::get_deployment(std::string_view id) {
  std::vector<std::string> command{"HGETALL", keys_.deployment(id)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return proto::deployment_from_hash(id, hash_from_reply(*r));
}

task<std::vector<std::string>> records::deployment_ids(std::string_view project, int64_t offset,
                                                       int64_t count) {
  std::vector<std::string> command{"ZREVRANGE", keys_.project_deployments(project),
                                   std::to_string(offset), std::to_string(offset + count - 1)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  std::vector<std::string> ids;
  for (const auto& e : r->elements()) {
    ids.push_back(e.as_string());
  }
  co_return ids;
}

task<int64_t> records::deployment_count(std::string_view project) {
  std::vector<std::string> command{"ZCARD", keys_.project_deployments(project)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer();
}

task<transition_outcome> records::transition(std::string_view id, deployment_status to,
                                             const proto::hash_fields& fields,
                                             std::optional<std::string> error) {
  auto out = co_await transition_from(id, to, fields, std::move(error), statuses_before(to));
  co_return out;
}

task<transition_outcome> records::transition_from(std::string_view id, deployment_status to,
                                                  const proto::hash_fields& fields,
                                                  std::optional<std::string> error,
                                                  const std::vector<deployment_status>& from) {
  int64_t ts = now_ms();
  std::vector<std::string> argv{"EVAL",
                                transition_script(),
                                "2",
                                keys_.deployment(id),
                                keys_.events_channel(),
                                std::string(id),
                                std::string(proto::to_string(to)),
                                std::to_string(ts),
                                error.value_or("")};
  proto::hash_fields all = fields;
  if (proto::is_final(to)) {
    all.emplace_back("finished_at", std::to_string(ts));
  }
  argv.push_back(std::to_string(all.size() * 2));
  for (const auto& [k, v] : all) {
    argv.push_back(k);
    argv.push_back(v);
  }
  for (auto s : from) {
    argv.emplace_back(proto::to_string(s));
  }
  auto r = co_await redis_.exec(std::move(argv));
  if (!r) {
    co_return r.error();
  }
  co_return outcome_from(*r, id);
}

task<transition_outcome> records::requeue(std::string_view taken_job_text, const proto::job& next) {
  std::vector<std::string> command{"EVAL",
                                   requeue_script(),
                                   "4",
                                   keys_.deployment(next.deployment_id),
                                   keys_.processing(),
                                   keys_.queue(),
                                   keys_.events_channel(),
                                   next.deployment_id,
                                   std::string(taken_job_text),
                                   proto::to_json(next),
                                   std::to_string(next.attempt),
                                   std::to_string(now_ms())};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return outcome_from(*r, next.deployment_id);
}

task<void> records::set_fields(std::string_view id, const proto::hash_fields& fields) {
  if (fields.empty()) {
    co_return dp::result<void>{};
  }
  auto r = co_await redis_.exec(hset_argv(keys_.deployment(id), fields));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<void> records::delete_deployment(const proto::deployment& d) {
  std::vector<std::string> command{"EVAL",
                                   std::string(delete_deployment_script),
                                   "5",
                                   keys_.deployment(d.id),
                                   keys_.logbook(d.id),
                                   keys_.cancel(d.id),
                                   keys_.project_deployments(d.project),
                                   d.alias ? keys_.alias(*d.alias) : std::string(),
                                   d.id};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<void> records::set_alias(std::string_view label, std::string_view project,
                              std::string_view deployment_id) {
  proto::alias_event e{std::string(label), std::string(deployment_id), std::string(project),
                       now_ms()};
  std::vector<std::string> command{"EVAL",
                                   set_alias_script(),
                                   "2",
                                   keys_.alias(label),
                                   keys_.events_channel(),
                                   std::string(deployment_id),
                                   std::string(project),
                                   proto::to_json(e),
                                   keys_.deployment(""),
                                   label == project ? "1" : "0",
                                   std::to_string(e.ts_ms)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  if (r->is_string()) {
    co_return alias_conflict(label, r->as_string());
  }
  if (r->as_integer() == 0) {
    co_return make_error(errc::conflict,
                         "deployment {} was pruned by the retention policy: its files are gone; "
                         "deploy its commit again instead",
                         deployment_id);
  }
  co_return dp::result<void>{};
}

task<transition_outcome> records::go_live(const proto::deployment& d) {
  co_return co_await go_live(d, proto::hash_fields{});
}

task<transition_outcome> records::go_live(const proto::deployment& d,
                                          const proto::hash_fields& fields) {
  std::string label = d.alias.value_or(dp::immutable_alias(d.project, d.id));
  int64_t ts = now_ms();
  std::vector<std::string> command{"EVAL",
                                   go_live_script(),
                                   "5",
                                   keys_.deployment(d.id),
                                   keys_.events_channel(),
                                   keys_.alias(d.project),
                                   keys_.alias(label),
                                   keys_.project_previews(d.project),
                                   d.id,
                                   d.project,
                                   label,
                                   std::to_string(ts),
                                   keys_.deployment(""),
                                   d.target == proto::deployment_target::production ? "1" : "0",
                                   keys_.alias("")};
  auto previews = preview_aliases(d);
  command.push_back(std::to_string(previews.size()));
  command.insert(command.end(), previews.begin(), previews.end());
  proto::hash_fields all = fields;
  all.emplace_back("finished_at", std::to_string(ts));
  command.push_back(std::to_string(all.size() * 2));
  for (const auto& [k, v] : all) {
    command.push_back(k);
    command.push_back(v);
  }
  for (auto from : statuses_before(deployment_status::ready)) {
    command.emplace_back(proto::to_string(from));
  }
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  const auto& e = r->elements();
  if (e.size() == 4) {
    co_return alias_conflict(e[2].as_string(), e[3].as_string());
  }
  co_return outcome_from(*r, d.id);
}

task<bool> records::remove_preview_alias(std::string_view project, std::string_view label) {
  std::vector<std::string> command{"EVAL",
                                   remove_preview_script(),
                                   "3",
                                   keys_.alias(label),
                                   keys_.project_previews(project),
                                   keys_.events_channel(),
                                   "",
                                   std::string(project),
                                   keys_.deployment(""),
                                   std::string(label),
                                   std::to_string(now_ms())};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  if (r->is_string()) {
    co_return alias_conflict(label, r->as_string());
  }
  co_return r->as_integer() == 1;
}

task<std::vector<std::string>> records::preview_labels(std::string_view project) {
  co_return co_await redis_.smembers(keys_.project_previews(project));
}

task<bool> records::learn_production_branch(std::string_view project, std::string_view branch) {
  std::vector<std::string> command{"EVAL", std::string(learn_production_branch_script), "1",
                                   keys_.project(project), std::string(branch)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer() == 1;
}

task<std::vector<std::string>> records::cancel_superseded(const proto::deployment& newer,
                                                          int window) {
  std::vector<std::string> canceled;
  auto ids = co_await deployment_ids(newer.project, 0, window);
  if (!ids) {
    co_return ids.error();
  }
  for (const auto& id : *ids) {
    if (id >= newer.id) {
      continue;
    }
    auto d = co_await get_deployment(id);
    if (!d) {
      if (d.error().is(errc::not_found)) {
        continue;  // deleted meanwhile
      }
      co_return d.error();
    }
    // Queued ones are the worker's: it cancels them before they start (queue::newer_active).
    if (d->status == deployment_status::queued || proto::is_final(d->status) ||
        !same_branch(*d, newer)) {
      continue;
    }
    proto::cancel_request req{id, now_ms(), "superseded by " + newer.id};
    auto r = co_await request_cancel(req);
    if (!r) {
      co_return r.error();
    }
    canceled.push_back(id);
  }
  co_return canceled;
}

task<std::optional<std::string>> records::resolve_alias(std::string_view label) {
  co_return co_await redis_.get(keys_.alias(label));
}

task<std::optional<std::string>> records::resolve_domain(std::string_view fqdn) {
  co_return co_await redis_.get(keys_.domain(fqdn));
}

task<bool> records::mark_pruned(std::string_view id, std::string_view project) {
  std::vector<std::string> command{"EVAL",
                                   std::string(mark_pruned_script),
                                   "4",
                                   keys_.deployment(id),
                                   keys_.alias(project),
                                   keys_.pruning(),
                                   keys_.project_previews(project),
                                   std::string(id),
                                   std::to_string(now_ms()),
                                   keys_.alias("")};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer() == 1;
}

task<std::vector<std::string>> records::pruning() {
  co_return co_await redis_.smembers(keys_.pruning());
}

task<void> records::pruned_files_removed(std::string_view id) {
  std::vector<std::string> command{"SREM", keys_.pruning(), std::string(id)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<bool> records::take_retention_turn(std::string_view holder, std::chrono::milliseconds ttl) {
  std::vector<std::string> command{"SET",
                                   keys_.retention_lock(),
                                   std::string(holder),
                                   "NX",
                                   "PX",
                                   std::to_string(std::max<int64_t>(ttl.count(), 1))};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return !r->is_nil();
}

task<std::vector<std::string>> records::domain_targets() {
  std::vector<std::string> labels;
  std::string cursor = "0";
  do {
    std::vector<std::string> scan{"SCAN", cursor, "MATCH", keys_.domain_pattern(), "COUNT", "1000"};
    auto r = co_await redis_.exec(std::move(scan));
    if (!r) {
      co_return r.error();
    }
    const auto& page = r->elements();
    if (page.size() != 2) {
      co_return make_error(errc::protocol, "unexpected SCAN reply");
    }
    cursor = page[0].as_string();
    std::vector<std::string> get{"MGET"};
    for (const auto& k : page[1].elements()) {
      get.push_back(k.as_string());
    }
    if (get.size() == 1) {
      continue;
    }
    auto values = co_await redis_.exec(std::move(get));
    if (!values) {
      co_return values.error();
    }
    for (const auto& v : values->elements()) {
      if (!v.is_nil()) {
        labels.push_back(v.as_string());
      }
    }
  } while (cursor != "0");
  std::sort(labels.begin(), labels.end());
  labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
  co_return labels;
}

task<storage_usage> records::usage(std::string_view project) {
  std::vector<std::string> command{"EVAL", std::string(usage_script), "1",
                                   keys_.project_deployments(project), keys_.deployment("")};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  const auto& e = r->elements();
  if (e.size() != 6) {
    co_return make_error(errc::protocol, "unexpected usage reply for project {}", project);
  }
  co_return storage_usage{.output_files = e[0].as_integer(),
                          .output_bytes = e[1].as_integer(),
                          .source_files = e[2].as_integer(),
                          .source_bytes = e[3].as_integer(),
                          .deployments = e[4].as_integer(),
                          .pruned = e[5].as_integer()};
}

task<std::map<std::string, int64_t>> records::deployments_by_status() {
  // The key names around a placeholder, so that the script follows proto::keys' spelling.
  const std::string mark = "\x1f";
  auto index = keys_.project_deployments(mark);
  auto record = keys_.deployment(mark);
  std::vector<std::string> command{"EVAL",
                                   std::string(count_by_status_script),
                                   "1",
                                   keys_.projects(),
                                   index.substr(0, index.find(mark)),
                                   index.substr(index.find(mark) + mark.size()),
                                   record.substr(0, record.find(mark))};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  std::map<std::string, int64_t> counts;
  const auto& e = r->elements();
  for (size_t i = 0; i + 1 < e.size(); i += 2) {
    counts[e[i].as_string()] = e[i + 1].as_integer();
  }
  co_return counts;
}

task<int64_t> records::queue_length() {
  std::vector<std::string> command{"LLEN", keys_.queue()};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer();
}

task<transition_outcome> records::request_cancel(const proto::cancel_request& req) {
  // A queued deployment has no build to stop: cancel it here (a worker skips final jobs).
  std::string reason = req.reason.value_or("canceled");
  const std::vector<deployment_status> only_queued{deployment_status::queued};
  auto immediate = co_await transition_from(req.deployment_id, deployment_status::canceled,
                                            proto::hash_fields(), reason, only_queued);
  if (!immediate || immediate->applied || proto::is_final(immediate->previous)) {
    co_return immediate;
  }
  // Running: leave a durable request (checked at every lease refresh) and a prompt one.
  std::string text = proto::to_json(req);
  std::vector<std::vector<std::string>> commands{
      {"SET", keys_.cancel(req.deployment_id), text, "EX", "86400"},
      {"PUBLISH", keys_.cancel(req.deployment_id), text}};
  if (auto ok = co_await checked_pipeline(redis_, std::move(commands), "request cancel"); !ok) {
    co_return ok.error();
  }
  co_return immediate;
}

task<std::optional<proto::cancel_request>> records::cancel_requested(std::string_view id) {
  auto r = co_await redis_.get(keys_.cancel(id));
  if (!r) {
    co_return r.error();
  }
  if (!*r) {
    co_return std::optional<proto::cancel_request>{};
  }
  auto parsed = proto::parse_cancel_request(std::string_view(**r));
  if (!parsed) {
    co_return parsed.error();
  }
  co_return std::optional<proto::cancel_request>{std::move(*parsed)};
}

}  // namespace dp::state
