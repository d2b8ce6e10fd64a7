// The docker launcher against a real Docker Engine (the fixture is docker_engine_support.hpp):
// builds run as sibling containers of the build-runner image made from this tree's binary, on the
// host's network, against a real Redis, s3rver and a git repository served over HTTP, all on
// 127.0.0.1. Skipped, with the reason, where no engine can run.
#include <signal.h>

#include "docker_engine_support.hpp"
#include "dp/core/clock.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/state/logbook.hpp"
#include "fake_sts.hpp"

namespace {

using namespace dp::worker_test;

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

TEST_F(DockerEngine, BuildRunsInASiblingContainerWithItsLimitsAndIsPublished) {
  dp::test::git_repo repo(site);
  auto job = enqueue(serve(repo, "site"));
  auto worker = start_worker("w1");
  ASSERT_TRUE(eventually(
      [&] {
        return status_is(job.deployment_id, dp::proto::deployment_status::ready) ||
               status_is(job.deployment_id, dp::proto::deployment_status::failed);
      },
      300s));
  ASSERT_TRUE(status_is(job.deployment_id, dp::proto::deployment_status::ready))
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

// With a build role (BUILD_STORAGE_ROLE_ARN), the container holds the temporary keys the worker
// got from STS (a stand-in on 127.0.0.1), never the worker's own; s3rver knows only the temporary
// ones here, so the upload itself shows which keys the runner signed with.
TEST_F(DockerEngine, BuildSignsWithTemporaryKeysOfItsOwnDeployment) {
  fake_sts sts(dp::test::s3rver::access_key(), dp::test::s3rver::secret_key());
  dp::test::git_repo repo(site);
  repo.commit({{"wait.sh", "until [ -e /tmp/go ]; do sleep 0.1; done; node build.js\n"}},
              "waits for the test");
  auto job = enqueue(serve(repo, "keys"), [](dp::proto::project& p, dp::proto::job&) {
    p.build_command = "sh wait.sh";
  });
  auto o = launcher_options();
  o.env["AWS_ACCESS_KEY_ID"] = "AKIDPLATFORM";
  o.env["AWS_SECRET_ACCESS_KEY"] = "platform-secret";
  o.storage_role = dp::worker::build_storage_role{
      .role_arn = "arn:aws:iam::123456789012:role/dp-build",
      .sts_endpoint = sts.endpoint(),
      .region = "us-east-1",
      .credentials = {"AKIDPLATFORM", "platform-secret", "", "us-east-1"},
      .bucket = "test"};
  direct_run run(o, job, redis_);
  std::vector<std::string> running;
  ASSERT_TRUE(eventually(
      [&] {
        running = engine_.containers("dp.deployment=" + job.deployment_id);
        return !running.empty();
      },
      120s));
  auto env = engine_.docker({"inspect", "--format", "{{json .Config.Env}}", running[0]});
  ASSERT_EQ(env.exit_code, 0) << env.output;
  EXPECT_NE(env.output.find("\"AWS_SESSION_TOKEN=token-for-dp-build-" + job.deployment_id + "\""),
            std::string::npos)
      << env.output;
  EXPECT_NE(env.output.find("\"AWS_ACCESS_KEY_ID=S3RVER\""), std::string::npos) << env.output;
  EXPECT_EQ(env.output.find("AKIDPLATFORM"), std::string::npos) << env.output;
  EXPECT_EQ(env.output.find("platform-secret"), std::string::npos) << env.output;
  auto go = engine_.docker({"exec", running[0], "touch", "/tmp/go"});
  ASSERT_EQ(go.exit_code, 0) << go.output;
  auto end = run.end.get();
  ASSERT_TRUE(end) << end.error().message;
  EXPECT_EQ(end->exit_code, 0) << end->description;
  EXPECT_TRUE(status_is(job.deployment_id, dp::proto::deployment_status::ready))
      << get(redis_, job.deployment_id).error.value_or("");
  auto index = dp::test::http_request(
      s3_.port(), "GET", "/test/" + dp::proto::output_key(job.deployment_id, "index.html"));
  ASSERT_TRUE(index) << index.error().message;
  EXPECT_EQ(index->status, 200) << index->body;
  // One AssumeRole, for this deployment.
  auto requests = sts.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].at("form").at("RoleSessionName").as_string(),
            "dp-build-" + job.deployment_id);
}

