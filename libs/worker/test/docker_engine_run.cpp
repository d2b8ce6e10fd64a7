// The docker launcher against a real Docker Engine (the fixture is docker_engine_support.hpp):
// builds run as sibling containers of the build-runner image made from this tree's binary, on the
// host's network, against a real Redis, s3rver and a git repository served over HTTP, all on
// 127.0.0.1. Skipped, with the reason, where no engine can run.
#include <signal.h>

#include "docker_engine_support.hpp"
#include "dp/proto/storage_layout.hpp"

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
