// The limits of a build as a whole, against real bubblewrap, node, cgroups and loop devices: a
// disk quota (a filesystem of its own, or the poller), memory, processes, what a build leaves
// running, and WebAssembly (which an address-space limit broke). Run as root; a test skips with
// the reason where this machine has no cgroup or no loop device to offer.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dp/core/id.hpp"
#include "dp/process/process.hpp"
#include "dp/runner/cgroup.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using dp::runner::build_outcome;

const std::string site_js = R"(
const fs = require('fs');
fs.mkdirSync('dist', {recursive: true});
fs.writeFileSync('dist/index.html', '<!doctype html><title>app</title>');
)";

// A module whose memory declares the largest maximum (4 GiB): V8 reserves its whole range plus
// guard regions (~10 GiB of address space) for each, as webpack's wasm hashes do.
const std::string wasm_js = R"(
const bytes = new Uint8Array([0,97,115,109,1,0,0,0, 5,6,1,1,1,0x80,0x80,0x04]);
const mod = new WebAssembly.Module(bytes);
const keep = [];
for (let i = 0; i < 4; i++) {
  keep.push(new WebAssembly.Instance(mod, {}));
  keep.push(new WebAssembly.Memory({initial: 1, maximum: 65536}));
}
console.log('webassembly ok: ' + keep.length);
)";

// 64 MiB at a time up to 4 GiB, each touched: resident memory, not just address space.
const std::string alloc_js = R"(
const keep = [];
for (let i = 0; i < 64; i++) keep.push(Buffer.alloc(64 << 20, 1));
console.log('allocated ' + keep.length * 64 + ' MiB');
)";

std::map<std::string, dp::test::git_file> project() {
  return {
      {"package.json",
       R"({"name":"app","version":"1.0.0","private":true,"scripts":{"build":"node build.js"}})"},
      {"package-lock.json",
       R"({"name":"app","version":"1.0.0","lockfileVersion":3,"requires":true,)"
       R"("packages":{"":{"name":"app","version":"1.0.0"}}})"},
      {"build.js", site_js},
      {"wasm.js", wasm_js},
      {"alloc.js", alloc_js},
  };
}

struct outcome {
  dp::runner::build_report report;
  std::string log;
};

// Loop devices whose backing file lies under `dir`.
int loops_under(const fs::path& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/block", ec)) {
    auto backing = dp::test::read_file(e.path() / "loop" / "backing_file");
    if (backing.starts_with(dir.string())) {
      ++n;
    }
  }
  return n;
}

int mounts_under(const fs::path& dir) {
  std::istringstream in(dp::test::read_file("/proc/self/mountinfo"));
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find(" " + dir.string()) != std::string::npos) {
      ++n;
    }
  }
  return n;
}

class Resources : public ::testing::Test {
 protected:
  outcome build(const std::string& command, dp::runner::runner_options o = {},
                std::map<std::string, dp::test::git_file> extra = {}) {
    auto files = project();
    files.merge(extra);
    dp::test::git_repo repo(files);
    dp::proto::job j;
    j.deployment_id = dp::new_deployment_id();
    j.project = "limits";
    j.git_url = repo.url();
    j.build_command = command;
    o.allowed_git_protocols = {"file"};
    o.work_root = work_.path();
    auto log_path = logs_.path() / (j.deployment_id + ".log");
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    outcome out;
    {
      asio::io_context ioc;
      auto storage = dp::storage::open_storage(
          ioc.get_executor(), *dp::storage::parse_storage_url("file://" + storage_.path().string()),
          {});
      EXPECT_TRUE(storage);
      auto sink = dp::runner::make_stream_sink(fd, false, j.deployment_id);
      dp::runner::runner r(j, o, **storage, *sink);
      out.report = dp::test::run_async(ioc, r.run(), std::chrono::minutes(4));
    }
    ::close(fd);
    out.log = dp::test::read_file(log_path);
    return out;
  }

  // Nothing of any build is left: no work directory, image, mount or loop device.
  void expect_nothing_left() {
    EXPECT_TRUE(fs::is_empty(work_.path())) << "left in the work root";
    EXPECT_EQ(mounts_under(work_.path()), 0);
    EXPECT_EQ(loops_under(work_.path()), 0);
  }

  static bool can_mount() { return ::geteuid() == 0 && ::access("/dev/loop-control", W_OK) == 0; }

  // The cgroup is the one thing the runner may not get here; the log says so.
  static bool no_cgroup(const outcome& out) {
    return out.log.find("limits of the build are not enforced") != std::string::npos;
  }

