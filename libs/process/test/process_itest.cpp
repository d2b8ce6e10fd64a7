// Real child processes (/bin/sh, printf, sleep): output, exit, limits, timeout and cancel.
#include "dp/process/process.hpp"
#include "dp/test/async.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
using dp::process::exit_status;
using dp::process::options;
using dp::process::stream;

namespace {

struct outcome {
  dp::result<exit_status> status = dp::make_error(dp::errc::internal, "not run");
  std::vector<std::string> out;
  std::vector<std::string> err;
};

options sh(std::string script) {
  options o;
  o.argv = {"/bin/sh", "-c", std::move(script)};
  o.env = {{"PATH", "/usr/bin:/bin"}};
  return o;
}

// Runs one child on a fresh io_context; `cancel_after` emits a terminal cancellation then.
outcome run_sync(options o, std::optional<std::chrono::milliseconds> cancel_after = {}) {
  asio::io_context ioc;
  outcome res;
  asio::cancellation_signal sig;
  asio::steady_timer timer(ioc);
  auto on_line = [&res](stream s, std::string_view line) {
    (s == stream::out ? res.out : res.err).emplace_back(line);
  };
  asio::co_spawn(ioc, dp::process::run(std::move(o), on_line),
                 asio::bind_cancellation_slot(sig.slot(),
                                              [&](std::exception_ptr e, dp::result<exit_status> r) {
                                                ASSERT_FALSE(e);
                                                res.status = std::move(r);
                                                timer.cancel();
                                              }));
  if (cancel_after) {
    timer.expires_after(*cancel_after);
    timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) {
        sig.emit(asio::cancellation_type::terminal);
      }
    });
  }
  ioc.run();
  return res;
}

// Dead means gone or a zombie waiting for init to reap it.
bool is_dead(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string content;
  if (!std::getline(stat, content)) {
    return true;
  }
  auto close = content.rfind(')');
  return close != std::string::npos && content.size() > close + 2 && content[close + 2] == 'Z';
}

// SIGKILL is delivered asynchronously: wait for the kernel to finish the exit.
bool becomes_dead(pid_t pid) {
  return dp::test::eventually([pid] { return is_dead(pid); });
}

TEST(Process, SplitsLinesOnBothStreams) {
  auto r = run_sync(sh("printf 'a\\nb\\n'; printf 'e1\\ne2' >&2; printf '\\nlast'"));
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.status->code, 0);
  EXPECT_TRUE(r.status->success());
  EXPECT_EQ(r.out, (std::vector<std::string>{"a", "b", "", "last"}));
  EXPECT_EQ(r.err, (std::vector<std::string>{"e1", "e2"}));
}

TEST(Process, DeliversHundredThousandLinesInOrder) {
  auto r = run_sync(sh("seq 1 100000; seq 1 1000 >&2"));
  ASSERT_TRUE(r.status) << r.status.error().message;
  ASSERT_EQ(r.out.size(), 100000u);
  for (size_t i = 0; i < r.out.size(); ++i) {
    ASSERT_EQ(r.out[i], std::to_string(i + 1));
  }
  EXPECT_EQ(r.err.size(), 1000u);
}

TEST(Process, CutsLongLinesAndDropsTheirRest) {
  auto o = sh(
      "head -c 20000 /dev/zero | tr '\\0' x; echo; echo next; head -c 9000 /dev/zero | tr '\\0' y");
  auto r = run_sync(std::move(o));
  ASSERT_TRUE(r.status) << r.status.error().message;
  ASSERT_EQ(r.out.size(), 3u);
  EXPECT_EQ(r.out[0], std::string(8192, 'x') + std::string(dp::process::truncation_marker));
  EXPECT_EQ(r.out[1], "next");
  EXPECT_EQ(r.out[2], std::string(8192, 'y') + std::string(dp::process::truncation_marker));
}

