// build_redis_users against a real redis-server (7.0): a deployment's own ACL user can do what the
// runner in a build container does, and nothing of the platform beyond it; the worker makes the
// build live and deletes the user; the sweep deletes the users of builds that have ended.
#include "dp/worker/build_redis_users.hpp"

#include "dp/core/clock.hpp"
#include "dp/proto/json.hpp"
#include "dp/redis/subscriber.hpp"
#include "dp/state/logbook.hpp"
#include "worker_test_support.hpp"

namespace {

using namespace dp::worker_test;
using dp::proto::deployment_status;

const dp::proto::hash_fields no_fields;

class BuildRedisUsers : public ::testing::Test {
 protected:
  // A project and its queued deployment; returns the job.
  dp::proto::job queued(const std::string& project) {
    return run_sync<dp::proto::job>(
        redis_, [&](dp::state::records& records) -> asio::awaitable<dp::proto::job> {
          dp::proto::project p{.name = project,
                               .git_url = "https://example.com/" + project + ".git",
                               .created_at = dp::now_ms()};
          p.build_command = "npm run build";
          auto made = co_await records.create_project(p);
          EXPECT_TRUE(made) << (made ? "" : made.error().message);
          dp::proto::deployment d;
          d.id = dp::new_deployment_id();
          d.project = project;
          d.git_url = p.git_url;
          d.created_at = dp::now_ms();
          dp::proto::job j;
          j.deployment_id = d.id;
          j.project = project;
          j.git_url = d.git_url;
          j.attempt = 1;
          auto ok = co_await records.create_deployment(d, j);
          EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
          co_return j;
        });
  }

  // `body` with the build_redis_users of this Redis, on a connection of the worker's.
  template <class T>
  T with_users(std::function<asio::awaitable<T>(dp::worker::build_redis_users&)> body) {
    asio::io_context ioc;
    dp::redis::client admin(ioc.get_executor(), options_for(redis_));
    dp::config::redis_url url;
    EXPECT_EQ(dp::config::parse_redis_url(redis_.url(), url), std::nullopt);
    dp::worker::build_redis_users users(admin, dp::proto::keys(prefix), url);
    return dp::test::run_async(ioc, [&]() -> asio::awaitable<T> {
      T out = co_await body(users);
      admin.close();
      co_return out;
    }());
  }

  std::string open(const dp::proto::job& job) {
    return with_users<std::string>(
        [&](dp::worker::build_redis_users& users) -> asio::awaitable<std::string> {
          auto url = co_await users.open(job);
          EXPECT_TRUE(url) << (url ? "" : url.error().message);
          co_return url ? *url : std::string();
        });
  }

  // Runs `body` with records on a connection that logs in with `url`.
  template <class T>
  T as_build(const std::string& url,
             std::function<asio::awaitable<T>(dp::redis::client&, dp::state::records&)> body) {
    asio::io_context ioc;
    dp::redis::options o;
    EXPECT_EQ(dp::config::parse_redis_url(url, o.url), std::nullopt);
    o.reconnect_max = 200ms;
    dp::redis::client redis(ioc.get_executor(), o);
    dp::state::records records(redis, dp::proto::keys(prefix));
    return dp::test::run_async(ioc, [&]() -> asio::awaitable<T> {
      T out = co_await body(redis, records);
      redis.close();
      co_return out;
    }());
  }

