// `build-runner sweep`: what a runner killed with SIGKILL leaves behind (its build's cgroup with
// processes still in it, its work directory and image) is killed and removed, and a live
// runner's build beside it is left alone.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dp/core/id.hpp"
#include "dp/proto/json.hpp"
#include "dp/runner/cgroup.hpp"
#include "dp/runner/sweep.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"
#include "dp/worker/launcher.hpp"

namespace {

namespace fs = std::filesystem;

const std::map<std::string, dp::test::git_file> sleeper = {
    {"package.json", R"({"name":"app","version":"1.0.0","scripts":{"build":"sleep 600"}})"}};

std::vector<pid_t> procs_of(const fs::path& cgroup) {
  std::vector<pid_t> pids;
  std::ifstream in(cgroup / "cgroup.procs");
  for (pid_t p = 0; in >> p;) {
    pids.push_back(p);
  }
  return pids;
}

class RunnerSweep : public ::testing::Test {
 protected:
  std::map<std::string, std::string> env() const {
    return {{"STORAGE_URL", "file://" + storage_.path().string()},
            {"ALLOWED_GIT_PROTOCOLS", "file"},
            {"REDIS_URL", ""},
            {"BUILD_MEMORY_MB", "512"},
            {"BUILD_PIDS_MAX", "256"},
            {"TMPDIR", work_.path().string()}};
  }

  // A runner whose build sleeps, once the build runs; `name` is its work directory's (and its
  // cgroup's) name.
  std::unique_ptr<dp::test::child_process> start_build(std::string& name) {
    dp::proto::job j;
    j.deployment_id = dp::new_deployment_id();
    j.project = "shop";
    j.git_url = repo_.url();
    j.timeout_s = 600;
    auto file = jobs_.path() / (j.deployment_id + ".json");
    std::ofstream(file) << dp::proto::to_json(j);
    dp::test::process_options po;
    po.argv = {DP_BUILD_RUNNER, "build", "--job", file.string()};
    po.env = env();
    auto runner = std::make_unique<dp::test::child_process>(po);
    dp::test::eventually(
        [&] {
          return !runner->running() ||
                 runner->log_text().find("running `npm run build`") != std::string::npos;
        },
        std::chrono::minutes(2));
    EXPECT_NE(runner->log_text().find("running `npm run build`"), std::string::npos)
        << runner->log_text();
    for (const auto& e : fs::directory_iterator(work_.path())) {
      auto n = e.path().filename().string();
      if (e.is_directory() && n.starts_with("dp-build-" + j.deployment_id + "-")) {
        name = n;
      }
    }
    return runner;
  }

  std::vector<fs::path> cgroup_dirs(const std::string& name) const {
    std::vector<fs::path> dirs;
    for (const auto& parent : dp::runner::build_cgroup_parents()) {
      dirs.push_back(parent / name);
    }
    return dirs;
  }

  dp::test::run_result sweep() {
    return dp::test::run({DP_BUILD_RUNNER, "sweep"}, env(), {}, std::chrono::seconds(60));
  }

