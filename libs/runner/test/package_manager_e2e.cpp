// pnpm and yarn (1 and 4) through corepack, from the npm registry, in the sandbox: tiny fixtures
// (tests/fixtures/package-managers) whose lockfiles were written by pnpm 8, yarn 1.22 and yarn
// 4. Each build script calls its package manager again (through the shim on PATH) and records
// the npm_config_user_agent it ran under. Warm builds take pnpm or yarn and the packages from the
// project's build cache. Needs the network, hence label e2e.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

#include "dp/core/id.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

struct result {
  dp::runner::build_report report;
  std::string log;
  std::string index_html;  // the published index.html, "" when none
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Builds tests/fixtures/package-managers/<fixture>, with `changed` files replaced, over the file
// store in `storage_dir` (where the project's build cache is too).
result build(const std::string& fixture, const fs::path& storage_dir,
             const std::map<std::string, std::string>& changed = {}) {
  std::map<std::string, dp::test::git_file> files;
  auto root = dp::test::source_dir() / "tests" / "fixtures" / "package-managers" / fixture;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) {
      files.emplace(e.path().lexically_relative(root).string(), read_file(e.path()));
    }
  }
  for (const auto& [name, text] : changed) {
    files.insert_or_assign(name, text);
  }
  dp::test::git_repo repo(files);
  dp::test::temp_dir work("dp-pm-e2e-work");
  auto log_path = work.path() / "build.log";
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);

  dp::proto::job job;
  job.deployment_id = dp::new_deployment_id();
  job.project = fixture;
  job.git_url = repo.url();
  dp::runner::runner_options opts;
  opts.allowed_git_protocols = {"file"};
  opts.work_root = work.path();
  opts.timeout = std::chrono::seconds(600);

  asio::io_context ioc;
  auto storage = dp::storage::open_storage(
      ioc.get_executor(), *dp::storage::parse_storage_url("file://" + storage_dir.string()), {});
  EXPECT_TRUE(storage);
  auto sink = dp::runner::make_stream_sink(fd, false, job.deployment_id);
  dp::runner::runner runner(job, opts, **storage, *sink);
  auto report = asio::co_spawn(ioc, runner.run(), asio::use_future);
  ioc.run();
  result r{report.get(), "", ""};
  ::close(fd);
  r.log = read_file(log_path);
  auto index = storage_dir / dp::proto::output_key(job.deployment_id, "index.html");
  if (fs::exists(index)) {
    r.index_html = read_file(index);
  }
  return r;
}

result build(const std::string& fixture, const std::map<std::string, std::string>& changed = {}) {
  dp::test::temp_dir storage_dir("dp-pm-e2e-storage");
  return build(fixture, storage_dir.path(), changed);
}

// The fixture's package.json with one more field: another install key (node_modules is not
// restored), the same packages.
std::map<std::string, std::string> with_description(const std::string& fixture) {
  auto pkg = read_file(dp::test::source_dir() / "tests" / "fixtures" / "package-managers" /
                       fixture / "package.json");
  auto at = pkg.find("\"private\"");
  EXPECT_NE(at, std::string::npos);
  pkg.insert(at, "\"description\": \"changed\",\n  ");
  return {{"package.json", pkg}};
}

void skip_without_egress() {
  if (::geteuid() != 0) {
    GTEST_SKIP() << "the sandbox's egress network needs a root runner";
  }
}

TEST(PackageManagerE2e, PnpmFromTheLockfileVersion) {
  skip_without_egress();
  auto r = build("pnpm");
  ASSERT_EQ(r.report.outcome, dp::runner::build_outcome::ready) << r.report.error << "\n" << r.log;
  // lockfileVersion 6.0: pnpm 8 (corepack's default pnpm refuses that lockfile).
  EXPECT_NE(r.log.find("install: corepack install -g pnpm@8 && pnpm install --frozen-lockfile "
                       "--prod=false (pnpm-lock.yaml lockfileVersion 6.0 (pnpm 8)), through "
                       "corepack"),
            std::string::npos)
      << r.log;
  EXPECT_NE(r.log.find("build: running `pnpm run build`"), std::string::npos) << r.log;
  EXPECT_NE(r.index_html.find("seven by pnpm/8."), std::string::npos) << r.index_html << r.log;
}

TEST(PackageManagerE2e, YarnClassic) {
  skip_without_egress();
  auto r = build("yarn-classic");
  ASSERT_EQ(r.report.outcome, dp::runner::build_outcome::ready) << r.report.error << "\n" << r.log;
  EXPECT_NE(r.log.find("install: running `corepack install -g yarn@1 && yarn install "
                       "--frozen-lockfile"),
            std::string::npos)
      << r.log;
  EXPECT_NE(r.index_html.find("seven by yarn/1."), std::string::npos) << r.index_html << r.log;
}