TEST(Process, TruncationDoesNotSplitUtf8) {
  auto o = sh("printf 'ab\\303\\251\\303\\251\\n'");
  o.max_line_bytes = 5;  // "ab" + "é" (2 bytes) + the first byte of the next "é"
  auto r = run_sync(std::move(o));
  ASSERT_TRUE(r.status);
  ASSERT_EQ(r.out.size(), 1u);
  EXPECT_EQ(r.out[0], "ab\xc3\xa9" + std::string(dp::process::truncation_marker));
}

TEST(Process, ReportsExitCodesAndSignals) {
  auto code = run_sync(sh("exit 3"));
  ASSERT_TRUE(code.status);
  EXPECT_EQ(code.status->code, 3);
  EXPECT_EQ(code.status->signal, 0);
  EXPECT_FALSE(code.status->success());
  EXPECT_EQ(code.status->describe(), "exited with code 3");

  auto sig = run_sync(sh("kill -USR1 $$"));
  ASSERT_TRUE(sig.status);
  EXPECT_EQ(sig.status->code, -1);
  EXPECT_EQ(sig.status->signal, SIGUSR1);
  EXPECT_EQ(sig.status->describe(), "killed by signal 10 (SIGUSR1)");
}

// The tree sleeps far longer than any test runs: run() returns only because the timeout killed it.
TEST(Process, TimeoutKillsTheWholeTree) {
  auto o = sh("echo $$; sleep 100000 & echo $!; sleep 100000");
  o.timeout = std::chrono::milliseconds(300);
  auto r = run_sync(std::move(o));
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_TRUE(r.status->timed_out);
  EXPECT_FALSE(r.status->success());
  ASSERT_EQ(r.out.size(), 2u);
  for (const auto& pid : r.out) {
    EXPECT_TRUE(becomes_dead(std::stoi(pid))) << "pid " << pid << " survived";
  }
}

TEST(Process, LeftoverBackgroundProcessesDieWithTheLeader) {
  auto r = run_sync(sh("sleep 100 & echo $!"));
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.status->code, 0);
  ASSERT_EQ(r.out.size(), 1u);
  EXPECT_TRUE(becomes_dead(std::stoi(r.out[0])));
}

TEST(Process, CancelStopsTheChild) {
  auto r = run_sync(sh("sleep 100"), std::chrono::milliseconds(200));
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_TRUE(r.status->canceled);
  EXPECT_FALSE(r.status->timed_out);
  EXPECT_EQ(r.status->signal, SIGTERM);
}

TEST(Process, CancelEscalatesToSigkillWhenTermIsIgnored) {
  // The ignored disposition is inherited by sleep across exec.
  auto o = sh("trap '' TERM; sleep 100");
  o.kill_grace = std::chrono::milliseconds(300);
  auto r = run_sync(std::move(o), std::chrono::milliseconds(200));
  ASSERT_TRUE(r.status);
  EXPECT_TRUE(r.status->canceled);
  EXPECT_EQ(r.status->signal, SIGKILL);
}

TEST(Process, EnvironmentIsExactlyWhatWasGiven) {
  options o;
  o.argv = {"env"};
  o.env = {{"PATH", "/usr/bin:/bin"}, {"ONLY_THIS", "1"}};
  auto r = run_sync(std::move(o));
  ASSERT_TRUE(r.status) << r.status.error().message;
  EXPECT_EQ(r.out, (std::vector<std::string>{"ONLY_THIS=1", "PATH=/usr/bin:/bin"}));
}

TEST(Process, StdinIsDevNullAndCwdIsApplied) {
  auto dir = std::filesystem::temp_directory_path();
  auto o = sh("cat; pwd");
  o.cwd = dir.string();
  auto r = run_sync(std::move(o));
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.out, (std::vector<std::string>{dir.string()}));
}

