// cache_bench: the repo's Vite + React fixture (tests/fixtures/vite-react) built by the runner
// cold, then unchanged (node_modules restored, no install), then after a lockfile change (npm's
// cache restored, npm ci --prefer-offline), then with --no-cache; one table of the phases. Needs
// the npm registry, bubblewrap and a root runner, as the e2e tests. The goal (issue #16): the
// install step of an unchanged redeploy at least 5x faster than cold.
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "dp/core/id.hpp"
#include "dp/runner/runner.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double seconds(const dp::runner::build_report& r, std::string_view phase) {
  double s = 0;
  for (const auto& p : r.phases) {
    if (phase.empty() || p.name == phase) {
      s += std::chrono::duration<double>(p.duration).count();
    }
  }
  return s;
}

dp::runner::build_report build(const std::string& url, bool no_cache, const fs::path& store,
                               const fs::path& local, const fs::path& work) {
  dp::proto::job job;
  job.deployment_id = dp::new_deployment_id();
  job.project = "vite";
  job.git_url = url;
  job.no_cache = no_cache;
  dp::runner::runner_options opts;
  opts.allowed_git_protocols = {"file"};
  opts.work_root = work;
  opts.timeout = std::chrono::seconds(600);
  opts.cache.local_dir = local;
  asio::io_context ioc;
  auto storage = dp::storage::open_storage(
      ioc.get_executor(), *dp::storage::parse_storage_url("file://" + store.string()), {});
  int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  auto sink = dp::runner::make_stream_sink(devnull, false, job.deployment_id);
  dp::runner::runner runner(job, opts, **storage, *sink);
  auto report = asio::co_spawn(ioc, runner.run(), asio::use_future);
  ioc.run();
  ::close(devnull);
  return report.get();
}

}  // namespace

int main() {
  std::map<std::string, dp::test::git_file> files;
  auto root = dp::test::source_dir() / "tests" / "fixtures" / "vite-react";
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) {
      files.emplace(e.path().lexically_relative(root).string(), read_file(e.path()));
    }
  }
  dp::test::git_repo repo(files);
  auto& lock = files.at("package-lock.json").content;
  lock = std::regex_replace(lock, std::regex("\"version\": \"1.0.0\""), "\"version\": \"1.0.1\"");
  auto& pkg = files.at("package.json").content;
  pkg = std::regex_replace(pkg, std::regex("\"version\": \"1.0.0\""), "\"version\": \"1.0.1\"");
  dp::test::git_repo changed(files);
  dp::test::temp_dir store("dp-cbench-store"), local("dp-cbench-local"), work("dp-cbench-work");

  struct row {
    const char* name;
    const std::string& url;
    bool no_cache;
  };
  std::printf("%-22s %8s %10s %10s %10s %10s %10s\n", "build (vite-react)", "outcome", "restore s",
              "install s", "build s", "save s", "total s");
  int failed = 0;
  double cold_install = 0, warm_install = 0;
  for (const auto& r :
       {row{"cold", repo.url(), false}, row{"unchanged", repo.url(), false},
        row{"lockfile changed", changed.url(), false}, row{"--no-cache", changed.url(), true}}) {
    auto rep = build(r.url, r.no_cache, store.path(), local.path(), work.path());
    failed += rep.outcome != dp::runner::build_outcome::ready;
    double restore = seconds(rep, "cache restore"), install = seconds(rep, "install");
    std::printf("%-22s %8s %10.2f %10.2f %10.2f %10.2f %10.2f\n", r.name,
                std::string(dp::runner::to_string(rep.outcome)).c_str(), restore, install,
                seconds(rep, "build"), seconds(rep, "cache save"), seconds(rep, ""));
    if (std::string_view(r.name) == "cold") {
      cold_install = install;
    } else if (std::string_view(r.name) == "unchanged") {
      warm_install = restore + install;  // the restore replaces the install
    }
  }
  std::printf("install step, unchanged vs cold: %.1fx faster (goal: 5x)\n",
              warm_install > 0 ? cold_install / warm_install : 0.0);
  return failed == 0 ? 0 : 1;
}