TEST(PackageManagerE2e, YarnBerryWithNodeModules) {
  skip_without_egress();
  auto r = build("yarn-berry");
  ASSERT_EQ(r.report.outcome, dp::runner::build_outcome::ready) << r.report.error << "\n" << r.log;
  EXPECT_NE(r.log.find("install: running `corepack install -g yarn@4 && yarn install --immutable`"),
            std::string::npos)
      << r.log;
  EXPECT_NE(r.index_html.find("seven by yarn/4."), std::string::npos) << r.index_html << r.log;
}

// A second build whose install key changed (node_modules is not restored) gets pnpm or yarn
// (corepack's download) and the packages (pnpm's store, yarn's cache) from the build cache:
// its install log says `fetched_nothing` and not `fetched`, when the package manager says so.
void expect_warm_install(const std::string& fixture, const std::string& agent,
                         std::string_view fetched_nothing, std::string_view fetched) {
  dp::test::temp_dir storage_dir("dp-pm-e2e-storage");
  auto cold = build(fixture, storage_dir.path());
  ASSERT_EQ(cold.report.outcome, dp::runner::build_outcome::ready) << cold.log;
  EXPECT_NE(cold.log.find("cache: saved store"), std::string::npos) << cold.log;
  auto warm = build(fixture, storage_dir.path(), with_description(fixture));
  ASSERT_EQ(warm.report.outcome, dp::runner::build_outcome::ready) << warm.log;
  EXPECT_NE(warm.log.find("cache: restored store"), std::string::npos) << warm.log;
  EXPECT_EQ(warm.log.find("install: skipped"), std::string::npos) << warm.log;
  EXPECT_NE(warm.log.find(fetched_nothing), std::string::npos) << warm.log;
  if (!fetched.empty()) {
    EXPECT_EQ(warm.log.find(fetched), std::string::npos) << warm.log;
  }
  EXPECT_NE(warm.index_html.find("seven by " + agent), std::string::npos) << warm.index_html;
  // An unchanged redeploy restores node_modules, and the store with corepack's download of the
  // package manager that runs the build.
  auto again = build(fixture, storage_dir.path(), with_description(fixture));
  ASSERT_EQ(again.report.outcome, dp::runner::build_outcome::ready) << again.log;
  // For the test's log (bench numbers, not assertions): what each install took.
  for (const auto* r : {&cold, &warm, &again}) {
    std::istringstream lines(r->log);
    std::string summary;
    for (std::string line; std::getline(lines, line);) {
      if (line.find("install finished in") != std::string::npos ||
          line.find("cache: restored") != std::string::npos ||
          line.find("install: skipped") != std::string::npos) {
        summary += (summary.empty() ? "" : "; ") + line;
      }
    }
    std::cout << "# " << fixture
              << (r == &cold   ? " cold: "
                  : r == &warm ? " warm: "
                               : " again: ")
              << summary << "\n";
  }
  EXPECT_NE(again.log.find("install: skipped: node_modules restored"), std::string::npos)
      << again.log;
  EXPECT_NE(again.log.find("cache: restored store"), std::string::npos) << again.log;
  // The build's own call of the package manager gets the version the install used, not
  // corepack's default.
  EXPECT_NE(again.index_html.find("seven by " + agent), std::string::npos) << again.index_html;
}

TEST(PackageManagerE2e, WarmPnpmFromTheCache) {
  skip_without_egress();
  expect_warm_install("pnpm", "pnpm/8.", "reused 1, downloaded 0", "");
}

TEST(PackageManagerE2e, WarmYarnClassicFromTheCache) {
  skip_without_egress();
  // yarn 1 says nothing of where a package came from.
  expect_warm_install("yarn-classic", "yarn/1.", "Done in", "");
}

TEST(PackageManagerE2e, WarmYarnBerryFromTheCache) {
  skip_without_egress();
  // Cold, its fetch step says "YN0013: │ A package was added to the project".
  expect_warm_install("yarn-berry", "yarn/4.", "YN0000: · Done", "YN0013");
}

// A pnpm that cannot read the lockfile stops the build at the install, whatever a later
// `pnpm run` would have done (it re-installs quietly).
TEST(PackageManagerE2e, WrongPnpmFailsAtTheInstall) {
  skip_without_egress();
  auto pkg = read_file(dp::test::source_dir() / "tests" / "fixtures" / "package-managers" / "pnpm" /
                       "package.json");
  auto at = pkg.find("\"private\"");
  ASSERT_NE(at, std::string::npos);
  pkg.insert(at, "\"packageManager\": \"pnpm@7.33.7\",\n  ");
  auto r = build("pnpm", {{"package.json", pkg}});
  ASSERT_EQ(r.report.outcome, dp::runner::build_outcome::failed) << r.log;
  EXPECT_TRUE(r.report.error.starts_with("install (`corepack install && pnpm install"))
      << r.report.error;
  EXPECT_NE(r.log.find("ERR_PNPM_"), std::string::npos) << r.log;  // pnpm's own refusal
  EXPECT_EQ(r.log.find("build: running"), std::string::npos) << r.log;
}

}  // namespace