// Two pipes given crosswise (each one's number is the other's target) arrive at the asked
// numbers, and nothing else does.
TEST(Process, InheritFdsGivesExactlyThoseDescriptors) {
  int a[2], b[2];
  ASSERT_EQ(::pipe2(a, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(b, O_CLOEXEC), 0);
  ASSERT_EQ(::write(a[1], "to-a", 4), 4);
  ASSERT_EQ(::write(b[1], "to-b", 4), 4);
  ::close(a[1]);
  ::close(b[1]);
  auto o =
      sh("read -r x <&{A}; read -r y <&{B}; echo \"$x $y\"; ls /proc/self/fd | sort -n | tr '\\n' "
         "' '");
  std::string script = o.argv[2];
  // The child gets b's read end at a's number and a's at b's.
  auto place = [&](std::string key, int fd) {
    script.replace(script.find(key), key.size(), std::to_string(fd));
  };
  place("{A}", b[0]);
  place("{B}", a[0]);
  o.argv[2] = script;
  o.inherit_fds = {{a[0], b[0]}, {b[0], a[0]}};
  auto r = run_sync(std::move(o));
  ::close(a[0]);
  ::close(b[0]);
  ASSERT_TRUE(r.status) << r.status.error().message;
  ASSERT_EQ(r.out.size(), 2u);
  EXPECT_EQ(r.out[0], "to-a to-b");
  // 0-2, the two pipes, and ls's own directory descriptor: nothing else of this process.
  std::set<int> seen;
  std::istringstream in(r.out[1]);
  for (int fd; in >> fd;) {
    seen.insert(fd);
  }
  EXPECT_EQ(seen.size(), 6u) << r.out[1];
  for (int fd : {0, 1, 2, a[0], b[0]}) {
    EXPECT_TRUE(seen.count(fd)) << fd << " missing from " << r.out[1];
  }
}

TEST(Process, InheritFdsRejectsBadNumbers) {
  auto low = sh("true");
  low.inherit_fds = {{0, 2}};
  EXPECT_FALSE(run_sync(std::move(low)).status);
  auto closed = sh("true");
  closed.inherit_fds = {{1000, 3}};
  EXPECT_FALSE(run_sync(std::move(closed)).status);
}

TEST(Process, FileSizeLimitIsEnforced) {
  auto dir = std::filesystem::temp_directory_path() / ("dp-process-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto o = sh("exec head -c 100000 /dev/zero > big");
  o.cwd = dir.string();
  o.limits.file_size_bytes = 4096;
  auto r = run_sync(std::move(o));
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(r.status);
  EXPECT_EQ(r.status->signal, SIGXFSZ);
}

TEST(Process, CpuLimitIsEnforced) {
  auto o = sh("while :; do :; done");
  o.limits.cpu_seconds = 1;
  o.timeout = std::chrono::seconds(30);  // a safety net only; the rlimit should stop it first
  auto r = run_sync(std::move(o));
  ASSERT_TRUE(r.status);
  EXPECT_FALSE(r.status->timed_out);
  EXPECT_EQ(r.status->signal, SIGXCPU);
}

TEST(Process, StartFailuresAreErrors) {
  options missing;
  missing.argv = {"/nonexistent/program"};
  auto r1 = run_sync(std::move(missing));
  ASSERT_FALSE(r1.status);
  EXPECT_NE(r1.status.error().message.find("exec"), std::string::npos);

  options not_in_path;
  not_in_path.argv = {"definitely-not-a-program"};
  auto r2 = run_sync(std::move(not_in_path));
  ASSERT_FALSE(r2.status);
  EXPECT_TRUE(r2.status.error().is(dp::errc::not_found));

  auto bad_cwd = sh("true");
  bad_cwd.cwd = "/nonexistent/dir";
  auto r3 = run_sync(std::move(bad_cwd));
  ASSERT_FALSE(r3.status);
  EXPECT_NE(r3.status.error().message.find("chdir /nonexistent/dir"), std::string::npos);
}

TEST(Process, ManyChildrenAtOnce) {
  asio::io_context ioc;
  constexpr int n = 32;
  std::vector<std::optional<dp::result<exit_status>>> results(n);
  std::vector<std::vector<std::string>> lines(n);
  for (int i = 0; i < n; ++i) {
    auto o = sh("echo $0; exit $(($0 % 7))");
    o.argv.push_back(std::to_string(i));
    asio::co_spawn(
        ioc,
        dp::process::run(std::move(o),
                         [&lines, i](stream, std::string_view l) { lines[i].emplace_back(l); }),
        [&results, i](std::exception_ptr, dp::result<exit_status> r) {
          results[i] = std::move(r);
        });
  }
  // Several threads: the supervision of each child must hold up under concurrency.
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&ioc] { ioc.run(); });
  }
  for (auto& t : threads) {
    t.join();
  }
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(results[i] && *results[i]) << i;
    EXPECT_EQ((*results[i])->code, i % 7) << (*results[i])->describe();
    EXPECT_EQ(lines[i], (std::vector<std::string>{std::to_string(i)}));
  }
}

