// The build cache with real npm (tests/fixtures/vite-react from the npm registry: label e2e).
// One project built four times against one file store and one local copy directory:
// cold (miss: npm ci, node_modules and npm's cache saved), unchanged (hit: install skipped, even
// with the archive gone from the store, since the local copy has it), a lockfile change
// (partial: npm ci --prefer-offline from the restored npm cache), and --no-cache (cold again).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <fstream>
#include <regex>
#include <sstream>

#include "dp/buildplan/cache.hpp"
#include "dp/core/id.hpp"
#include "dp/proto/storage_layout.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, dp::test::git_file> fixture_files() {
  std::map<std::string, dp::test::git_file> files;
  auto root = dp::test::source_dir() / "tests" / "fixtures" / "vite-react";
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) {
      files.emplace(e.path().lexically_relative(root).string(), read_file(e.path()));
    }
  }
  return files;
}

struct build_result {
  dp::runner::build_report report;
  std::string log;
};

class cache_e2e : public ::testing::Test {
 protected:
  build_result build(const std::string& git_url, bool no_cache = false) {
    auto log_path = work_.path() / "build.log";
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0);
    dp::proto::job job;
    job.deployment_id = dp::new_deployment_id();
    job.project = "vite";
    job.git_url = git_url;
    job.no_cache = no_cache;
    dp::runner::runner_options opts;
    opts.allowed_git_protocols = {"file"};
    opts.work_root = work_.path();
    opts.timeout = std::chrono::seconds(600);
    opts.cache.local_dir = local_.path();
    asio::io_context ioc;
    auto storage = dp::storage::open_storage(
        ioc.get_executor(), *dp::storage::parse_storage_url("file://" + store_.path().string()),
        {});
    EXPECT_TRUE(storage);
    auto sink = dp::runner::make_stream_sink(fd, false, job.deployment_id);
    dp::runner::runner runner(job, opts, **storage, *sink);
    auto report = asio::co_spawn(ioc, runner.run(), asio::use_future);
    ioc.run();
    build_result r{report.get(), {}};
    ::close(fd);
    r.log = read_file(log_path);
    return r;
  }

  dp::buildplan::cache_index index() {
    auto text = read_file(store_.path() / dp::proto::cache_index_key("vite"));
    auto i = dp::buildplan::parse_cache_index(text);
    EXPECT_TRUE(i) << text;
    return i ? *i : dp::buildplan::cache_index{};
  }

  static bool has(const std::string& log, const std::string& what) {
    return log.find(what) != std::string::npos;
  }

  static double phase_s(const build_result& r, const std::string& name) {
    for (const auto& p : r.report.phases) {
      if (p.name == name) {
        return std::chrono::duration<double>(p.duration).count();
      }
    }
    return 0;
  }

  dp::test::temp_dir store_{"dp-cache-store"}, local_{"dp-cache-local"}, work_{"dp-cache-work"};
};

TEST_F(cache_e2e, restores_node_modules_uses_the_store_and_builds_cold_on_request) {
  auto files = fixture_files();
  dp::test::git_repo repo(files);

  // 1. Cold: npm ci, then node_modules and npm's cache are saved.
  auto cold = build(repo.url());
  ASSERT_EQ(cold.report.outcome, dp::runner::build_outcome::ready) << cold.report.error << cold.log;
  EXPECT_TRUE(has(cold.log, "cache: miss")) << cold.log;
  EXPECT_TRUE(has(cold.log, "install: running `npm ci`")) << cold.log;
  EXPECT_TRUE(has(cold.log, "cache: saved modules")) << cold.log;
  EXPECT_TRUE(has(cold.log, "cache: saved store")) << cold.log;
  auto first = index();
  ASSERT_EQ(first.entries.size(), 2u);

  // The archive is gone from the store, but this machine's copy serves the next build.
  for (const auto& e : first.entries) {
    if (e.kind == dp::buildplan::cache_kind::modules) {
      fs::remove(store_.path() / dp::proto::cache_object_key("vite", e.name));
      EXPECT_TRUE(fs::exists(local_.path() / "vite" / e.name));
    }
  }

  // 2. Unchanged: node_modules restored, no install at all.
  auto warm = build(repo.url());
  ASSERT_EQ(warm.report.outcome, dp::runner::build_outcome::ready) << warm.report.error << warm.log;
  EXPECT_TRUE(has(warm.log, "cache: restored modules")) << warm.log;
  EXPECT_TRUE(has(warm.log, "install: skipped: node_modules restored from the build cache"))
      << warm.log;
  EXPECT_FALSE(has(warm.log, "install: running")) << warm.log;
  EXPECT_TRUE(has(warm.log, "cache: hit")) << warm.log;
  EXPECT_FALSE(has(warm.log, "cache: saved")) << warm.log;
  std::printf("cold install %.2f s; warm cache restore %.2f s, build %.2f s\n",
              phase_s(cold, "install"), phase_s(warm, "cache restore"), phase_s(warm, "build"));

  // 3. A lockfile change: npm's cache restored, the install prefers it. This machine has lost its
  // copy of that archive: it is downloaded, and kept again.
  std::string store_name;
  for (const auto& e : first.entries) {
    if (e.kind == dp::buildplan::cache_kind::store) {
      store_name = e.name;
      ASSERT_TRUE(fs::remove(local_.path() / "vite" / e.name));
    }
  }
  auto& lock = files.at("package-lock.json").content;
  lock = std::regex_replace(lock, std::regex("\"version\": \"1.0.0\""), "\"version\": \"1.0.1\"");
  auto& pkg = files.at("package.json").content;
  pkg = std::regex_replace(pkg, std::regex("\"version\": \"1.0.0\""), "\"version\": \"1.0.1\"");
  dp::test::git_repo changed(files);
  auto partial = build(changed.url());
  ASSERT_EQ(partial.report.outcome, dp::runner::build_outcome::ready)
      << partial.report.error << partial.log;
  EXPECT_TRUE(has(partial.log, "cache: restored store")) << partial.log;
  EXPECT_TRUE(has(partial.log, "install: running `npm ci --prefer-offline`")) << partial.log;
  EXPECT_TRUE(has(partial.log, "cache: partial")) << partial.log;
  EXPECT_TRUE(fs::exists(local_.path() / "vite" / store_name));
  auto third = index();
  int modules = 0, stores = 0;
  for (const auto& e : third.entries) {
    modules += e.kind == dp::buildplan::cache_kind::modules;
    stores += e.kind == dp::buildplan::cache_kind::store;
  }
  EXPECT_EQ(modules, 2);  // one per lockfile
  EXPECT_EQ(stores, 1);   // the older store was superseded

  // 4. --no-cache: nothing restored, a plain npm ci, a new cache written.
  auto nocache = build(changed.url(), true);
  ASSERT_EQ(nocache.report.outcome, dp::runner::build_outcome::ready)
      << nocache.report.error << nocache.log;
  EXPECT_TRUE(has(nocache.log, "cache: not restored (deployed with --no-cache)")) << nocache.log;
  EXPECT_TRUE(has(nocache.log, "install: running `npm ci`")) << nocache.log;
  EXPECT_FALSE(has(nocache.log, "cache: restored")) << nocache.log;
}

}  // namespace
