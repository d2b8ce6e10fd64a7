// Prometheus text exposition (version 0.0.4) of the api-server's own counters. Not thread-safe:
// the api-server runs on one thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace dp::api {

class metrics {
 public:
  // Upper bounds of the latency histogram, in seconds.
  static constexpr std::array<double, 11> buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   1.0,   5.0};

  // One answered request; `route` is the route's pattern, not the path, so labels stay few.
  void observe(std::string_view route, std::string_view method, unsigned status,
               std::chrono::nanoseconds elapsed);
  // A status event seen on events:deployments.
  void count_status_event(std::string_view status);
  void set_stream_clients(int64_t n) { stream_clients_ = n; }
  void count_dropped_client() { ++dropped_clients_; }

  // queue_depth: LLEN of the queue; by_status: deployments in each status now; each nullopt when
  // Redis did not answer (then the gauge is left out rather than shown as 0).
  std::string render(std::optional<int64_t> queue_depth,
                     const std::optional<std::map<std::string, int64_t>>& by_status = {}) const;

 private:
  struct histogram {
    std::array<uint64_t, buckets.size()> counts{};
    uint64_t count = 0;
    double sum = 0;
  };
  std::map<std::tuple<std::string, std::string, unsigned>, uint64_t> requests_;
  std::map<std::string, histogram> latency_;
  std::map<std::string, uint64_t> status_events_;
  int64_t stream_clients_ = 0;
  uint64_t dropped_clients_ = 0;
};

}  // namespace dp::api
