// The proxy's /metrics: what each request adds, and the Prometheus text.
#include <fmt/format.h>

#include "proxy_impl.hpp"

namespace dp::proxy {

void metrics::observe(unsigned status, uint64_t body_bytes, clock::duration took) {
  by_status[status < by_status.size() ? status : 0].fetch_add(1, std::memory_order_relaxed);
  bytes.fetch_add(body_bytes, std::memory_order_relaxed);
  double s = std::chrono::duration<double>(took).count();
  size_t b = 0;
  while (b < bounds.size() && s > bounds[b]) {
    ++b;
  }
  buckets[b].fetch_add(1, std::memory_order_relaxed);
  count.fetch_add(1, std::memory_order_relaxed);
  micros.fetch_add(static_cast<uint64_t>(s * 1e6), std::memory_order_relaxed);
}

std::string proxy::impl::metrics_text() const {
  std::string out;
  auto add = [&](std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} {2}\n", name, help, type);
  };
  add("dp_proxy_requests_total", "counter", "Requests answered, by HTTP status.");
  for (size_t code = 0; code < m.by_status.size(); ++code) {
    if (uint64_t n = m.by_status[code].load(std::memory_order_relaxed)) {
      fmt::format_to(std::back_inserter(out), "dp_proxy_requests_total{{status=\"{}\"}} {}\n", code,
                     n);
    }
  }
  add("dp_proxy_response_body_bytes_total", "counter", "Body bytes answered.");
  fmt::format_to(std::back_inserter(out), "dp_proxy_response_body_bytes_total {}\n",
                 m.bytes.load(std::memory_order_relaxed));
  add("dp_proxy_cache_hits_total", "counter", "Small-file cache hits.");
  fmt::format_to(std::back_inserter(out), "dp_proxy_cache_hits_total {}\n",
                 m.cache_hits.load(std::memory_order_relaxed));
  add("dp_proxy_cache_misses_total", "counter", "Small-file cache misses (fetched from storage).");
  fmt::format_to(std::back_inserter(out), "dp_proxy_cache_misses_total {}\n",
                 m.cache_misses.load(std::memory_order_relaxed));
  add("dp_proxy_cache_bytes", "gauge", "Bytes held by the small-file cache.");
  fmt::format_to(std::back_inserter(out), "dp_proxy_cache_bytes {}\n", files.used());
  add("dp_proxy_storage_gets_total", "counter",
      "Requests to storage: a file's bytes (object) or a deployment's manifest.");
  fmt::format_to(std::back_inserter(out),
                 "dp_proxy_storage_gets_total{{what=\"object\"}} {}\n"
                 "dp_proxy_storage_gets_total{{what=\"manifest\"}} {}\n",
                 m.object_gets.load(std::memory_order_relaxed),
                 m.manifest_gets.load(std::memory_order_relaxed));
  add("dp_proxy_request_duration_seconds", "histogram",
      "Time from the parsed request to the response head being ready.");
  uint64_t cumulative = 0;
  for (size_t b = 0; b < m.buckets.size(); ++b) {
    cumulative += m.buckets[b].load(std::memory_order_relaxed);
    if (b < metrics::bounds.size()) {
      fmt::format_to(std::back_inserter(out),
                     "dp_proxy_request_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                     metrics::bounds[b], cumulative);
    } else {
      fmt::format_to(std::back_inserter(out),
                     "dp_proxy_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", cumulative);
    }
  }
  fmt::format_to(std::back_inserter(out), "dp_proxy_request_duration_seconds_sum {}\n",
                 static_cast<double>(m.micros.load(std::memory_order_relaxed)) / 1e6);
  fmt::format_to(std::back_inserter(out), "dp_proxy_request_duration_seconds_count {}\n",
                 m.count.load(std::memory_order_relaxed));
  return out;
}

}  // namespace dp::proxy
