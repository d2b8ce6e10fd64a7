// worker_bench: the build queue with the process launcher and a build that does nothing
// (bench/noop_build.sh: one redis-cli call that records its start and sets the status ready).
//   latency:    one job at a time into an idle worker; enqueue (LPUSH) to the build's first
//               action (the fake records its start), p50/p90/max over the runs
//   throughput: N jobs queued at once, jobs per second until the last is ready, by concurrency
#include <boost/asio/co_spawn.hpp>

#include <algorithm>
#include <cstdio>

#include "../libs/worker/test/worker_test_support.hpp"

using namespace dp::worker_test;

namespace {

int64_t started_ms(const dp::test::redis_server& s, const std::string& id) {
  auto r = dp::test::redis_command(s.port(), {"LINDEX", prefix + "fake:started:" + id, "0"});
  return r ? std::atoll(r->c_str()) : 0;
}

dp::worker::process_launcher_options noop_launcher(const dp::test::redis_server& server) {
  auto o = fake_launcher(server);
  o.program = (dp::test::source_dir() / "bench/noop_build.sh").string();
  return o;
}

}  // namespace

int main() {
  std::printf("%-34s %10s %10s %10s\n", "measure", "p50", "p90", "max");
  {
    dp::test::redis_server server;
    auto o = fast_options("bench");
    threaded_worker w(server, dp::worker::make_process_launcher(noop_launcher(server)), o);
    std::this_thread::sleep_for(300ms);
    std::vector<int64_t> lat;
    for (int i = 0; i < 40; ++i) {
      auto id = enqueue(server, "p" + std::to_string(i));
      auto enq = get(server, id).created_at;
      eventually([&] { return has_status(server, id, "ready"); });
      lat.push_back(started_ms(server, id) - enq);
    }
    std::sort(lat.begin(), lat.end());
    std::printf("%-34s %8lld ms %7lld ms %7lld ms\n", "enqueue-to-start (process)",
                static_cast<long long>(lat[lat.size() / 2]),
                static_cast<long long>(lat[lat.size() * 9 / 10]),
                static_cast<long long>(lat.back()));
  }
  std::printf("\n%-34s %10s %10s\n", "throughput (200 no-op jobs)", "jobs/s", "seconds");
  for (int concurrency : {1, 4, 8}) {
    dp::test::redis_server server;
    std::vector<std::string> ids;
    for (int i = 0; i < 200; ++i) {
      ids.push_back(enqueue(server, "p" + std::to_string(i)));
    }
    auto o = fast_options("bench");
    o.concurrency = concurrency;
    auto t0 = std::chrono::steady_clock::now();
    threaded_worker w(server, dp::worker::make_process_launcher(noop_launcher(server)), o);
    for (const auto& id : ids) {
      eventually([&] { return has_status(server, id, "ready"); }, 120s);
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%-34s %10.1f %10.2f\n",
                fmt::format("one worker, concurrency {}", concurrency).c_str(), ids.size() / s, s);
  }
  return 0;
}
