// Hostile builds against the trusted side: a build (its own command, or an npm lifecycle script)
// replaces the checkout, a root_dir or the output directory with a symlink to something of the
// host, then ends. The runner (root here, as in production) must not follow it: nothing outside
// the work directory is read or published. Real git, real npm, real bubblewrap, the file store.
// The repositories run tests/fixtures/hostile/swap.sh.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "dp/core/id.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using dp::runner::build_outcome;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string fixture(const std::string& name) {
  const char* root = std::getenv("DP_SOURCE_DIR");
  auto text = slurp(fs::path(root ? root : ".") / "tests/fixtures/hostile" / name);
  if (text.empty()) {
    throw std::runtime_error("fixture " + name + " not found (DP_SOURCE_DIR)");
  }
  return text;
}

struct settings {
  std::string root_dir;
  std::optional<std::string> build_command;
  std::optional<std::string> output_dir;
  dp::proto::env_map env;
};

struct result {
  dp::runner::build_report report;
  std::string log;
};

class HostilePaths : public ::testing::Test {
 protected:
  void SetUp() override {
    // A root-only directory outside the work directory, holding a 0600 file, and the same under
    // dist/ (for a project directory swapped for it, whose default output is dist).
    fs::permissions(secret_.path(), fs::perms::owner_all);
    for (const auto& dir : {secret_.path(), secret_.path() / "dist"}) {
      fs::create_directories(dir);
      fs::permissions(dir, fs::perms::owner_all);
      auto file = dir / "secret.txt";
      std::ofstream(file) << marker_ << "\n";
      fs::permissions(file, fs::perms::owner_read | fs::perms::owner_write);
    }
  }

  // The secret directory as an output_dir relative to "/" (where a swapped checkout leads).
  std::string secret_from_root() const { return secret_.path().relative_path().string(); }

  result build(const dp::test::git_repo& repo, const settings& s) {
    dp::proto::job j;
    j.deployment_id = dp::new_deployment_id();
    j.project = "hostile";
    j.git_url = repo.url();
    j.root_dir = s.root_dir;
    j.build_command = s.build_command;
    j.output_dir = s.output_dir;
    j.env = s.env;
    j.timeout_s = 120;
    id_ = j.deployment_id;

    auto log_file = logs_.path() / ("log-" + j.deployment_id);
    int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    asio::io_context ioc;
    result out;
    auto done = asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          auto ex = co_await asio::this_coro::executor;
          auto storage = dp::storage::open_storage(
              ex, *dp::storage::parse_storage_url("file://" + storage_.path().string()), {});
          EXPECT_TRUE(storage);
          auto sink = dp::runner::make_stream_sink(fd, false, j.deployment_id);
          dp::runner::runner_options o;
          o.allowed_git_protocols = {"file"};
          o.work_root = work_.path();
          dp::runner::runner r(j, o, **storage, *sink);
          out.report = co_await r.run();
          (void)co_await sink->flush();
        },
        asio::use_future);
    ioc.run();
    done.get();
    ::close(fd);
    out.log = slurp(log_file);
    if (std::getenv("DP_HOSTILE_VERBOSE")) {
      std::cerr << out.log << "outcome: " << dp::runner::to_string(out.report.outcome) << ": "
                << out.report.error << "\n";
    }
    return out;
  }

  // Every stored object holds no byte of the secret.
  void expect_secret_not_stored() {
    size_t objects = 0;
    for (const auto& e : fs::recursive_directory_iterator(storage_.path())) {
      if (e.is_regular_file()) {
        ++objects;
        EXPECT_EQ(slurp(e.path()).find(marker_), std::string::npos)
            << "the secret reached storage: " << e.path();
      }
    }
    (void)objects;
  }

  bool stored(const std::string& key) const {
    return fs::is_regular_file(storage_.path() / "__outputs" / id_ / key);
  }

  std::string marker_ = "DP-HOSTILE-SECRET-" + dp::random_hex(8);
  dp::test::temp_dir secret_{"dp-hostile-secret"};
  dp::test::temp_dir storage_{"dp-hostile-storage"};
  dp::test::temp_dir work_{"dp-hostile-work"};
  dp::test::temp_dir logs_{"dp-hostile-logs"};
  std::string id_;
};

// The issue's case: `cd /build && mv src s && ln -s / src` as the build command, with an
// output_dir that names the secret's directory as seen from "/".
TEST_F(HostilePaths, BuildCommandSwapsTheCheckoutForRoot) {
  dp::test::git_repo repo({{"index.html", "<h1>site</h1>"}, {"swap.sh", fixture("swap.sh")}});
  auto r = build(repo, {.build_command = "sh swap.sh src", .output_dir = secret_from_root()});
  EXPECT_NE(r.log.find("swapped /build/src"), std::string::npos) << r.log;
  EXPECT_NE(r.report.outcome, build_outcome::ready) << r.log;
  EXPECT_NE(r.report.error.find("output_dir"), std::string::npos) << r.report.error;
  EXPECT_FALSE(stored("secret.txt")) << r.log;
  expect_secret_not_stored();
}

