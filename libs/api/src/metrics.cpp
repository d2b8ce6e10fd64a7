#include "dp/api/metrics.hpp"

#include <fmt/format.h>

#include <iterator>

#include "dp/proto/types.hpp"

namespace dp::api {

namespace {

// Label values escape backslash, quote and newline (the exposition format's rule).
std::string label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

void metrics::observe(std::string_view route, std::string_view method, unsigned status,
                      std::chrono::nanoseconds elapsed) {
  ++requests_[{std::string(route), std::string(method), status}];
  auto& h = latency_[std::string(route)];
  double seconds = std::chrono::duration<double>(elapsed).count();
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (seconds <= buckets[i]) {
      ++h.counts[i];
    }
  }
  ++h.count;
  h.sum += seconds;
}

void metrics::count_status_event(std::string_view status) {
  ++status_events_[std::string(status)];
}

std::string metrics::render(std::optional<int64_t> queue_depth,
                            const std::optional<std::map<std::string, int64_t>>& by_status) const {
  std::string out;
  auto it = std::back_inserter(out);
  out.append(
      "# HELP dp_http_requests_total HTTP requests answered, by route pattern, method and "
      "status.\n# TYPE dp_http_requests_total counter\n");
  for (const auto& [key, n] : requests_) {
    const auto& [route, method, status] = key;
    fmt::format_to(it, "dp_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
                   label(route), label(method), status, n);
  }
  out.append(
      "# HELP dp_http_request_duration_seconds Time to produce a response (a stream counts until "
      "its headers).\n# TYPE dp_http_request_duration_seconds histogram\n");
  for (const auto& [route, h] : latency_) {
    auto r = label(route);
    for (size_t i = 0; i < buckets.size(); ++i) {
      fmt::format_to(it, "dp_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
                     r, buckets[i], h.counts[i]);
    }
    fmt::format_to(it, "dp_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n",
                   r, h.count);
    fmt::format_to(it, "dp_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n", r, h.sum);
    fmt::format_to(it, "dp_http_request_duration_seconds_count{{route=\"{}\"}} {}\n", r, h.count);
  }
  if (queue_depth) {
    fmt::format_to(it,
                   "# HELP dp_queue_depth Build jobs waiting in the queue.\n"
                   "# TYPE dp_queue_depth gauge\ndp_queue_depth {}\n",
                   *queue_depth);
  }
  if (by_status) {
    out.append(
        "# HELP dp_deployments Deployments by their status now.\n"
        "# TYPE dp_deployments gauge\n");
    // Every status, 0 included, so that each series exists from the first scrape.
    // The enum is dense, from queued to canceled.
    for (int i = 0; i <= static_cast<int>(proto::deployment_status::canceled); ++i) {
      auto name = proto::to_string(static_cast<proto::deployment_status>(i));
      auto found = by_status->find(std::string(name));
      fmt::format_to(it, "dp_deployments{{status=\"{}\"}} {}\n", name,
                     found == by_status->end() ? 0 : found->second);
    }
  }
  out.append(
      "# HELP dp_deployment_status_events_total Deployment status changes seen on "
      "events:deployments since this process started, by new status.\n"
      "# TYPE dp_deployment_status_events_total counter\n");
  for (const auto& [status, n] : status_events_) {
    fmt::format_to(it, "dp_deployment_status_events_total{{status=\"{}\"}} {}\n", label(status), n);
  }
  fmt::format_to(it,
                 "# HELP dp_log_stream_clients Log stream clients connected now.\n"
                 "# TYPE dp_log_stream_clients gauge\ndp_log_stream_clients {}\n"
                 "# HELP dp_log_stream_dropped_total Log stream clients dropped for being too "
                 "slow.\n# TYPE dp_log_stream_dropped_total counter\ndp_log_stream_dropped_total "
                 "{}\n",
                 stream_clients_, dropped_clients_);
  return out;
}

}  // namespace dp::api
