// Hostile builds against the trusted side: a build (its own command, or an npm lifecycle script)
// replaces the checkout, a root_dir or the output directory with a symlink to something of the
// host, then ends. The runner (root here, as in production) must not follow it: nothing outside
// the work directory is read or published. Real git, real npm, real bubblewrap, the file store.
// The repositories run tests/fixtures/hostile/swap.sh.
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "dp/core/id.hpp"
#include "hostile_support.hpp"

namespace {

namespace fs = std::filesystem;
using dp::runner::build_outcome;
using dp::test::read_file;

std::string fixture(const std::string& name) {
  auto text = read_file(dp::test::source_dir() / "tests/fixtures/hostile" / name);
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

class HostilePaths : public ::testing::Test {
 protected:
  void SetUp() override {
    // The same secret under dist/ (for a project directory swapped for the secret's directory,
    // whose default output is dist).
    auto dist = secret_.dir() / "dist";
    fs::create_directories(dist);
    fs::permissions(dist, fs::perms::owner_all);
    fs::copy_file(secret_.file(), dist / "secret.txt");
    fs::permissions(dist / "secret.txt", fs::perms::owner_read | fs::perms::owner_write);
  }

  // The secret directory as an output_dir relative to "/" (where a swapped checkout leads).
  std::string secret_from_root() const { return secret_.dir().relative_path().string(); }

  dp::runner::testing::build_run build(const dp::test::git_repo& repo, const settings& s) {
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
    dp::runner::runner_options o;
    o.allowed_git_protocols = {"file"};
    o.work_root = work_.path();
    return dp::runner::testing::run_build(j, o, storage_.path(), logs_.path());
  }

  void expect_secret_not_stored() {
    dp::runner::testing::expect_not_stored(storage_.path(), secret_.marker());
  }

  bool stored(const std::string& key) const {
    return fs::is_regular_file(storage_.path() / "__outputs" / id_ / key);
  }

  dp::runner::testing::outside_secret secret_{"hostile"};
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
                        .env = {{"HOSTILE_TARGET", secret_.dir().string()}}});
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
                        .env = {{"HOSTILE_TARGET", secret_.dir().string()}}});
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
  auto r = build(repo, {.root_dir = "site", .env = {{"HOSTILE_TARGET", secret_.dir().string()}}});
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