TEST_F(DockerEngine, StopKillsAndRemovesTheContainer) {
  dp::test::git_repo repo(site);
  repo.commit({{"hang", ""}}, "never ends");
  auto job = enqueue(serve(repo, "hang"));
  direct_run run(launcher_options(), job, redis_);
  ASSERT_TRUE(eventually(
      [&] { return status_is(job.deployment_id, dp::proto::deployment_status::building); }, 300s));
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
  direct_run run(o, job, redis_);
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

namespace {

// The build cache from inside containers (SANDBOX=none): the first build's npm cache directory is
// packed in its container and stored in s3rver; the next build of the project, in a new
// container, restores it before its install runs.
TEST_F(DockerEngine, ContainerBuildsShareTheBuildCacheThroughTheStore) {
  const std::map<std::string, dp::test::git_file> files = {{"index.html", "<h1>cached</h1>"}};
  dp::test::git_repo repo(files);
  auto url = serve(repo, "cached");
  // The install finds what the last one left in npm's cache directory, and leaves a mark there.
  auto first = enqueue(url, [](dp::proto::project& p, dp::proto::job&) {
    p.install_command =
        "mkdir -p \"$npm_config_cache\" && cat \"$npm_config_cache/mark\" 2>/dev/null; "
        "echo from-the-cache > \"$npm_config_cache/mark\"";
    p.build_command = "";
  });
  auto worker = start_worker("w-cache");
  auto ended = [&](const std::string& id) {
    return eventually(
        [&] {
          return status_is(id, dp::proto::deployment_status::ready) ||
                 status_is(id, dp::proto::deployment_status::failed);
        },
        300s);
  };
  ASSERT_TRUE(ended(first.deployment_id));
  auto d1 = get(redis_, first.deployment_id);
  ASSERT_EQ(d1.status, dp::proto::deployment_status::ready) << d1.error.value_or("") << "\n"
                                                            << worker->log_text();
  EXPECT_EQ(d1.cache, "miss");
  EXPECT_GT(d1.cache_bytes.value_or(0), 0);

  // A second deployment of the same project.
  auto second = run_sync<dp::proto::job>(
      redis_, [&](dp::state::records& records) -> asio::awaitable<dp::proto::job> {
        dp::proto::deployment d;
        d.id = dp::new_deployment_id();
        d.project = "site";
        d.git_url = url;
        d.created_at = dp::now_ms();
        auto j = first;
        j.deployment_id = d.id;
        j.enqueued_at = d.created_at;
        auto ok = co_await records.create_deployment(d, j);
        EXPECT_TRUE(ok) << (ok ? "" : ok.error().message);
        co_return j;
      });
  ASSERT_TRUE(ended(second.deployment_id));
  auto d2 = get(redis_, second.deployment_id);
  ASSERT_EQ(d2.status, dp::proto::deployment_status::ready) << d2.error.value_or("");
  EXPECT_EQ(d2.cache, "partial");
  // The install printed what the first build left.
  auto log = run_sync<std::string>(
      redis_, [&](dp::state::records& records) -> asio::awaitable<std::string> {
        auto events = co_await dp::state::read_logbook(records.redis(), records.keys(),
                                                       second.deployment_id, 0, 10000);
        std::string text;
        if (events) {
          for (const auto& e : *events) {
            text += e.line + "\n";
          }
        }
        co_return text;
      });
  EXPECT_NE(log.find("from-the-cache"), std::string::npos) << log;
  EXPECT_NE(log.find("cache: restored store"), std::string::npos) << log;
  worker->stop(std::chrono::seconds(30));
}

}  // namespace
