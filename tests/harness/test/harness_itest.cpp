// The harness against the real things: processes, redis-server, s3rver and git.
#include "dp/test/async.hpp"
#include "dp/test/harness.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <thread>

namespace dp::test {
namespace {

namespace fs = std::filesystem;

// Alive and not a zombie waiting for init to reap it.
bool alive(pid_t pid) {
  std::string stat = read_file(fs::path("/proc") / std::to_string(pid) / "stat");
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

TEST(TempDir, IsUniqueAndRemovedWithItsContents) {
  fs::path kept;
  {
    temp_dir a;
    temp_dir b;
    EXPECT_NE(a.path(), b.path());
    fs::create_directories(a.path() / "x" / "y");
    std::ofstream(a.path() / "x" / "y" / "f") << "data";
    kept = a.path();
    ASSERT_TRUE(fs::exists(kept / "x" / "y" / "f"));
  }
  EXPECT_FALSE(fs::exists(kept));
}

TEST(Ports, FreePortIsBindableAndNothingListens) {
  std::uint16_t port = free_port();
  EXPECT_NE(port, 0);
  EXPECT_FALSE(wait_for_tcp("127.0.0.1", port, std::chrono::milliseconds(50)));
}

TEST(ChildProcess, CapturesOutputExitCodeEnvAndCwd) {
  temp_dir cwd;
  auto r = run({"sh", "-c", "echo out; echo err >&2; echo \"$DP_X\"; pwd; exit 3"},
               {{"DP_X", "from-env"}}, cwd.path());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.output, "out\nerr\nfrom-env\n" + cwd.path().string() + "\n");
}

TEST(ChildProcess, StopEndsTheProcessAndWhatItStarted) {
  temp_dir dir;
  const fs::path pid_file = dir.path() / "grandchild.pid";
  child_process p({{"sh", "-c", "sleep 300 & echo $! > " + pid_file.string() + "; wait"}});
  ASSERT_TRUE(eventually(
      [&] { return !p.running() || (fs::exists(pid_file) && !read_file(pid_file).empty()); }));
  ASSERT_TRUE(p.running()) << p.log_text();
  const pid_t grandchild = std::stoi(read_file(pid_file));
  EXPECT_TRUE(p.running());
  EXPECT_EQ(p.stop(), 128 + SIGTERM);
  EXPECT_FALSE(p.running());
  // The grandchild got the signal too; the kernel delivers it asynchronously.
  EXPECT_TRUE(eventually([&] { return !alive(grandchild); }))
      << "grandchild " << grandchild << " survived";
}

TEST(ChildProcess, SignalAndWait) {
  child_process p({{"sleep", "300"}});
  p.signal(SIGKILL);
  EXPECT_EQ(p.wait(), 128 + SIGKILL);
}

TEST(ChildProcess, MissingProgramThrows) {
  EXPECT_THROW(child_process({{"dp-no-such-program"}}), std::runtime_error);
  EXPECT_THROW(child_process({{"/nonexistent/program"}}), std::runtime_error);
}

TEST(RedisServer, AnswersSurvivesKillAndRestartsOnTheSamePort) {
  redis_server redis;
  EXPECT_EQ(redis.url(), "redis://127.0.0.1:" + std::to_string(redis.port()));
  ASSERT_EQ(redis_command(redis.port(), {"SET", "greeting", "hello world"}).value(), "OK");
  EXPECT_EQ(redis_command(redis.port(), {"GET", "greeting"}).value(), "hello world");
  EXPECT_EQ(redis_command(redis.port(), {"INCR", "n"}).value(), "1");
  auto missing = redis_command(redis.port(), {"GET", "missing"});
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().is(errc::not_found));
  auto wrong = redis_command(redis.port(), {"NOSUCHCOMMAND"});
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(errc::protocol)) << wrong.error().message;

  const auto port = redis.port();
  redis.kill();
  EXPECT_FALSE(redis.running());
  auto down = redis_command(port, {"PING"});
  ASSERT_FALSE(down);
  EXPECT_TRUE(down.error().is(errc::unavailable)) << down.error().message;

  redis.restart();
  EXPECT_EQ(redis.port(), port);
  EXPECT_EQ(redis_command(port, {"PING"}).value(), "PONG");
  // No persistence: a restarted server starts empty, as a test expects.
  EXPECT_FALSE(redis_command(port, {"GET", "greeting"}));
  EXPECT_EQ(redis_command(port, {"CONFIG", "GET", "dir"}).error().message,
            "unsupported RESP reply '*2' to CONFIG");
}

TEST(RedisServer, TwoServersGetTwoPorts) {
  redis_server a;
  redis_server b;
  EXPECT_NE(a.port(), b.port());
  ASSERT_TRUE(redis_command(a.port(), {"SET", "k", "a"}));
  EXPECT_FALSE(redis_command(b.port(), {"GET", "k"}));
}