  dp::test::temp_dir storage_{"dp-res-storage"};
  dp::test::temp_dir work_{"dp-res-work"};
  dp::test::temp_dir logs_{"dp-res-logs"};
};

// V8 reserves ~10 GiB of address space per WebAssembly memory: under the former RLIMIT_AS of
// 16 GiB the second one failed ("could not allocate memory"), and with it webpack in a CRA build.
TEST_F(Resources, WebAssemblyWithLargeMemoriesRunsInTheSandbox) {
  auto out = build("node wasm.js && node build.js");
  ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << "\n" << out.log;
  EXPECT_NE(out.log.find("webassembly ok: 8"), std::string::npos) << out.log;
  expect_nothing_left();
}

// 3 GiB into /tmp (now inside the work directory) against a 64 MiB filesystem: ENOSPC at once,
// and the build fails naming the quota, also when the command goes on after the failed write.
TEST_F(Resources, DiskQuotaFilesystemStopsA3GiBWrite) {
  if (!can_mount()) {
    GTEST_SKIP() << "needs root and /dev/loop-control to mount a filesystem per build";
  }
  dp::runner::runner_options o;
  o.disk_bytes = uint64_t{64} << 20;
  for (const char* cmd :
       {"head -c 3G /dev/zero > /tmp/big", "head -c 3G /dev/zero > big; node build.js"}) {
    auto out = build(cmd, o);
    EXPECT_NE(out.log.find("disk 64 MiB (an ext4 filesystem of 64 MiB"), std::string::npos)
        << out.log;
    ASSERT_EQ(out.report.outcome, build_outcome::failed) << cmd << "\n" << out.log;
    EXPECT_EQ(out.report.error, "build stopped: disk quota of 64 MiB (BUILD_DISK_MB) reached")
        << cmd << "\n"
        << out.log;
    EXPECT_NE(out.log.find("No space left on device"), std::string::npos) << out.log;
  }
  expect_nothing_left();
}

// A repository larger than the quota: the clone fails naming the limit, not as a plain git error
// (git removes the failed clone, so the limit is recognised by its ENOSPC).
TEST_F(Resources, DiskQuotaStopsAnOversizedClone) {
  if (!can_mount()) {
    GTEST_SKIP() << "needs root and /dev/loop-control to mount a filesystem per build";
  }
  // 80 MiB that no compression shrinks, against a 64 MiB filesystem.
  std::string noise(size_t{80} << 20, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i + 8 <= noise.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(noise.data() + i, &x, 8);
  }
  dp::runner::runner_options o;
  o.disk_bytes = uint64_t{64} << 20;
  auto out = build("node build.js", o, {{"noise.bin", dp::test::git_file(std::move(noise))}});
  ASSERT_EQ(out.report.outcome, build_outcome::failed) << out.log;
  EXPECT_EQ(out.report.error, "git clone stopped: disk quota of 64 MiB (BUILD_DISK_MB) reached")
      << out.log;
  expect_nothing_left();
}

// Without a filesystem of its own: one big file meets RLIMIT_FSIZE, many small ones the poller.
TEST_F(Resources, DiskQuotaFallbackStopsOneBigFile) {
  dp::runner::runner_options o;
  o.disk_bytes = uint64_t{64} << 20;
  o.disk_filesystem = false;
  auto out = build("head -c 3G /dev/zero > /tmp/big", o);
  EXPECT_NE(out.log.find("a usage poller and a file size limit of 64 MiB"), std::string::npos)
      << out.log;
  ASSERT_EQ(out.report.outcome, build_outcome::failed) << out.log;
  EXPECT_EQ(out.report.error, "build stopped: disk quota of 64 MiB (BUILD_DISK_MB) reached")
      << out.log;
  expect_nothing_left();
}

TEST_F(Resources, DiskQuotaFallbackPollerStopsManySmallFiles) {
  dp::runner::runner_options o;
  o.disk_bytes = uint64_t{64} << 20;
  o.disk_filesystem = false;
  // 3 GiB in 1 MiB files, then a long wait: only the poller can end this before the timeout.
  auto out = build(
      "i=0; while [ $i -lt 3072 ]; do head -c 1M /dev/zero > /tmp/f$i || exit 1; i=$((i+1)); "
      "done; sleep 600",
      o);
  ASSERT_EQ(out.report.outcome, build_outcome::failed) << out.log;
  EXPECT_EQ(out.report.error, "build stopped: disk quota of 64 MiB (BUILD_DISK_MB) reached")
      << out.log;
  expect_nothing_left();
}

