// The docker launcher against a real Docker Engine (the ctest fixture docker_engine, see
// dp/test/docker_engine.hpp): builds run as sibling containers of the build-runner image made from
// this tree's binary, on the host's network, against a real Redis, s3rver and a git repository
// served over HTTP, all on 127.0.0.1. Skipped, with the reason, where no engine can run.
#include <signal.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include <future>

#include "dp/http_client/client.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/test/docker_engine.hpp"
#include "worker_test_support.hpp"

namespace {

using namespace dp::worker_test;
namespace fs = std::filesystem;

// A site whose build reports what it sees of its container: the cgroup limits, the privileges.
// With a file named "hang" in the repository the build never ends.
const std::map<std::string, dp::test::git_file> site = {
    {"package.json", R"({"name":"app","version":"1.0.0","scripts":{"build":"node build.js"}})"},
    {"build.js", R"JS(const fs = require('fs');
const read = (...paths) => {
  for (const p of paths) { try { return fs.readFileSync(p, 'utf8').trim(); } catch (e) {} }
  return 'unreadable';
};
const status = fs.readFileSync('/proc/self/status', 'utf8');
const field = (name) => (status.match(new RegExp('^' + name + ':\\s*(\\S+)', 'm')) || [])[1];
fs.mkdirSync('dist');
fs.writeFileSync('dist/index.html', '<h1>built in a container</h1>');
fs.writeFileSync('dist/seen.txt', [
  'memory=' + read('/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory.max'),
  'pids=' + read('/sys/fs/cgroup/pids/pids.max', '/sys/fs/cgroup/pids.max'),
  'no_new_privs=' + field('NoNewPrivs'),
  'cap_bnd=' + field('CapBnd'),
  'cap_eff=' + field('CapEff'),
].join('\n') + '\n');
if (fs.existsSync('hang')) { console.log('hanging'); setInterval(() => {}, 1000); }
)JS"},
};

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
      git_port_ = dp::test::free_port();
      git_http_.emplace(dp::test::process_options{
          .argv = {(dp::test::source_dir() / "tests/harness/git-http.py").string(),
                   git_root_.path().string(), std::to_string(git_port_)}});
      EXPECT_TRUE(dp::test::wait_for_tcp("127.0.0.1", git_port_, 10s));
    }
    return fmt::format("http://127.0.0.1:{}/{}.git", git_port_, name);
  }

  // A queued deployment of `git_url`. Returns its job.
  dp::proto::job enqueue(const std::string& git_url) {
    return run_sync<dp::proto::job>(
        redis_, [&](dp::state::records& records) -> asio::awaitable<dp::proto::job> {
          dp::proto::project p;
          p.name = "site";
          p.git_url = git_url;
          p.created_at = dp::state::now_ms();
          auto made = co_await records.create_project(p);
          EXPECT_TRUE(made) << (made ? "" : made.error().message);
          dp::proto::deployment d;
          d.id = dp::new_deployment_id();
          d.project = "site";
          d.git_url = git_url;
          d.created_at = dp::state::now_ms();
          dp::proto::job j;
          j.deployment_id = d.id;
          j.project = d.project;
          j.git_url = git_url;
          j.timeout_s = 600;
          j.attempt = 1;
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

  // The launcher in this process, on an io_context of its own thread.
  struct direct_run {
    asio::io_context ioc;
    dp::http_client::client http{ioc.get_executor()};
    std::unique_ptr<dp::worker::launcher> launcher;
    dp::worker::stop_flag stop{ioc.get_executor()};
    std::future<dp::result<dp::worker::build_end>> end;
    std::thread thread;

    direct_run(dp::worker::docker_launcher_options o, const dp::proto::job& job)
        : launcher(dp::worker::make_docker_launcher(http, std::move(o))) {
      end = asio::co_spawn(ioc, launcher->run(job, stop), asio::use_future);
      thread = std::thread([this] { ioc.run(); });
    }
    ~direct_run() {
      asio::post(ioc, [this] { stop.request(); });
      thread.join();
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

  bool container_running(const std::string& deployment) const {
    auto r = engine_.docker({"ps", "--quiet", "--filter", "label=dp.deployment=" + deployment});
    return r.exit_code == 0 && !r.output.empty();
  }

  dp::test::docker_engine engine_ = dp::test::docker_engine::from_environment();
  dp::test::redis_server redis_;
  dp::test::s3rver s3_;
  dp::test::temp_dir git_root_{"dp-git-http"};
  std::uint16_t git_port_ = 0;
  std::optional<dp::test::child_process> git_http_;
  std::string scope_;
};

TEST_F(DockerEngine, BuildRunsInASiblingContainerWithItsLimitsAndIsPublished) {
  dp::test::git_repo repo(site);
  auto job = enqueue(serve(repo, "site"));
  auto worker = start_worker("w1");
  ASSERT_TRUE(eventually(
      [&] {
        return has_status(redis_, job.deployment_id, "ready") ||
               has_status(redis_, job.deployment_id, "failed");
      },
      300s));
  ASSERT_TRUE(has_status(redis_, job.deployment_id, "ready"))
      << get(redis_, job.deployment_id).error.value_or("") << "\n"
      << worker->log_text();

  // Published to storage, as the proxy serves it.
  auto key = dp::proto::output_key(job.deployment_id, "seen.txt");
  auto seen = dp::test::http_request(s3_.port(), "GET", "/test/" + key);
  ASSERT_TRUE(seen) << seen.error().message;
  ASSERT_EQ(seen->status, 200) << seen->body;
  // BUILD_MEMORY_MB and BUILD_PIDS_MAX are the container's limits, seen from inside.
  EXPECT_NE(seen->body.find("memory=" + std::to_string(512 << 20) + "\n"), std::string::npos)
      << seen->body;
  EXPECT_NE(seen->body.find("pids=300\n"), std::string::npos) << seen->body;
  // no-new-privileges, and every capability dropped (the bounding set too).
  EXPECT_NE(seen->body.find("no_new_privs=1\n"), std::string::npos) << seen->body;
  EXPECT_NE(seen->body.find("cap_bnd=0000000000000000\n"), std::string::npos) << seen->body;
  EXPECT_NE(seen->body.find("cap_eff=0000000000000000\n"), std::string::npos) << seen->body;
  auto index = dp::test::http_request(
      s3_.port(), "GET", "/test/" + dp::proto::output_key(job.deployment_id, "index.html"));
  ASSERT_TRUE(index) << index.error().message;
  EXPECT_EQ(index->body, "<h1>built in a container</h1>");

  // The container and its volumes are removed once the build has ended.
  EXPECT_TRUE(eventually([&] { return engine_.containers("dp.scope=" + scope_).empty(); }, 60s));
  EXPECT_EQ(engine_.volumes(), std::vector<std::string>{});
  worker->stop(std::chrono::seconds(30));
}

TEST_F(DockerEngine, StopKillsAndRemovesTheContainer) {
  dp::test::git_repo repo(site);
  repo.commit({{"hang", ""}}, "never ends");
  auto job = enqueue(serve(repo, "hang"));
  direct_run run(launcher_options(), job);
  ASSERT_TRUE(eventually([&] { return has_status(redis_, job.deployment_id, "building"); }, 300s));
  ASSERT_TRUE(container_running(job.deployment_id));
  asio::post(run.ioc, [&] { run.stop.request(); });
  auto end = run.end.get();
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_TRUE(end->stopped);
  // Gone by the time the launcher says it has stopped the build.
  EXPECT_EQ(engine_.containers("dp.deployment=" + job.deployment_id), std::vector<std::string>{});
}

TEST_F(DockerEngine, LauncherTimeoutRemovesTheContainer) {
  dp::test::git_repo repo(site);
  repo.commit({{"hang", ""}}, "never ends");
  // The build itself would wait 600 s (its job in Redis); the launcher is told 1 s, no margin.
  auto job = enqueue(serve(repo, "hang"));
  job.timeout_s = 1;
  auto o = launcher_options();
  o.timeout_margin = std::chrono::seconds(0);
  direct_run run(o, job);
  auto end = run.end.get();
  EXPECT_FALSE(end && end->exit_code == 0);
  EXPECT_EQ(engine_.containers("dp.deployment=" + job.deployment_id), std::vector<std::string>{});
}

TEST_F(DockerEngine, NextWorkerRemovesTheContainerOfAKilledWorker) {
  dp::test::git_repo repo(site);
  repo.commit({{"hang", ""}}, "never ends");
  auto job = enqueue(serve(repo, "hang"));
  auto first = start_worker("w1");
  ASSERT_TRUE(eventually([&] { return container_running(job.deployment_id); }, 300s))
      << first->log_text();
  auto orphans = engine_.containers("dp.deployment=" + job.deployment_id);
  ASSERT_EQ(orphans.size(), 1u);
  // Labelled with the worker's scope (its Redis and key prefix), which its clean-up looks in.
  EXPECT_EQ(engine_.containers("dp.scope=" + scope_), orphans);
  first->signal(SIGKILL);
  first->wait();
  // Nobody removes it while no worker runs.
  EXPECT_EQ(engine_.containers("dp.deployment=" + job.deployment_id), orphans);

  // The next worker finds it once the dead worker's lease has lapsed, and removes it.
  auto second = start_worker("w2");
  EXPECT_TRUE(eventually(
      [&] {
        auto now = engine_.containers("dp.deployment=" + job.deployment_id);
        return std::find(now.begin(), now.end(), orphans[0]) == now.end();
      },
      120s))
      << second->log_text();
  second->stop(std::chrono::seconds(30));
}

}  // namespace