// The checkout swapped for the secret's directory, whose dist/ the default output rule finds.
TEST_F(HostilePaths, BuildCommandSwapsTheCheckoutForAnOutsideDirectory) {
  dp::test::git_repo repo({{"index.html", "<h1>site</h1>"}, {"swap.sh", fixture("swap.sh")}});
  auto r = build(repo, {.build_command = "sh swap.sh src",
                        .env = {{"HOSTILE_TARGET", secret_.path().string()}}});
  EXPECT_NE(r.log.find("swapped /build/src"), std::string::npos) << r.log;
  EXPECT_NE(r.report.outcome, build_outcome::ready) << r.log;
  EXPECT_FALSE(stored("secret.txt")) << r.log;
  expect_secret_not_stored();
}

// The output directory itself swapped for a symlink to the secret's directory.
TEST_F(HostilePaths, BuildCommandSwapsTheOutputDirectory) {
  dp::test::git_repo repo({{"index.html", "<h1>site</h1>"}, {"swap.sh", fixture("swap.sh")}});
  auto r = build(repo, {.build_command = "mkdir -p dist && echo hi > dist/index.html && "
                                         "sh swap.sh src/dist",
                        .env = {{"HOSTILE_TARGET", secret_.path().string()}}});
  EXPECT_NE(r.log.find("swapped /build/src/dist"), std::string::npos) << r.log;
  EXPECT_NE(r.report.outcome, build_outcome::ready) << r.log;
  EXPECT_NE(r.report.error.find("symlink"), std::string::npos) << r.report.error;
  expect_secret_not_stored();
}

// The same swap from an npm lifecycle script: a package.json without dependencies but with an
// install lifecycle script makes the runner run `npm install` (which needs no registry). The
// script is postprepare, the last one npm runs: after postinstall npm reads package.json again,
// fails on the swapped checkout, and the build would fail whatever the runner does.
TEST_F(HostilePaths, NpmScriptSwapsTheCheckoutForRoot) {
  dp::test::git_repo repo(
      {{"index.html", "<h1>site</h1>"},
       {"swap.sh", fixture("swap.sh")},
       {"package.json", R"({"name":"hostile","version":"1.0.0","private":true,)"
                        R"("scripts":{"postprepare":"sh /build/src/swap.sh src"}})"}});
  auto r = build(repo, {.output_dir = secret_from_root()});
  EXPECT_NE(r.log.find("install: npm install"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("swapped /build/src"), std::string::npos) << r.log;
  EXPECT_NE(r.report.outcome, build_outcome::ready) << r.log;
  EXPECT_FALSE(stored("secret.txt")) << r.log;
  expect_secret_not_stored();
}

// root_dir's directory swapped by an npm script for the secret's directory; the site is static,
// so the project directory itself is the output. The files of the real checkout are published.
TEST_F(HostilePaths, NpmScriptSwapsTheRootDir) {
  dp::test::git_repo repo(
      {{"site/index.html", "<h1>site</h1>"},
       {"swap.sh", fixture("swap.sh")},
       {"site/package.json", R"({"name":"hostile","version":"1.0.0","private":true,)"
                             R"("scripts":{"postprepare":"sh /build/src/swap.sh src/site"}})"}});
  auto r = build(repo, {.root_dir = "site", .env = {{"HOSTILE_TARGET", secret_.path().string()}}});
  EXPECT_NE(r.log.find("swapped /build/src/site"), std::string::npos) << r.log;
  EXPECT_FALSE(stored("secret.txt")) << r.log;
  expect_secret_not_stored();
  ASSERT_EQ(r.report.outcome, build_outcome::ready) << r.log;
  EXPECT_TRUE(stored("index.html")) << r.log;
}

// A root_dir through a symlink the repository itself commits (site -> /etc) is refused.
TEST_F(HostilePaths, RootDirThroughACommittedSymlinkIsRefused) {
  dp::test::git_repo repo(std::map<std::string, dp::test::git_file>{{"index.html", "<h1>"}});
  fs::create_directory_symlink("/etc", repo.path() / "site");
  auto env = dp::test::git_repo::git_env();
  for (std::vector<std::string> args : {std::vector<std::string>{"add", "-A"},
                                        std::vector<std::string>{"commit", "-q", "-m", "link"}}) {
    args.insert(args.begin(), {"git", "-C", repo.path().string()});
    auto g = dp::test::run(args, env);
    ASSERT_EQ(g.exit_code, 0) << g.output;
  }
  auto r = build(repo, {.root_dir = "site", .build_command = ""});
  EXPECT_EQ(r.report.outcome, build_outcome::failed) << r.log;
  EXPECT_NE(r.report.error.find("root_dir"), std::string::npos) << r.report.error;
  EXPECT_FALSE(stored("passwd")) << r.log;
  EXPECT_FALSE(fs::exists(storage_.path() / "__outputs" / id_)) << r.log;
}

}  // namespace