  dp::test::git_repo repo_{sleeper};
  dp::test::temp_dir storage_{"dp-sweep-storage"};
  dp::test::temp_dir work_{"dp-sweep-work"};
  dp::test::temp_dir jobs_{"dp-sweep-jobs"};
};

TEST_F(RunnerSweep, RemovesWhatAKilledRunnerLeftAndKeepsALiveBuild) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "a build's cgroup needs a root runner";
  }
  std::string dead_name;
  std::string live_name;
  auto dead = start_build(dead_name);
  ASSERT_FALSE(dead_name.empty());
  if (dead->log_text().find("limits are not enforced") != std::string::npos) {
    GTEST_SKIP() << "no cgroup can be made here: " << dead->log_text();
  }
  auto live = start_build(live_name);
  ASSERT_FALSE(live_name.empty());
  auto dead_cg = cgroup_dirs(dead_name);
  auto live_cg = cgroup_dirs(live_name);
  ASSERT_FALSE(dead_cg.empty());
  for (const auto& d : dead_cg) {
    ASSERT_TRUE(fs::is_directory(d)) << d;
  }
  ASSERT_TRUE(dp::test::eventually([&] { return !procs_of(live_cg[0]).empty(); }));

  // A process that outlives the runner in its build's cgroup, as a sandbox has been seen to
  // under load (--die-with-parent usually ends the build's own processes with the runner).
  dp::test::child_process left({.argv = {"sleep", "600"}});
  for (const auto& d : dead_cg) {
    std::ofstream(d / "cgroup.procs") << left.pid();
  }
  ASSERT_TRUE(dp::test::eventually([&] {
    auto pids = procs_of(dead_cg[0]);
    return std::find(pids.begin(), pids.end(), left.pid()) != pids.end();
  }));
  dead->signal(SIGKILL);
  dead->wait();
  ASSERT_TRUE(fs::exists(work_.path() / dead_name));

  auto r = sweep();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("removed cgroup"), std::string::npos) << r.output;
  // The process left in the dead build's cgroup was killed, the cgroup and the work directory
  // (and its image) removed.
  EXPECT_EQ(left.wait(), 128 + SIGKILL);
  for (const auto& d : dead_cg) {
    EXPECT_FALSE(fs::exists(d)) << d;
  }
  EXPECT_FALSE(fs::exists(work_.path() / dead_name)) << r.output;
  EXPECT_FALSE(fs::exists(work_.path() / (dead_name + ".img"))) << r.output;

  // The live build is untouched: its runner, its processes, its cgroup and its directory.
  EXPECT_TRUE(live->running()) << live->log_text();
  EXPECT_FALSE(procs_of(live_cg[0]).empty());
  EXPECT_TRUE(fs::is_directory(work_.path() / live_name));
  EXPECT_EQ(live->log_text().find("failed"), std::string::npos) << live->log_text();

  // Once its runner is killed too, the next sweep takes its build as well: the process
  // launcher's clean-up (what a worker runs at start and at every reaper sweep).
  live->signal(SIGKILL);
  live->wait();
  dp::worker::process_launcher_options lo;
  lo.program = DP_BUILD_RUNNER;
  for (const auto& [k, v] : env()) {
    lo.env[k] = v;
  }
  lo.work_root = work_.path();
  auto launcher = dp::worker::make_process_launcher(lo);
  auto cleaned = dp::test::run_async([&](boost::asio::any_io_executor) {
    return launcher->clean_up(
        [](std::string, std::string) -> boost::asio::awaitable<bool> { co_return true; });
  });
  EXPECT_TRUE(cleaned) << cleaned.error().message;
  for (const auto& d : live_cg) {
    EXPECT_FALSE(fs::exists(d)) << d;
  }
  EXPECT_FALSE(fs::exists(work_.path() / live_name));
}

// A dead worker's directory goes whole; in a live one, a dead runner's goes and a live one's stays.
// (This test process plays both owners: alive with its own start time, dead with another.)
TEST_F(RunnerSweep, DeadOwnersGoLiveOnesStay) {
  auto me = dp::runner::current_owner();
  auto live = fmt::format("-p{}-{}", me.pid, me.start);
  auto dead = fmt::format("-p{}-{}", me.pid, me.start + 1);
  auto dead_worker = work_.path() / ("dp-build-a-1" + dead);
  auto live_worker = work_.path() / ("dp-build-b-1" + live);
  auto dead_runner = live_worker / ("dp-build-b-x" + dead);
  auto live_runner = live_worker / ("dp-build-b-y" + live);
  auto dead_image = work_.path() / ("dp-build-c-z" + dead + ".img");
  for (const auto& d : {dead_worker / "src", dead_runner / "src", live_runner / "src"}) {
    fs::create_directories(d);
    std::ofstream(d / "file") << "x";
  }
  std::ofstream(dead_image) << "image";
  auto r = sweep();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(fs::exists(dead_worker)) << r.output;
  EXPECT_FALSE(fs::exists(dead_runner)) << r.output;
  EXPECT_FALSE(fs::exists(dead_image)) << r.output;
  EXPECT_TRUE(fs::exists(live_runner / "src" / "file")) << r.output;
}

// Nothing that does not carry a dead owner's name is touched, whatever it is called.
TEST_F(RunnerSweep, LeavesWhatItDidNotMake) {
  auto keep = {work_.path() / "dp-build-x-1", work_.path() / "dp-build-x-1-p1-2x",
               work_.path() / "other-p999999-1"};
  for (const auto& d : keep) {
    fs::create_directory(d);
  }
  fs::create_directory_symlink(jobs_.path(), work_.path() / "dp-build-y-1-p999999-1");
  std::ofstream(jobs_.path() / "file") << "x";
  auto r = sweep();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const auto& d : keep) {
    EXPECT_TRUE(fs::exists(d)) << d;
  }
  EXPECT_TRUE(fs::is_symlink(work_.path() / "dp-build-y-1-p999999-1"));
  EXPECT_TRUE(fs::exists(jobs_.path() / "file"));
}

}  // namespace
