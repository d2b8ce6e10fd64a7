// The clone command against a real repository over file://, run through dp::process.
#include <gtest/gtest.h>

#include <boost/asio.hpp>

#include <filesystem>
#include <fstream>

#include "dp/buildplan/git.hpp"
#include "dp/process/process.hpp"
#include "dp/test/harness.hpp"

namespace asio = boost::asio;
using files = std::map<std::string, dp::test::git_file>;

namespace {

struct ran {
  dp::result<dp::process::exit_status> status = dp::make_error(dp::errc::internal, "not run");
  std::vector<std::string> lines;
};

ran run_argv(std::vector<std::string> argv, dp::config::environment env) {
  asio::io_context ioc;
  ran r;
  dp::process::options o;
  o.argv = std::move(argv);
  o.env = std::move(env);
  asio::co_spawn(
      ioc,
      dp::process::run(std::move(o),
                       [&](dp::process::stream, std::string_view l) { r.lines.emplace_back(l); }),
      [&](std::exception_ptr, dp::result<dp::process::exit_status> s) { r.status = std::move(s); });
  ioc.run();
  return r;
}

TEST(GitClone, ShallowCloneOverFileUrlRecordsTheCommit) {
  dp::test::git_repo repo(files{{"index.html", "<h1>one</h1>"}});
  std::string head = repo.commit(files{{"index.html", "<h1>two</h1>"}}, "second");
  dp::test::temp_dir work("dp-build-git");
  auto dir = (work.path() / "repo").string();
  auto clone = run_argv(dp::buildplan::git_clone_argv({repo.url(), "main", dir, {"https", "file"}}),
                        dp::buildplan::git_env(work.path().string()));
  ASSERT_TRUE(clone.status) << clone.status.error().message;
  ASSERT_TRUE(clone.status->success()) << clone.status->describe();
  std::ifstream f(dir + "/index.html");
  std::string content((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(content, "<h1>two</h1>");

  auto rev =
      run_argv(dp::buildplan::git_head_argv(dir), dp::buildplan::git_env(work.path().string()));
  ASSERT_TRUE(rev.status && rev.status->success());
  ASSERT_EQ(rev.lines.size(), 1u);
  EXPECT_EQ(rev.lines[0], head);

  // --depth 1 really is shallow over file://.
  auto count = run_argv({"git", "-C", dir, "rev-list", "--count", "HEAD"},
                        dp::buildplan::git_env(work.path().string()));
  ASSERT_TRUE(count.status && count.status->success());
  EXPECT_EQ(count.lines, (std::vector<std::string>{"1"}));
}

TEST(GitClone, FileProtocolIsRefusedByGitUnlessAllowed) {
  dp::test::git_repo repo(files{{"a.txt", "a"}});
  dp::test::temp_dir work("dp-build-git");
  auto dir = (work.path() / "repo").string();
  auto clone = run_argv(dp::buildplan::git_clone_argv({repo.url(), "", dir, {"https"}}),
                        dp::buildplan::git_env(work.path().string()));
  ASSERT_TRUE(clone.status);
  EXPECT_FALSE(clone.status->success());
  EXPECT_FALSE(std::filesystem::exists(dir + "/a.txt"));
}

TEST(GitClone, UnknownBranchFails) {
  dp::test::git_repo repo(files{{"a.txt", "a"}});
  dp::test::temp_dir work("dp-build-git");
  auto clone = run_argv(
      dp::buildplan::git_clone_argv({repo.url(), "nope", (work.path() / "r").string(), {"file"}}),
      dp::buildplan::git_env(work.path().string()));
  ASSERT_TRUE(clone.status);
  EXPECT_FALSE(clone.status->success());
}

}  // namespace