TEST(S3rver, StoresAndServesObjects) {
  s3rver s3({"test", "other"});
  EXPECT_EQ(s3.endpoint(), "http://127.0.0.1:" + std::to_string(s3.port()));
  EXPECT_EQ(s3.storage_url("other"),
            "s3://other?endpoint=" + s3.endpoint() + "&region=us-east-1&path_style=true");

  auto put = http_request(s3.port(), "PUT", "/test/dir/hello.txt", "hello s3",
                          {{"Content-Type", "text/plain"}});
  ASSERT_TRUE(put) << put.error().message;
  EXPECT_EQ(put->status, 200) << put->body;

  auto get = http_request(s3.port(), "GET", "/test/dir/hello.txt");
  ASSERT_TRUE(get) << get.error().message;
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "hello s3");
  EXPECT_EQ(get->headers["content-type"], "text/plain");

  auto list = http_request(s3.port(), "GET", "/test?list-type=2&prefix=dir/");
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_NE(list->body.find("<Key>dir/hello.txt</Key>"), std::string::npos) << list->body;

  EXPECT_EQ(http_request(s3.port(), "GET", "/other/dir/hello.txt")->status, 404);
  EXPECT_EQ(http_request(s3.port(), "GET", "/nobucket/x")->status, 404);
}

TEST(GitRepo, MakesARepositoryThatClones) {
  git_repo repo({{"package.json", R"({"name":"site"})"},
                 {"src/index.html", "<h1>hi</h1>\n"},
                 {"build.sh", {"#!/bin/sh\necho built\n", true}}});
  const std::string first = repo.head();
  EXPECT_EQ(first.size(), 40u);
  EXPECT_EQ(repo.url(), "file://" + repo.path().string());

  temp_dir work;
  const fs::path clone = work.path() / "clone";
  auto r = run({"git", "clone", "-q", repo.url(), clone.string()}, git_repo::git_env());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(clone / "src" / "index.html"), "<h1>hi</h1>\n");
  EXPECT_NE(fs::status(clone / "build.sh").permissions() & fs::perms::owner_exec, fs::perms::none);
  EXPECT_EQ(fs::status(clone / "package.json").permissions() & fs::perms::owner_exec,
            fs::perms::none);
  auto branch =
      run({"git", "-C", clone.string(), "rev-parse", "--abbrev-ref", "HEAD"}, git_repo::git_env());
  EXPECT_EQ(branch.output, "main\n");

  const std::string second = repo.commit({{"src/index.html", "<h1>v2</h1>\n"}}, "v2");
  EXPECT_NE(second, first);
  EXPECT_EQ(repo.head(), second);
  r = run({"git", "-C", clone.string(), "pull", "-q", "--ff-only"}, git_repo::git_env());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(clone / "src" / "index.html"), "<h1>v2</h1>\n");

  EXPECT_THROW(repo.commit({{"../escape", "x"}}, "bad"), std::invalid_argument);
}

TEST(Redis, BlockedInSeesAClientWaitingOnAList) {
  redis_server server;
  EXPECT_FALSE(redis_blocked_in(server.port(), "blmove"));
  child_process client({.argv = {"redis-cli", "-p", std::to_string(server.port()), "BLMOVE", "from",
                                 "to", "LEFT", "RIGHT", "0"}});
  EXPECT_TRUE(eventually([&] { return redis_blocked_in(server.port(), "blmove"); }));
  EXPECT_FALSE(redis_blocked_in(server.port(), "blpop"));
}

TEST(Async, RunAsyncReturnsTheValueAndRethrows) {
  namespace asio = boost::asio;
  int v = run_async([](asio::any_io_executor) -> asio::awaitable<int> { co_return 7; });
  EXPECT_EQ(v, 7);
  EXPECT_THROW(run_async([](asio::io_context&) -> asio::awaitable<void> {
                 throw std::logic_error("from the body");
                 co_return;
               }),
               std::logic_error);
  // A body that never ends fails within the limit instead of hanging the suite.
  EXPECT_THROW(run_async([](asio::any_io_executor)
                             -> asio::awaitable<void> { co_await co_sleep(std::chrono::hours(1)); },
                         std::chrono::milliseconds(50)),
               std::runtime_error);
}

TEST(Async, CoEventuallyWaitsForTheCondition) {
  namespace asio = boost::asio;
  run_async([](asio::any_io_executor ex) -> asio::awaitable<void> {
    bool set = false;
    asio::steady_timer t(ex, std::chrono::milliseconds(20));
    t.async_wait([&](boost::system::error_code) { set = true; });
    CO_ASSERT_TRUE(co_await co_eventually([&] { return set; }));
    EXPECT_FALSE(co_await co_eventually([] { return false; }, std::chrono::milliseconds(10)));
  });
}

}  // namespace
}  // namespace dp::test