// A signal sent to the caller's whole process group (as a service manager or Ctrl-C sends it)
// while children are being started reaches the caller once. A child between fork and the reset of
// its handlers runs the caller's: asio's writes to the caller's signal pipe, and a worker told
// SIGTERM once saw a second one ("exiting now") and skipped its drain.
TEST(Process, ASignalToTheGroupDuringStartsReachesTheCallerOnce) {
  // A group of this test's own: the signals reach no process but this one and its children.
  const pid_t caller_group = ::getpgrp();
  ASSERT_EQ(::setpgid(0, 0), 0) << std::strerror(errno);
  asio::io_context signals_io;
  asio::signal_set signals(signals_io, SIGUSR1);
  std::atomic<int> received{0};
  std::function<void()> wait_next = [&] {
    signals.async_wait([&](boost::system::error_code ec, int) {
      if (!ec) {
        ++received;
        wait_next();
      }
    });
  };
  wait_next();
  std::thread signal_thread([&] { signals_io.run(); });
  std::atomic<bool> starting{true};
  std::atomic<int> started{0};
  std::thread starter([&] {
    while (starting) {
      run_sync(sh("exit 0"));
      ++started;
    }
  });
  int sent = 0;
  for (; (sent < 300 || started < 300) && received == sent; ++sent) {
    ::kill(0, SIGUSR1);
    // One at a time: a signal sent while the same one is still pending would merge with it.
    if (!dp::test::eventually([&] { return received >= sent + 1; })) {
      ADD_FAILURE() << "signal " << sent + 1 << " did not arrive";
      break;
    }
  }
  starting = false;
  starter.join();
  EXPECT_EQ(received, sent);
  signals_io.stop();
  signal_thread.join();
  ::setpgid(0, caller_group);  // back where a terminal's Ctrl-C reaches the rest of the run
}

}  // namespace

// find_program searches only the given PATH, skips directories and non-executables, and takes a
// name with a '/' as it is.
TEST(Process, FindProgramSearchesOnlyTheGivenPath) {
  namespace fs = std::filesystem;
  auto dir = fs::temp_directory_path() / ("dp-find-program-" + std::to_string(::getpid()));
  fs::create_directories(dir / "a" / "tool");  // a directory of that name is skipped
  fs::create_directories(dir / "b");
  std::ofstream(dir / "b" / "tool") << "#!/bin/sh\n";  // not executable: skipped
  fs::create_directories(dir / "c");
  std::ofstream(dir / "c" / "tool") << "#!/bin/sh\n";
  fs::permissions(dir / "c" / "tool", fs::perms::owner_all);
  dp::config::environment env{
      {"PATH", (dir / "a").string() + ":" + (dir / "b").string() + ":" + (dir / "c").string()}};
  auto found = dp::process::find_program("tool", env);
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_EQ(*found, (dir / "c" / "tool").string());
  auto missing = dp::process::find_program("sh", env);
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(dp::errc::not_found));
  EXPECT_EQ(*dp::process::find_program("/no/such/tool", env), "/no/such/tool");
  EXPECT_TRUE(dp::process::find_program("sh", {}));  // /usr/bin:/bin without a PATH
  fs::remove_all(dir);
}
