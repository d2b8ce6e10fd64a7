// Real bubblewrap: what a sandboxed command can and cannot see.
#include "dp/runner/sandbox.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "dp/process/process.hpp"
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;
using namespace dp::runner;

namespace {

struct ran {
  dp::result<dp::process::exit_status> status = dp::make_error(dp::errc::internal, "not run");
  std::vector<std::string> out;
  std::vector<std::string> err;
};

class Sandbox : public ::testing::Test {
 protected:
  void SetUp() override {
    asio::io_context ioc;
    dp::result<void> probe = dp::make_error(dp::errc::internal, "not run");
    asio::co_spawn(ioc, probe_bwrap(), [&](std::exception_ptr, dp::result<void> r) { probe = r; });
    ioc.run();
    ASSERT_TRUE(probe) << probe.error().message;
  }

  ran run(std::vector<std::string> command, dp::config::environment extra = {},
          std::chrono::milliseconds timeout = std::chrono::seconds(60),
          std::optional<unsigned> uid = std::nullopt, dp::process::resource_limits limits = {}) {
    sandbox_options o;
    o.work_dir = work_.path();
    o.env = sandbox_env(phase::build, o.mount_point, extra).value();
    o.uid = uid;
    // egress needs root (the network namespace is configured from outside).
    o.network = ::geteuid() == 0 ? network_mode::egress : network_mode::none;
    dp::process::options p;
    p.limits = limits;
    p.timeout = timeout;
    asio::io_context ioc;
    ran r;
    asio::co_spawn(ioc,
                   run_sandboxed(std::move(o), std::move(command), std::move(p),
                                 [&](dp::process::stream s, std::string_view l) {
                                   (s == dp::process::stream::out ? r.out : r.err).emplace_back(l);
                                 }),
                   [&](std::exception_ptr, dp::result<dp::process::exit_status> s) {
                     r.status = std::move(s);
                   });
    ioc.run();
    return r;
  }

