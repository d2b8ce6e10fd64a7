// The build-runner binary's build mode: its three job sources and its exit codes.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace fs = std::filesystem;

fs::path runner_binary() {
  return DP_BUILD_RUNNER;
}

const std::map<std::string, dp::test::git_file> site = {
    {"package.json", R"({"name":"app","version":"1.0.0","scripts":{"build":"node build.js"}})"},
    {"build.js",
     "require('fs').mkdirSync('dist');require('fs').writeFileSync('dist/index.html','hi');"},
};

class RunnerCli : public ::testing::Test {
 protected:
  dp::test::run_result run(std::vector<std::string> args, std::map<std::string, std::string> env) {
    args.insert(args.begin(), runner_binary().string());
    env.emplace("STORAGE_URL", "file://" + storage_.path().string());
    env.emplace("ALLOWED_GIT_PROTOCOLS", "file");
    env.emplace("REDIS_URL", "");
    env.emplace("TMPDIR", work_.path().string());
    return dp::test::run(std::move(args), std::move(env), {}, std::chrono::seconds(120));
  }

  // A new deployment's job for `repo`, written where `--job` reads it.
  std::pair<dp::proto::job, fs::path> job_file(const dp::test::git_repo& repo) {
    dp::proto::job j;
    j.deployment_id = dp::new_deployment_id();
    j.project = "shop";
    j.git_url = repo.url();
    j.timeout_s = 120;
    auto file = work_.path() / "job.json";
    std::ofstream(file) << dp::proto::to_json(j);
    return {j, file};
  }

  dp::test::temp_dir storage_{"dp-cli-storage"};
  dp::test::temp_dir work_{"dp-cli-work"};
};

TEST_F(RunnerCli, JobFileWithoutRedisLogsToStdout) {
  dp::test::git_repo repo(site);
  auto [j, file] = job_file(repo);
  auto r = run({"build", "--job", file.string()}, {{"LOG_FORMAT", "json"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"deployment_id\":\"" + j.deployment_id + "\""), std::string::npos);
  EXPECT_NE(r.output.find("deployment ready"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(storage_.path() / dp::proto::output_key(j.deployment_id, "index.html")));
  EXPECT_TRUE(fs::exists(storage_.path() / dp::proto::manifest_key(j.deployment_id)));
}

TEST_F(RunnerCli, OriginalDesignEnvironmentWithRedis) {
  dp::test::redis_server redis;
  dp::test::git_repo repo(site);
  auto r = run({"build"}, {{"REDIS_URL", redis.url()},
                           {"REDIS_PREFIX", "c:"},
                           {"GIT_REPOSITORY_URL", repo.url()},
                           {"PROJECT_ID", "shop"}});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto alias = dp::test::redis_command(redis.port(), {"GET", "c:alias:shop"});
  ASSERT_TRUE(alias) << alias.error().message;
  EXPECT_TRUE(dp::is_deployment_id(*alias));
  auto status = dp::test::redis_command(redis.port(), {"HGET", "c:deployment:" + *alias, "status"});
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(*status, "ready");
  EXPECT_TRUE(fs::exists(storage_.path() / dp::proto::manifest_key(*alias)));
}

TEST_F(RunnerCli, FailedBuildExitsOne) {
  std::map<std::string, dp::test::git_file> files = {
      {"package.json", R"({"scripts":{"build":"exit 7"}})"}};
  dp::test::git_repo repo(files);
  auto r = run({"build"}, {{"GIT_REPOSITORY_URL", repo.url()}, {"PROJECT_ID", "shop"}});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("build failed"), std::string::npos) << r.output;
}

// Lines that are not log records ("2026-...Z info  redis connected ..."): what a person reads.
int error_lines(const std::string& output) {
  std::istringstream in(output);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    bool log_record = line.size() > 25 && line[4] == '-' && line[10] == 'T' && line[23] == 'Z';
    n += log_record ? 0 : 1;
  }
  return n;
}

// Redis that never answers is an infrastructure failure: exit 3 (worth another attempt), not 1.
TEST_F(RunnerCli, UnreachableRedisExitsThree) {
  dp::test::git_repo repo(site);
  auto [j, file] = job_file(repo);
  auto closed = fmt::format("redis://127.0.0.1:{}", dp::test::free_port());
  auto r = run({"build", "--job", file.string()}, {{"REDIS_URL", closed}});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("unavailable"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(storage_.path() / dp::proto::manifest_key(j.deployment_id)));
}

