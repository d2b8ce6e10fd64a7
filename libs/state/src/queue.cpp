#include "dp/state/queue.hpp"

#include <fmt/format.h>

#include "dp/redis/client.hpp"

namespace dp::state {
namespace {

using redis::reply;

// KEYS: lease, processing. ARGV: holder, ttl ms, job text, "1" when just taken.
// A lease that expired is taken back only while the job is still in the processing list: once the
// reaper has re-queued it, someone else may be running it.
constexpr std::string_view hold_script = R"lua(
if ARGV[4] ~= '1' then
  local cur = redis.call('GET', KEYS[1])
  if cur and cur ~= ARGV[1] then return 0 end
  if not cur and not redis.call('LPOS', KEYS[2], ARGV[3]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
)lua";

// KEYS: lease, processing. ARGV: holder, job text.
constexpr std::string_view finish_script = R"lua(
redis.call('LREM', KEYS[2], 1, ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
)lua";

// KEYS: lock. ARGV: holder, ttl ms.
constexpr std::string_view lock_script = R"lua(
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
)lua";

// KEYS: lock. ARGV: holder.
constexpr std::string_view unlock_script = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
)lua";

// KEYS: lease, processing. ARGV: claimer, ttl ms, job text.
constexpr std::string_view claim_script = R"lua(
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if not redis.call('LPOS', KEYS[2], ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
)lua";

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(std::max<int64_t>(d.count(), 1));
}

}  // namespace

queue::queue(redis::client& redis, proto::keys keys) : redis_(redis), keys_(std::move(keys)) {}

task<std::optional<std::string>> queue::take(redis::client& blocking,
                                             std::chrono::milliseconds block) {
  // The server-side timeout is in seconds (decimals allowed); the client waits 5 s longer so a
  // slow answer is not mistaken for a lost connection.
  std::vector<std::string> command{
      "BLMOVE", keys_.queue(), keys_.processing(),
      "RIGHT",  "LEFT",        fmt::format("{:.3f}", block.count() / 1000.0)};
  auto r = co_await blocking.exec(std::move(command), block + std::chrono::seconds(5));
  if (!r) {
    co_return r.error();
  }
  if (r->is_nil()) {
    co_return std::optional<std::string>{};
  }
  co_return std::optional<std::string>{std::move(*r).as_string()};
}

task<bool> queue::hold(std::string_view id, std::string_view job_text, std::string_view holder,
                       std::chrono::milliseconds ttl, bool taken) {
  std::vector<std::string> command{"EVAL",          std::string(hold_script), "2",
                                   keys_.lease(id), keys_.processing(),       std::string(holder),
                                   ms(ttl),         std::string(job_text),    taken ? "1" : "0"};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer() == 1;
}

task<void> queue::finish(std::string_view id, std::string_view job_text, std::string_view holder) {
  std::vector<std::string> command{"EVAL",
                                   std::string(finish_script),
                                   "2",
                                   keys_.lease(id),
                                   keys_.processing(),
                                   std::string(holder),
                                   std::string(job_text)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<void> queue::release(std::string_view id, std::string_view holder) {
  // The same compare-and-delete as a project lock.
  std::vector<std::string> command{"EVAL", std::string(unlock_script), "1", keys_.lease(id),
                                   std::string(holder)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<bool> queue::lock_project(std::string_view project, std::string_view holder,
                               std::chrono::milliseconds ttl) {
  std::vector<std::string> command{
      "EVAL", std::string(lock_script), "1", keys_.project_lock(project), std::string(holder),
      ms(ttl)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer() == 1;
}

task<void> queue::unlock_project(std::string_view project, std::string_view holder) {
  std::vector<std::string> command{"EVAL", std::string(unlock_script), "1",
                                   keys_.project_lock(project), std::string(holder)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

task<std::vector<std::string>> queue::processing() {
  std::vector<std::string> command{"LRANGE", keys_.processing(), "0", "-1"};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  std::vector<std::string> out;
  for (auto& e : std::move(*r).elements()) {
    out.push_back(std::move(e).as_string());
  }
  co_return out;
}

task<bool> queue::has_lease(std::string_view id) {
  std::vector<std::string> command{"EXISTS", keys_.lease(id)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer() == 1;
}

task<bool> queue::claim_expired(std::string_view id, std::string_view job_text,
                                std::string_view claimer, std::chrono::milliseconds ttl) {
  std::vector<std::string> command{"EVAL",          std::string(claim_script), "2",
                                   keys_.lease(id), keys_.processing(),        std::string(claimer),
                                   ms(ttl),         std::string(job_text)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  co_return r->as_integer() == 1;
}

task<std::optional<std::string>> queue::newer_active(std::string_view project,
                                                     std::string_view branch, std::string_view id,
                                                     int window) {
  std::vector<std::string> command{"ZREVRANGE", keys_.project_deployments(project), "0",
                                   std::to_string(window - 1)};
  auto r = co_await redis_.exec(std::move(command));
  if (!r) {
    co_return r.error();
  }
  // Ids sort by creation time: the newer ones compare greater.
  std::vector<std::string> newer;
  std::vector<std::vector<std::string>> reads;
  for (const auto& e : r->elements()) {
    if (e.as_string() > id) {
      newer.push_back(e.as_string());
      reads.push_back({"HMGET", keys_.deployment(e.as_string()), "status", "branch"});
    }
  }
  if (newer.empty()) {
    co_return std::optional<std::string>{};
  }
  auto statuses = co_await redis_.pipeline(std::move(reads));
  if (!statuses) {
    co_return statuses.error();
  }
  for (size_t i = 0; i < newer.size() && i < statuses->size(); ++i) {
    const auto& fields = (*statuses)[i].elements();
    if (fields.size() != 2 || fields[0].is_nil()) {
      continue;  // deleted meanwhile
    }
    const auto& s = fields[0].as_string();
    // A deployment without a branch (the remote's default) is of branch "".
    std::string of_branch = fields[1].is_nil() ? std::string() : fields[1].as_string();
    if (of_branch == branch && s != "ready" && s != "failed" && s != "canceled") {
      co_return std::optional<std::string>{newer[i]};
    }
  }
  co_return std::optional<std::string>{};
}

}  // namespace dp::state
