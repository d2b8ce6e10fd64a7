// The fixture of the docker launcher's tests against a real Docker Engine (the ctest fixture
// docker_engine, see dp/test/docker_engine.hpp): a real Redis, s3rver and a git repository served
// over HTTP, all on 127.0.0.1; builds run as sibling containers of the build-runner image made
// from this tree's binary, on the host's network. Skipped, with the reason, where no engine can
// run. Used by docker_engine_run.cpp and docker_hostile_run.cpp.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <functional>
#include <future>

#include "dp/core/clock.hpp"
#include "dp/http_client/client.hpp"
#include "dp/test/docker_engine.hpp"
#include "dp/worker/build_redis_users.hpp"
#include "worker_test_support.hpp"

namespace dp::worker_test {

namespace fs = std::filesystem;

class DockerEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!engine_.usable()) {
      GTEST_SKIP() << engine_.skip_reason();
    }
    // build-runner's worker mode labels its containers with its Redis and key prefix.
    scope_ = fmt::format("127.0.0.1:{}/0/{}", redis_.port(), prefix);
  }

  void TearDown() override {
    // What a failed test left behind goes, so that the fixture's stop finds nothing running.
    if (engine_.usable()) {
      for (const auto& id : engine_.containers("dp.scope=" + scope_)) {
        engine_.docker({"rm", "--force", "--volumes", id});
      }
    }
    if (git_http_) {
      git_http_->stop();
    }
  }

  // The repository as http://127.0.0.1:<port>/<name>.git (git's smart HTTP protocol).
  std::string serve(const dp::test::git_repo& repo, const std::string& name) {
    auto bare = git_root_.path() / (name + ".git");
    auto r =
        dp::test::run({"git", "clone", "--quiet", "--bare", repo.path().string(), bare.string()},
                      dp::test::git_repo::git_env());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    if (!git_http_) {
      git_http_.emplace(dp::test::process_options{
          .argv = {(dp::test::source_dir() / "tests/harness/git-http.py").string(),
                   git_root_.path().string()}});
      git_port_ = dp::test::reported_port(*git_http_);
    }
    return fmt::format("http://127.0.0.1:{}/{}.git", git_port_, name);
  }

  // A queued deployment of `git_url` of a new project "site", or of the project and job as
  // `adjust` leaves them (name, build settings, time limit). Returns its job.
  using adjust_fn = std::function<void(dp::proto::project&, dp::proto::job&)>;
  dp::proto::job enqueue(const std::string& git_url, const adjust_fn& adjust = {}) {
    return run_sync<dp::proto::job>(
        redis_, [&](dp::state::records& records) -> asio::awaitable<dp::proto::job> {
          dp::proto::project p;
          p.name = "site";
          p.git_url = git_url;
          p.created_at = dp::now_ms();
          dp::proto::job j;
          j.timeout_s = 600;
          j.attempt = 1;
          if (adjust) {
            adjust(p, j);
          }
          auto made = co_await records.create_project(p);
          EXPECT_TRUE(made) << (made ? "" : made.error().message);
          dp::proto::deployment d;
          d.id = dp::new_deployment_id();
          d.project = p.name;
          d.git_url = git_url;
          d.created_at = dp::now_ms();
          j.deployment_id = d.id;
          j.project = d.project;
          j.git_url = git_url;
          j.root_dir = p.root_dir;
          j.install_command = p.install_command;
          j.build_command = p.build_command;
          j.output_dir = p.output_dir;
          j.env = p.env;
          j.enqueued_at = d.created_at;
          auto ok = co_await records.create_deployment(d, j);
          EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
          co_return j;
        });
  }

  // What the build inside the container needs (build-runner's worker mode hands over the same).
  dp::config::environment build_env() const {
    return {{"REDIS_URL", redis_.url()},
            {"REDIS_PREFIX", prefix},
            {"STORAGE_URL", s3_.storage_url()},
            {"AWS_ACCESS_KEY_ID", dp::test::s3rver::access_key()},
            {"AWS_SECRET_ACCESS_KEY", dp::test::s3rver::secret_key()},
            {"AWS_REGION", "us-east-1"},
            {"SANDBOX", "none"},
            {"ALLOWED_GIT_PROTOCOLS", "http"},
            {"BUILD_TIMEOUT_S", "600"},
            {"BUILD_MEMORY_MB", "512"},
            {"BUILD_PIDS_MAX", "300"}};
  }

  // `build-runner worker` with the docker launcher, as deployments run it.
  std::unique_ptr<dp::test::child_process> start_worker(const std::string& id) {
    auto env = build_env();
    env.insert({{"LAUNCHER", "docker"},
                {"DOCKER_SOCKET", engine_.socket()},
                {"DOCKER_NETWORK", "host"},
                {"BUILD_IMAGE", dp::test::docker_engine::build_runner_image},
                {"WORKER_ID", id},
                {"WORKER_CONCURRENCY", "1"},
                {"LEASE_TTL_S", "5"},
                {"WORKER_DRAIN_S", "0"}});
    return std::make_unique<dp::test::child_process>(dp::test::process_options{
        .argv = {DP_BUILD_RUNNER, "worker"}, .env = {env.begin(), env.end()}});
  }

  // The launcher in this process, on an io_context of its own thread, as the worker runs it: each
  // build with a Redis user of its own (build_redis_users) made through `admin`.
  struct direct_run {
    asio::io_context ioc;
    dp::http_client::client http{ioc.get_executor()};
    dp::redis::client admin;
    dp::worker::build_redis_users users;
    std::unique_ptr<dp::worker::launcher> launcher;
    dp::worker::stop_flag stop{ioc.get_executor()};
    std::future<dp::result<dp::worker::build_end>> end;
    std::thread thread;

    direct_run(dp::worker::docker_launcher_options o, const dp::proto::job& job,
               const dp::test::redis_server& redis)
        : admin(ioc.get_executor(), options_for(redis)),
          users(admin, dp::proto::keys(prefix), admin_url(redis)),
          launcher(dp::worker::make_docker_launcher(http, std::move(o), &users)) {
      end = asio::co_spawn(ioc, launcher->run(job, stop), asio::use_future);
      thread = std::thread([this] { ioc.run(); });
    }
    ~direct_run() {
      asio::post(ioc, [this] {
        stop.request();
        admin.close();
      });
      thread.join();
    }

    static dp::config::redis_url admin_url(const dp::test::redis_server& redis) {
      dp::config::redis_url url;
      EXPECT_EQ(dp::config::parse_redis_url(redis.url(), url), std::nullopt);
      return url;
    }
  };

  dp::worker::docker_launcher_options launcher_options() const {
    dp::worker::docker_launcher_options o;
    o.socket = engine_.socket();
    o.image = dp::test::docker_engine::build_runner_image;
    o.env = build_env();
    o.worker_id = "direct";
    o.scope = scope_;
    o.network_mode = "host";
    return o;
  }

  // Through the records: redis_ has a password, which has_status's plain probe does not send.
  bool status_is(const std::string& id, dp::proto::deployment_status s) const {
    return get(redis_, id).status == s;
  }

  bool container_running(const std::string& deployment) const {
    auto r = engine_.docker({"ps", "--quiet", "--filter", "label=dp.deployment=" + deployment});
    return r.exit_code == 0 && !r.output.empty();
  }

  dp::test::docker_engine engine_ = dp::test::docker_engine::from_environment();
  // With a password, as deploy/local/run.sh and compose give the platform's Redis: the build
  // container's own user is all its runner gets, and the build itself holds nothing.
  dp::test::redis_server redis_{dp::random_hex(16)};
  dp::test::s3rver s3_;
  dp::test::temp_dir git_root_{"dp-git-http"};
  std::uint16_t git_port_ = 0;
  std::optional<dp::test::child_process> git_http_;
  std::string scope_;
};

}  // namespace dp::worker_test