TEST_F(RunnerCli, BadInputExitsTwoWithOneLine) {
  dp::test::redis_server redis;
  auto bad_json = work_.path() / "bad.json";
  std::ofstream(bad_json) << R"({"v":1,"deployment_id":"nope"})";
  std::vector<std::pair<std::vector<std::string>, std::map<std::string, std::string>>> cases = {
      {{"build"}, {}},                                                     // no source
      {{"build", "--job", bad_json.string()}, {}},                         // invalid job
      {{"build", "--job", (work_.path() / "missing.json").string()}, {}},  // unreadable
      {{"build"}, {{"GIT_REPOSITORY_URL", "file:///x"}}},                  // no PROJECT_ID
      {{"build"}, {{"GIT_REPOSITORY_URL", "ssh://h/x"}, {"PROJECT_ID", "shop"}}},
      {{"build"}, {{"GIT_REPOSITORY_URL", "file:///x"}, {"PROJECT_ID", "my.site"}}},
      {{"build"}, {{"GIT_REPOSITORY_URL", "file:///x"}, {"PROJECT_ID", std::string(55, 'a')}}},
      {{"build", "--deployment", "bad"}, {{"REDIS_URL", redis.url()}}},
      {{"build", "--deployment", dp::new_deployment_id()}, {}},  // needs Redis
      {{"build", "--deployment", dp::new_deployment_id()}, {{"REDIS_URL", redis.url()}}},
      {{"deploy"}, {}},
  };
  for (auto& [args, env] : cases) {
    auto r = run(args, env);
    EXPECT_EQ(r.exit_code, 2) << args.back() << ": " << r.output;
    EXPECT_EQ(error_lines(r.output), 1) << "one error line: " << r.output;
  }
}

// A worker whose builds run in containers refuses settings those containers cannot reach.
TEST_F(RunnerCli, ContainerLauncherNeedsReachableRedisAndStorage) {
  std::map<std::string, std::string> keys{{"AWS_ACCESS_KEY_ID", "k"},
                                          {"AWS_SECRET_ACCESS_KEY", "s"}};
  auto file_store = keys;
  file_store.insert({{"LAUNCHER", "docker"},
                     {"REDIS_URL", "redis://redis:6379"},
                     {"STORAGE_URL", "file:///srv/sites"}});
  auto r = run({"worker"}, file_store);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot write the worker's file store"), std::string::npos) << r.output;

  auto loopback = keys;
  loopback.insert({{"LAUNCHER", "docker"},
                   {"REDIS_URL", "redis://127.0.0.1:6379"},
                   {"STORAGE_URL", "s3://sites?endpoint=http://minio:9000&region=us-east-1"}});
  r = run({"worker"}, loopback);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("DOCKER_NETWORK=host"), std::string::npos) << r.output;
  EXPECT_EQ(error_lines(r.output), 1) << r.output;
}

// Whatever the runner mounted for the build (its work filesystem on a loop device) under `dir`.
std::vector<std::string> mounts_and_loops_under(const fs::path& dir) {
  std::vector<std::string> found;
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    if (line.find(dir.string()) != std::string::npos) {
      found.push_back("mount: " + line);
    }
  }
  std::error_code ec;
  for (const auto& dev : fs::directory_iterator("/sys/block", ec)) {
    std::ifstream backing(dev.path() / "loop" / "backing_file");
    std::string file;
    if (std::getline(backing, file) && file.find(dir.string()) != std::string::npos) {
      found.push_back("loop device: " + dev.path().filename().string() + " " + file);
    }
  }
  return found;
}

// A runner killed with SIGKILL mid-build (a worker's hard stop, an OOM kill) runs no clean-up: its
// work filesystem must still not outlive it, so it lives in the runner's own mount namespace.
TEST_F(RunnerCli, KilledRunnerLeavesNoMountBehind) {
  if (::geteuid() != 0 || !fs::exists("/dev/loop-control")) {
    GTEST_SKIP() << "the work filesystem needs a root runner and loop devices";
  }
  const std::map<std::string, dp::test::git_file> sleeper = {
      {"package.json", R"({"name":"app","version":"1.0.0","scripts":{"build":"sleep 30"}})"}};
  dp::test::git_repo repo(sleeper);
  auto [j, file] = job_file(repo);
  dp::test::process_options po;
  po.argv = {runner_binary().string(), "build", "--job", file.string()};
  po.env = {{"STORAGE_URL", "file://" + storage_.path().string()},
            {"ALLOWED_GIT_PROTOCOLS", "file"},
            {"REDIS_URL", ""},
            {"TMPDIR", work_.path().string()}};
  dp::test::child_process runner(po);
  // The build runs once `npm run build` has started: the work filesystem is mounted by then.
  dp::test::eventually(
      [&] {
        return !runner.running() ||
               runner.log_text().find("running `npm run build`") != std::string::npos;
      },
      std::chrono::minutes(2));
  ASSERT_NE(runner.log_text().find("running `npm run build`"), std::string::npos)
      << runner.log_text();
  ASSERT_NE(runner.log_text().find("an ext4 filesystem"), std::string::npos) << runner.log_text();
  // Mounted in the runner's namespace, not in ours (loop devices are global: only mounts count).
  for (const auto& m : mounts_and_loops_under(work_.path())) {
    EXPECT_FALSE(m.starts_with("mount:")) << m;
  }
  runner.signal(SIGKILL);
  runner.wait();
  // Its mounts were never in our namespace, and they go with the runner's: nothing is left for
  // anyone to unmount. (The loop device is freed when the last process of that namespace ends;
  // under load a sandbox has been seen to outlive its killed runner for a while, see security.md.)
  for (const auto& m : mounts_and_loops_under(work_.path())) {
    EXPECT_FALSE(m.starts_with("mount:")) << m;
  }
}

}  // namespace