  dp::test::redis_server redis_;
};

// What `build-runner build` does with BUILD_GO_LIVE=worker, as the deployment's user: read its
// job (the deployment and its project), move its status (without status events),
// write its log (logbook and channel), watch its cancel key and channel, leave the go-live fields.
TEST_F(BuildRedisUsers, TheUserCanDoWhatTheRunnerDoes) {
  auto job = queued("site");
  auto url = open(job);
  dp::config::redis_url parsed;
  ASSERT_EQ(dp::config::parse_redis_url(url, parsed), std::nullopt);
  EXPECT_EQ(parsed.username,
            dp::worker::build_redis_users::user_name(dp::proto::keys(prefix), job.deployment_id));
  auto done = as_build<bool>(
      url, [&](dp::redis::client& redis, dp::state::records& records) -> asio::awaitable<bool> {
        auto ex = co_await asio::this_coro::executor;
        // The job: the deployment's record and its project's (job_from_deployment).
        auto d = co_await records.get_deployment(job.deployment_id);
        EXPECT_TRUE(d) << (d ? "" : d.error().message);
        auto p = co_await records.get_project("site");
        EXPECT_TRUE(p) << (p ? "" : p.error().message);
        auto cancel = co_await records.cancel_requested(job.deployment_id);
        EXPECT_TRUE(cancel) << (cancel ? "" : cancel.error().message);
        dp::redis::options so;
        EXPECT_EQ(dp::config::parse_redis_url(url, so.url), std::nullopt);
        dp::redis::subscriber sub(ex, so);
        std::vector<std::string> channels{records.keys().cancel(job.deployment_id)};
        auto subscribed = co_await sub.subscribe(channels);
        EXPECT_TRUE(subscribed) << (subscribed ? "" : subscribed.error().message);
        for (auto to : {deployment_status::cloning, deployment_status::installing,
                        deployment_status::building, deployment_status::uploading}) {
          auto t = co_await records.transition(job.deployment_id, to, no_fields, std::nullopt);
          EXPECT_TRUE(t && t->applied) << (t ? "refused" : t.error().message);
        }
        auto seq = co_await dp::state::next_log_seq(redis, records.keys(), job.deployment_id);
        EXPECT_TRUE(seq) << (seq ? "" : seq.error().message);
        dp::state::log_writer logs(ex, redis, records.keys(), job.deployment_id, seq ? *seq : 1);
        logs.write(dp::proto::log_stream::system, "built");
        auto flushed = co_await logs.flush(std::chrono::seconds(10));
        EXPECT_TRUE(flushed) << (flushed ? "" : flushed.error().message);
        dp::proto::hash_fields go_live_fields{{"files", "1"}, {"bytes", "5"}};
        auto fields = co_await records.set_fields(job.deployment_id, go_live_fields);
        EXPECT_TRUE(fields) << (fields ? "" : fields.error().message);
        co_return true;
      });
  EXPECT_TRUE(done);

  // The worker makes it live once the container has exited 0, and deletes the user.
  auto end = with_users<dp::result<dp::worker::build_end>>(
      [&](dp::worker::build_redis_users& users)
          -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::worker::build_end exited{.exit_code = 0};
        co_return co_await users.close(job, exited);
      });
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_TRUE(end->exit_code == 0) << end->description;
  auto d = get(redis_, job.deployment_id);
  EXPECT_EQ(d.status, deployment_status::ready);
  EXPECT_TRUE(d.files == 1);
  EXPECT_EQ(cmd(redis_, {"GET", prefix + "alias:site"}), job.deployment_id);
  auto after = as_build<std::string>(
      url, [&](dp::redis::client&, dp::state::records& records) -> asio::awaitable<std::string> {
        auto r = co_await records.get_deployment(job.deployment_id);
        co_return r ? std::string("read") : r.error().message;
      });
  EXPECT_NE(after.find("WRONGPASS"), std::string::npos) << after;
}

// Nothing beyond its own deployment: another project's records, the aliases, the queue, the
// leases, any other key or channel, and the server's administration.
TEST_F(BuildRedisUsers, TheUserReachesNothingElse) {
  auto job = queued("site");
  auto other = queued("other");
  cmd(redis_, {"SET", prefix + "alias:other", other.deployment_id});
  auto queued_jobs = cmd(redis_, {"LLEN", prefix + "queue:builds"});
  auto url = open(job);
  auto refused = as_build<std::vector<std::string>>(
      url,
      [&](dp::redis::client& redis,
          dp::state::records& records) -> asio::awaitable<std::vector<std::string>> {
        std::vector<std::string> out;
        auto note = [&](std::string what, const auto& r) {
          out.push_back(what + ": " + (r ? std::string("allowed") : r.error().message));
        };
        note("other project", co_await records.get_project("other"));
        note("other deployment", co_await records.get_deployment(other.deployment_id));
        note("other status",
             co_await records.transition(other.deployment_id, deployment_status::failed, no_fields,
                                         std::string("x")));
        note("set alias", co_await records.set_alias("site", "site", job.deployment_id));
        auto own = co_await records.get_deployment(job.deployment_id);
        EXPECT_TRUE(own);
        note("go live", co_await records.go_live(*own));
        note("queue length", co_await records.queue_length());
        note("queue pop", co_await redis.exec("LPOP", prefix + "queue:builds"));
        note("lease", co_await redis.exec("GET", prefix + "lease:" + job.deployment_id));
        note("own cancel key written",
             co_await redis.exec("SET", prefix + "cancel:" + job.deployment_id, "x"));
        note("own record deleted",
             co_await redis.exec("DEL", prefix + "deployment:" + job.deployment_id));
        note("keys", co_await redis.exec("KEYS", "*"));
        note("scan", co_await redis.exec("SCAN", "0"));
        note("another build's log channel",
             co_await redis.exec("PUBLISH", prefix + "logs:" + other.deployment_id, "x"));
        // A made-up status event of another deployment, directly or from a script.
        auto forged = fmt::format(
            R"({{"v":1,"type":"status","deployment_id":"{}","project":"other","status":"failed","ts_ms":1}})",
            other.deployment_id);
        note("status event",
             co_await redis.exec("PUBLISH", records.keys().events_channel(), forged));
        note("status event from a script",
             co_await redis.exec("EVAL", "return redis.call('PUBLISH', KEYS[1], ARGV[1])", "1",
                                 records.keys().events_channel(), forged));
        note("flushall", co_await redis.exec("FLUSHALL"));
        note("config", co_await redis.exec("CONFIG", "GET", "*"));
        note("acl", co_await redis.exec("ACL", "LIST"));
        note("eval other key", co_await redis.exec("EVAL", "return redis.call('GET', KEYS[1])", "1",
                                                   prefix + "alias:other"));
        note("eval undeclared key",
             co_await redis.exec("EVAL", "return redis.call('GET', ARGV[1])", "1",
                                 prefix + "deployment:" + job.deployment_id,
                                 prefix + "alias:other"));
        co_return out;
      });
  ASSERT_EQ(refused.size(), 20u);
  for (const auto& line : refused) {
    EXPECT_EQ(line.find("allowed"), std::string::npos) << line;
    // A script's own call of an undeclared key: "ERR The user executing the script can't access".
    EXPECT_TRUE(line.find("NOPERM") != std::string::npos ||
                line.find("can't access") != std::string::npos ||
                line.find("can't publish") != std::string::npos)
        << line;
  }
  // Nothing moved.
  EXPECT_EQ(cmd(redis_, {"GET", prefix + "alias:other"}), other.deployment_id);
  EXPECT_EQ(cmd(redis_, {"LLEN", prefix + "queue:builds"}), queued_jobs);
  EXPECT_EQ(get(redis_, other.deployment_id).status, deployment_status::queued);
}

