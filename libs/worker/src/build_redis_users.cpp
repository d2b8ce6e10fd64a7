#include "dp/worker/build_redis_users.hpp"

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/core/log.hpp"
#include "dp/proto/json.hpp"
#include "dp/redis/client.hpp"

namespace dp::worker {

build_redis_users::build_redis_users(redis::client& admin, proto::keys keys,
                                     config::redis_url container_url)
    : admin_(admin),
      records_(admin, keys),
      keys_(std::move(keys)),
      container_url_(std::move(container_url)) {}

std::string build_redis_users::user_name(const proto::keys& keys, std::string_view deployment_id) {
  return keys.prefix() + "build:" + std::string(deployment_id);
}

std::vector<std::string> build_redis_users::acl_rules(const proto::keys& keys,
                                                      std::string_view deployment_id,
                                                      std::string_view project) {
  auto exactly = [](const std::string& key) { return proto::keys::literal(key); };
  return {
      "reset",
      "on",
      "resetkeys",
      "resetchannels",
      "-@all",
      "+auth",
      "+select",
      "+ping",
      "+eval",
      "+hgetall",
      "+hget",
      "+hset",
      "+get",
      "+xadd",
      "+xrange",
      "+xrevrange",
      "+expire",
      "+publish",
      "+subscribe",
      "+unsubscribe",
      "~" + exactly(keys.deployment(deployment_id)),
      "~" + exactly(keys.logbook(deployment_id)),
      // The status scripts name the events channel among their keys (the key is never written,
      // and the user may not publish on the channel).
      "~" + exactly(keys.events_channel()),
      "%R~" + exactly(keys.cancel(deployment_id)),
      "%R~" + exactly(keys.project(project)),
      // Not the events channel: PUBLISH there could carry any deployment's made-up status. The
      // status scripts move the status without publishing for this user; close() publishes.
      "&" + exactly(keys.logs_channel(deployment_id)),
      "&" + exactly(keys.cancel(deployment_id)),
  };
}

task<std::string> build_redis_users::open(const proto::job& job) {
  auto name = user_name(keys_, job.deployment_id);
  if (auto gone = co_await remove(job.deployment_id); !gone) {
    co_return gone.error();
  }
  auto password = dp::random_hex(32);
  std::vector<std::string> command{"ACL", "SETUSER", name};
  for (auto& rule : acl_rules(keys_, job.deployment_id, job.project)) {
    command.push_back(std::move(rule));
  }
  command.push_back(">" + password);
  auto r = co_await admin_.exec(std::move(command));
  if (!r) {
    co_return dp::error{r.error().code,
                        fmt::format("cannot make the build's Redis user {}: {} (a Redis without "
                                    "ACL SETUSER, such as ElastiCache, needs "
                                    "BUILD_REDIS_USER=shared)",
                                    name, r.error().message)};
  }
  auto url = container_url_;
  url.username = std::move(name);
  url.password = std::move(password);
  co_return url.to_string();
}

task<build_end> run_container_build(build_redis_users* users, build_storage_access* storage,
                                    const config::environment& env, const proto::job& job,
                                    container_launch launch) {
  std::optional<aws::temporary_credentials> keys;
  if (storage) {
    auto opened = co_await storage->open(job);
    if (!opened) {
      co_return opened.error();
    }
    keys = std::move(*opened);
  }
  const aws::credentials* storage_keys = keys ? &keys->keys : nullptr;
  if (!users) {
    co_return co_await launch(container_environment(env, job, std::nullopt, storage_keys));
  }
  auto url = co_await users->open(job);
  if (!url) {
    co_return url.error();
  }
  auto end = co_await launch(container_environment(env, job, *url, storage_keys));
  co_return co_await users->close(job, std::move(end));
}

task<build_end> build_redis_users::close(const proto::job& job, dp::result<build_end> end) {
  const auto& id = job.deployment_id;
  bool published = false;
  if (end && end->exit_code == exit_ready && !end->stopped) {
    auto d = co_await records_.get_deployment(id);
    dp::result<state::transition_outcome> live = d.error();
    if (d) {
      live = co_await records_.go_live(*d);
      published = live && live->applied;
    }
    if (!live && !live.error().is(errc::conflict)) {
      // The build is uploaded but not live: another attempt will build it again.
      end->exit_code = exit_infrastructure;
      end->description += "; go-live failed: " + live.error().message;
    } else if (!live) {
      // Ready all the same; an alias of another project's was left alone (promote goes around).
      dp::log::warn("go-live left an alias alone", {{"deployment", id}, {"error", live.error()}});
    }
  }
  if (!published) {
    co_await publish_final_status(id);
  }
  if (auto gone = co_await remove(id); !gone) {
    dp::log::warn("cannot delete a build's Redis user; the reaper will",
                  {{"deployment", id}, {"error", gone.error()}});
  }
  co_return end;
}

task<void> build_redis_users::sweep() {
  auto users = co_await admin_.exec("ACL", "USERS");
  if (!users) {
    co_return users.error();
  }
  auto mine = user_name(keys_, "");
  for (const auto& u : users->elements()) {
    const auto& name = u.as_string();
    if (!name.starts_with(mine)) {
      continue;
    }
    auto id = name.substr(mine.size());
    auto d = co_await records_.get_deployment(id);
    if (d && !proto::is_final(d->status)) {
      continue;
    }
    if (!d && !d.error().is(errc::not_found)) {
      co_return d.error();
    }
    dp::log::info("deleting the Redis user of a build that has ended", {{"user", name}});
    if (auto gone = co_await remove(id); !gone) {
      co_return gone.error();
    }
  }
  co_return dp::result<void>{};
}

// The build's user moved its status without publishing (it may not publish on the events
// channel): the final status it left, if any, is published now, from the record. When another
// writer (the API's cancel) made it final, its event goes out twice: events are hints, and a
// repeated final status changes nothing for their followers.
boost::asio::awaitable<void> build_redis_users::publish_final_status(std::string_view id) {
  auto d = co_await records_.get_deployment(id);
  if (!d || !proto::is_final(d->status)) {
    co_return;  // not final: the worker's own transition will publish
  }
  proto::status_event e{.deployment_id = d->id,
                        .project = d->project,
                        .status = d->status,
                        .ts_ms = d->finished_at.value_or(dp::now_ms()),
                        .error = d->error};
  if (auto r = co_await admin_.exec("PUBLISH", keys_.events_channel(), proto::to_json(e)); !r) {
    dp::log::warn("cannot publish a container build's final status",
                  {{"deployment", std::string(id)}, {"error", r.error()}});
  }
}

task<void> build_redis_users::remove(std::string_view deployment_id) {
  auto r = co_await admin_.exec("ACL", "DELUSER", user_name(keys_, deployment_id));
  if (!r) {
    co_return r.error();
  }
  co_return dp::result<void>{};
}

}  // namespace dp::worker