  dp::test::temp_dir work_{"dp-sandbox"};
};

TEST_F(Sandbox, HostRootIsInvisible) {
  auto secret = fs::path("/root") / ("dp-sandbox-secret-" + std::to_string(::getpid()));
  {
    std::ofstream f(secret);
    if (!f) {
      GTEST_SKIP() << "cannot write to /root (not root?)";
    }
    f << "TOPSECRET\n";
  }
  auto cat = run({"cat", secret.string()});
  auto ls = run({"sh", "-c", "ls -A /root 2>/dev/null | wc -l"});
  fs::remove(secret);
  ASSERT_TRUE(cat.status);
  EXPECT_FALSE(cat.status->success());
  for (const auto& l : cat.out) {
    EXPECT_EQ(l.find("TOPSECRET"), std::string::npos);
  }
  ASSERT_TRUE(ls.status && ls.status->success());
  EXPECT_EQ(ls.out, (std::vector<std::string>{"0"}));
}

TEST_F(Sandbox, EnvironmentIsOnlyWhatWasGiven) {
  // A platform secret in the runner's own environment must not reach the build.
  ::setenv("AWS_SECRET_ACCESS_KEY", "platform-secret", 1);
  auto r = run({"env"}, {{"VITE_API", "https://api.example.com"}});
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ASSERT_TRUE(r.status && r.status->success());
  auto expected = sandbox_env(phase::build, "/build", {{"VITE_API", "https://api.example.com"}});
  std::vector<std::string> want = {"PWD=/build"};  // bwrap sets PWD after --chdir
  for (const auto& [k, v] : *expected) {
    want.push_back(k + "=" + v);
  }
  auto got = r.out;
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

TEST_F(Sandbox, WorkDirWritableSystemReadOnlyTmpPrivate) {
  auto host_tmp_marker =
      fs::temp_directory_path() / ("dp-sandbox-marker-" + std::to_string(::getpid()));
  std::ofstream(host_tmp_marker) << "x";
  auto r = run({"sh", "-c",
                "echo built > /build/out.txt && echo ok; "
                "touch /usr/should-fail 2>/dev/null || echo usr-ro; "
                "touch /etc/should-fail 2>/dev/null || echo etc-ro; "
                "ls -A /tmp | wc -l; touch /tmp/scratch && echo tmp-rw; "
                "test -e /etc/shadow || echo no-shadow; test -e /var || echo no-var; "
                "test -d /build/home && echo home"});
  fs::remove(host_tmp_marker);
  ASSERT_TRUE(r.status && r.status->success()) << (r.err.empty() ? "" : r.err[0]);
  EXPECT_EQ(r.out, (std::vector<std::string>{"ok", "usr-ro", "etc-ro", "0", "tmp-rw", "no-shadow",
                                             "no-var", "home"}));
  std::ifstream f(work_.path() / "out.txt");
  std::string content;
  std::getline(f, content);
  EXPECT_EQ(content, "built");
}

TEST_F(Sandbox, OwnPidNamespaceAndNoCapabilities) {
  auto r = run({"sh", "-c", "ls /proc | grep -c '^[0-9]'; grep CapEff /proc/self/status"});
  ASSERT_TRUE(r.status && r.status->success());
  ASSERT_EQ(r.out.size(), 2u);
  EXPECT_LE(std::stoi(r.out[0]), 5);  // bwrap's init, sh, ls, grep
  EXPECT_EQ(r.out[1], "CapEff:\t0000000000000000");
}

TEST_F(Sandbox, NodeAndNpmRun) {
  auto r = run({"sh", "-c", "node -e 'console.log(6*7)' && npm --version >/dev/null && echo npm"});
  ASSERT_TRUE(r.status);
  ASSERT_TRUE(r.status->success()) << (r.err.empty() ? "" : r.err[0]);
  EXPECT_EQ(r.out, (std::vector<std::string>{"42", "npm"}));
}

// Every process of the build is gone once run() reports the timeout: the sleeps carry a marker
// (this test's pid) that no other process's command line has.
TEST_F(Sandbox, TimeoutStopsEverythingInside) {
  const std::string marker = "100." + std::to_string(::getpid());
  auto r = run({"sh", "-c", "sleep " + marker + " & sleep " + marker}, {},
               std::chrono::milliseconds(300));
  ASSERT_TRUE(r.status);
  EXPECT_TRUE(r.status->timed_out);
  auto running_with_marker = [&] {
    for (const auto& e : fs::directory_iterator("/proc")) {
      std::ifstream in(e.path() / "cmdline", std::ios::binary);
      std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (cmdline.find(marker) != std::string::npos) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(dp::test::eventually([&] { return !running_with_marker(); }))
      << "a process of the timed-out build is still running";
}

// What a root runner does (libs/runner runner.cpp): the command runs as a uid of its own, without
// any capability, so that the process limit holds (it never does for uid 0).
TEST_F(Sandbox, AsItsOwnUserWithoutCapabilitiesTheProcessLimitHolds) {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "switching to another uid needs root";
  }
  const unsigned uid = 231234;
  ASSERT_EQ(::chown(work_.path().c_str(), uid, uid), 0);
  ::chmod(work_.path().c_str(), 0755);
  dp::process::resource_limits limits;
  limits.processes = 8;
  auto r = run({"/bin/sh", "-c",
                "id -u; id -G; grep -E '^Cap(Prm|Eff|Bnd|Amb)' /proc/self/status; touch mine; "
                "for i in $(seq 20); do sleep 2 & done; wait; echo waited"},
               {}, std::chrono::seconds(60), uid, limits);
  ASSERT_TRUE(r.status) << r.status.error().message;
  ASSERT_GE(r.out.size(), 6u) << ::testing::PrintToString(r.err);
  EXPECT_EQ(r.out[0], std::to_string(uid));
  EXPECT_EQ(r.out[1], std::to_string(uid)) << "no supplementary groups";
  for (size_t i = 2; i < 6; ++i) {
    EXPECT_TRUE(r.out[i].ends_with("0000000000000000")) << r.out[i];
  }
  EXPECT_TRUE(fs::exists(work_.path() / "mine"));
  std::string err;
  for (const auto& l : r.err) {
    err += l + "\n";
  }
  EXPECT_NE(err.find("fork"), std::string::npos) << "the 9th process was refused:\n" << err;
}

TEST(SandboxProbe, MissingBwrapIsAnError) {
  asio::io_context ioc;
  dp::result<void> probe;
  asio::co_spawn(ioc, probe_bwrap("/nonexistent/bwrap"),
                 [&](std::exception_ptr, dp::result<void> r) { probe = r; });
  ioc.run();
  ASSERT_FALSE(probe);
  EXPECT_TRUE(probe.error().is(dp::errc::unavailable));
  EXPECT_NE(probe.error().message.find("bubblewrap cannot run here"), std::string::npos);
}

}  // namespace