// `head | tail` holds all 4 GiB (one line: no newline) in tail's memory; node touches 4 GiB of
// Buffers.
TEST_F(Resources, MemoryLimitStopsA4GiBAllocation) {
  dp::runner::runner_options o;
  o.memory_bytes = uint64_t{256} << 20;
  for (const char* cmd : {"head -c 4G /dev/zero | tail -n 1 > /dev/null; node build.js",
                          "node alloc.js && node build.js"}) {
    auto out = build(cmd, o);
    if (no_cgroup(out)) {
      GTEST_SKIP() << "no cgroup can be made here: " << out.log;
    }
    ASSERT_EQ(out.report.outcome, build_outcome::failed) << cmd << "\n" << out.log;
    EXPECT_EQ(out.report.error, "build stopped: memory limit of 256 MiB (BUILD_MEMORY_MB) reached")
        << cmd << "\n"
        << out.log;
  }
  // The host is fine: the next build runs.
  auto next = build("node build.js", o);
  EXPECT_EQ(next.report.outcome, build_outcome::ready) << next.log;
  expect_nothing_left();
}

TEST_F(Resources, ForkBombIsStoppedAndTheNextBuildRuns) {
  dp::runner::runner_options o;
  o.pids_max = 64;
  auto out = build("bash -c ':(){ :|:& };:'; sleep 600", o);
  if (no_cgroup(out)) {
    GTEST_SKIP() << "no cgroup can be made here: " << out.log;
  }
  ASSERT_EQ(out.report.outcome, build_outcome::failed) << out.log;
  EXPECT_EQ(out.report.error, "build stopped: process limit of 64 (BUILD_PIDS_MAX) reached")
      << out.log;
  auto next = build("node build.js", o);
  EXPECT_EQ(next.report.outcome, build_outcome::ready) << next.log;
  expect_nothing_left();
}

// Daemons a build leaves (setsid, nohup, a double fork) are dead when it ends: in bubblewrap the
// pid namespace ends them; without it (SANDBOX=none), the cgroup does.
TEST_F(Resources, DaemonsLeftBehindAreKilled) {
  // Without bubblewrap a root runner's build runs as its own uid in the work directory where it
  // is: that uid must be able to pass through the work root (in a container it is /tmp).
  std::filesystem::permissions(work_.path(), std::filesystem::perms::others_exec,
                               std::filesystem::perm_options::add);
  for (bool sandbox : {true, false}) {
    dp::runner::runner_options o;
    o.sandbox = sandbox;
    std::string tag = sandbox ? "4241" : "4242";
    auto cmd = fmt::format(
        "setsid sleep {0}1 > /dev/null 2>&1 < /dev/null & "
        "nohup sleep {0}2 > /dev/null 2>&1 < /dev/null & "
        "(sleep {0}3 > /dev/null 2>&1 < /dev/null &) ; node build.js",
        tag);
    auto out = build(cmd, o);
    if (!sandbox && no_cgroup(out)) {
      GTEST_SKIP() << "no cgroup can be made here: " << out.log;
    }
    ASSERT_EQ(out.report.outcome, build_outcome::ready) << out.report.error << "\n" << out.log;
    EXPECT_EQ(dp::test::processes_matching("sleep " + tag), 0) << "sandbox " << sandbox;
  }
  expect_nothing_left();
}

// The process library's cgroup_procs: the child is in the cgroup before it execs.
TEST_F(Resources, ChildStartsInsideTheCgroup) {
  auto name = "dp-test-" + dp::random_hex(4);
  auto cg = dp::runner::build_cgroup::create(name, {.memory_bytes = 64 << 20, .pids = 16});
  if (!cg) {
    GTEST_SKIP() << "no cgroup can be made here: " << cg.error().message;
  }
  asio::io_context ioc;
  std::string seen;
  auto f = asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        dp::process::options o;
        o.argv = {"cat", "/proc/self/cgroup"};
        o.env = {{"PATH", "/usr/bin:/bin"}};
        o.cgroup_procs = cg->procs_fds();
        auto st = co_await dp::process::run(
            o, [&](dp::process::stream, std::string_view l) { seen += std::string(l) + "\n"; });
        EXPECT_TRUE(st && st->success());
        EXPECT_TRUE(co_await cg->remove());
      },
      asio::use_future);
  ioc.run();
  f.get();
  EXPECT_NE(seen.find("dp-builds/" + name), std::string::npos) << seen;
}

}  // namespace