// A user left by a worker that died is deleted by a later sweep once its deployment has ended;
// a running build's user is left alone, and a new attempt replaces the old user.
TEST_F(BuildRedisUsers, SweepDeletesUsersOfEndedBuilds) {
  // What AUTH with the user and password of `url` answers.
  auto login = [&](const std::string& url) {
    dp::config::redis_url u;
    EXPECT_EQ(dp::config::parse_redis_url(url, u), std::nullopt);
    auto r = dp::test::redis_command(redis_.port(), {"AUTH", u.username, u.password});
    return r ? *r : r.error().message;
  };
  auto ended = queued("ended");
  auto running = queued("running");
  auto of_ended = open(ended);
  auto first = open(running);
  auto again = open(running);
  EXPECT_NE(login(first).find("WRONGPASS"), std::string::npos) << login(first);
  EXPECT_EQ(login(again), "OK");
  cmd(redis_, {"HSET", prefix + "deployment:" + ended.deployment_id, "status", "failed"});
  auto swept = with_users<bool>([&](dp::worker::build_redis_users& users) -> asio::awaitable<bool> {
    auto r = co_await users.sweep();
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    co_return true;
  });
  EXPECT_TRUE(swept);
  EXPECT_NE(login(of_ended).find("WRONGPASS"), std::string::npos) << login(of_ended);
  EXPECT_EQ(login(again), "OK");
}

// The user moves its status without status events (it may not publish on their channel); the
// worker publishes the final status the build recorded once the container has ended.
TEST_F(BuildRedisUsers, TheWorkerPublishesTheFinalStatusOfTheUsersBuild) {
  auto job = queued("site");
  auto url = open(job);
  auto channel = dp::proto::keys(prefix).events_channel();
  dp::test::child_process events(dp::test::process_options{
      .argv = {"redis-cli", "-p", std::to_string(redis_.port()), "SUBSCRIBE", channel}});
  // Subscribed once a PUBLISH reaches one client.
  ASSERT_TRUE(dp::test::eventually([&] {
    return cmd(redis_, {"PUBLISH", channel, "probe"}) == "1";
  }));
  auto moved = as_build<bool>(
      url, [&](dp::redis::client&, dp::state::records& records) -> asio::awaitable<bool> {
        for (auto to : {deployment_status::cloning, deployment_status::installing}) {
          auto t = co_await records.transition(job.deployment_id, to, no_fields, std::nullopt);
          EXPECT_TRUE(t && t->applied) << (t ? "refused" : t.error().message);
        }
        auto t = co_await records.transition(job.deployment_id, deployment_status::failed,
                                             no_fields, std::string("install failed: exit 1"));
        co_return t && t->applied;
      });
  ASSERT_TRUE(moved);
  EXPECT_EQ(get(redis_, job.deployment_id).status, deployment_status::failed);
  auto end = with_users<dp::result<dp::worker::build_end>>(
      [&](dp::worker::build_redis_users& users)
          -> asio::awaitable<dp::result<dp::worker::build_end>> {
        dp::worker::build_end exited{.exit_code = 1};
        co_return co_await users.close(job, exited);
      });
  ASSERT_TRUE(end) << end.error().message;
  ASSERT_TRUE(dp::test::eventually([&] {
    return events.log_text().find("\"status\":\"failed\"") != std::string::npos;
  })) << events.log_text();
  // Messages arrive in order: the final event is the only one of this deployment.
  auto log = events.log_text();
  EXPECT_EQ(log.find("\"status\":\"cloning\""), std::string::npos) << log;
  EXPECT_EQ(log.find("\"status\":\"installing\""), std::string::npos) << log;
  auto start = log.find("{\"v\"");
  ASSERT_NE(start, std::string::npos) << log;
  auto event = dp::proto::parse_status_event(log.substr(start, log.find('\n', start) - start));
  ASSERT_TRUE(event) << log;
  EXPECT_EQ(event->deployment_id, job.deployment_id);
  EXPECT_EQ(event->project, "site");
  EXPECT_EQ(event->error, "install failed: exit 1");
}

}  // namespace
