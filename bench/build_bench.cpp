// build_bench: the time of each phase of `build-runner build` for the no-dependency project on the
// file backend, with Redis (statuses, logbook) and bubblewrap as in production. npm's own time
// (install, build) is shown apart: the target is that everything else stays under 300 ms.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <cstdio>
#include <map>

#include "dp/core/clock.hpp"
#include "dp/core/id.hpp"
#include "dp/redis/client.hpp"
#include "dp/runner/runner.hpp"
#include "dp/state/logbook.hpp"
#include "dp/state/records.hpp"
#include "dp/storage/object_store.hpp"
#include "dp/test/harness.hpp"

namespace asio = boost::asio;
using us = std::chrono::microseconds;

namespace {

asio::awaitable<dp::runner::build_report> one_build(std::string redis_url, std::string repo_url,
                                                    std::filesystem::path storage_dir,
                                                    std::filesystem::path work, us& total,
                                                    bool limits) {
  auto ex = co_await asio::this_coro::executor;
  dp::redis::options ro;
  dp::config::parse_redis_url(redis_url, ro.url);
  dp::redis::client redis(ex, ro);
  dp::state::records records(redis, dp::proto::keys("b:"));
  dp::aws::credentials no_credentials;
  auto storage = dp::storage::open_storage(
      ex, *dp::storage::parse_storage_url("file://" + storage_dir.string()), no_credentials);
  dp::proto::deployment d;
  d.id = dp::new_deployment_id();
  d.project = "bench";
  d.git_url = repo_url;
  d.created_at = dp::now_ms();
  dp::proto::job j;  // a named local: g++ 12 mishandles temporaries passed into co_await
  (void)co_await records.create_deployment(d, j);
  j.deployment_id = d.id;
  j.project = d.project;
  j.git_url = repo_url;
  dp::state::log_writer logs(ex, redis, records.keys(), d.id);
  auto sink = dp::runner::make_redis_sink(records, logs, d);
  dp::runner::runner_options o;
  o.allowed_git_protocols = {"file"};
  o.work_root = work;
  if (!limits) {
    o.memory_bytes = 0;
    o.pids_max = 0;
    o.disk_bytes = 0;
  }
  dp::runner::runner r(j, o, **storage, *sink);
  auto start = std::chrono::steady_clock::now();
  auto report = co_await r.run();
  total = std::chrono::duration_cast<us>(std::chrono::steady_clock::now() - start);
  redis.close();
  co_return report;
}

double median_ms(std::vector<us> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2].count() / 1000.0;
}

}  // namespace

int main() {
  constexpr int runs = 7;
  dp::test::redis_server redis;
  dp::test::temp_dir storage("dp-bench-storage"), work("dp-bench-work");
  dp::test::git_repo repo({
      {"package.json",
       R"({"name":"app","version":"1.0.0","private":true,"scripts":{"build":"node build.js"}})"},
      {"package-lock.json",
       R"({"name":"app","version":"1.0.0","lockfileVersion":3,"requires":true,)"
       R"("packages":{"":{"name":"app","version":"1.0.0"}}})"},
      {"build.js",
       "const fs=require('fs');fs.mkdirSync('dist/assets',{recursive:true});"
       "for(let i=0;i<20;i++)fs.writeFileSync(`dist/assets/c${i}-4f3a9c2b.js`,'x'.repeat(4096));"
       "fs.writeFileSync('dist/index.html','<!doctype html>');"},
  });
  std::map<std::string, std::vector<us>> phases;
  std::vector<us> totals, non_npm, unlimited;
  // Alternately with and without the limits (cgroup, a filesystem per build): their cost.
  for (int i = 0; i < 2 * runs; ++i) {
    bool limits = i % 2 == 0;
    asio::io_context ioc;
    us total{0};
    auto f = asio::co_spawn(
        ioc, one_build(redis.url(), repo.url(), storage.path(), work.path(), total, limits),
        asio::use_future);
    ioc.run();
    auto report = f.get();
    if (report.outcome != dp::runner::build_outcome::ready) {
      std::fprintf(stderr, "build failed: %s\n", report.error.c_str());
      return 1;
    }
    if (!limits) {
      unlimited.push_back(total);
      continue;
    }
    us npm{0};
    for (const auto& p : report.phases) {
      phases[p.name].push_back(p.duration);
      if (p.name == "install" || p.name == "build") {
        npm += p.duration;
      }
    }
    totals.push_back(total);
    non_npm.push_back(total - npm);
  }
  std::printf(
      "build_bench: no-dependency project (21 files), file backend, Redis, bubblewrap; "
      "median of %d runs\n",
      runs);
  std::printf("%-28s %10s\n", "phase", "ms");
  for (const char* name :
       {"clone", "install", "build", "validate", "upload", "manifest", "finish"}) {
    std::printf("%-28s %10.1f\n", name, median_ms(phases[name]));
  }
  std::printf("%-28s %10.1f\n", "total", median_ms(totals));
  std::printf("%-28s %10.1f   (BUILD_MEMORY_MB, BUILD_PIDS_MAX, BUILD_DISK_MB = 0)\n",
              "total without limits", median_ms(unlimited));
  std::printf("%-28s %10.1f   (target < 300)\n", "total without npm (install+build)",
              median_ms(non_npm));
  return 0;
}
