// Log events are the hot path (about 100,000 per build): compares the direct serializer with
// building a boost::json::value, and measures the strict parser. Prints a table.
#include "dp/proto/json.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace proto = dp::proto;

namespace {

constexpr int events = 100'000;
constexpr int rounds = 5;

std::vector<proto::log_event> make_events() {
  std::vector<proto::log_event> out;
  out.reserve(events);
  for (int i = 0; i < events; ++i) {
    // Typical build output: paths, sizes, a colour escape now and then, a tab, some UTF-8.
    std::string line = fmt::format(
        "\x1b[32m✓\x1b[0m dist/assets/index-{:06x}.js\t{}.{:02} kB │ gzip: {} kB \"chunk\" {}", i,
        i % 900, i % 100, i % 300, i);
    out.push_back({"01jh5k7q3x9m2c8r4t6v0w1y3z", i, 1764000000000 + i,
                   i % 7 == 0 ? proto::log_stream::err : proto::log_stream::out, std::move(line)});
  }
  return out;
}

// Best of `rounds`, in nanoseconds per event. `run` returns a size so its work is not optimized
// away.
template <class F>
double best_ns(F&& run) {
  static volatile size_t sink = 0;
  double best = 1e300;
  for (int r = 0; r < rounds; ++r) {
    auto start = std::chrono::steady_clock::now();
    sink = sink + run();
    std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
    best = std::min(best, took.count() / events);
  }
  return best;
}

}  // namespace

int main() {
  auto input = make_events();
  std::vector<std::string> texts;
  for (const auto& e : input) {
    texts.push_back(proto::to_json(e));
  }

  struct row {
    const char* name;
    double ns;
  };
  std::vector<row> rows;

  std::string buffer;
  double ns = best_ns([&] {
    size_t total = 0;
    for (const auto& e : input) {
      buffer.clear();  // one reused buffer, as a log pump would keep
      proto::append_json(buffer, e);
      total += buffer.size();
    }
    return total;
  });
  rows.push_back({"append_json (reused buffer)", ns});

  ns = best_ns([&] {
    size_t total = 0;
    for (const auto& e : input) {
      total += boost::json::serialize(boost::json::value_from(e)).size();
    }
    return total;
  });
  rows.push_back({"serialize(value_from(e))", ns});

  ns = best_ns([&] {
    size_t total = 0;
    for (const auto& t : texts) {
      auto e = proto::parse_log_event(t);
      total += e ? e->line.size() : 0;
    }
    return total;
  });
  rows.push_back({"parse_log_event(text)", ns});

  fmt::print("{} log events, ~{} bytes of JSON each, best of {} rounds\n", events,
             texts.front().size(), rounds);
  fmt::print("| {:<30} | {:>10} | {:>12} |\n", "operation", "ns/event", "events/s");
  fmt::print("|{:-<32}|{:->12}|{:->14}|\n", "", "", "");
  for (const auto& r : rows) {
    fmt::print("| {:<30} | {:>10.0f} | {:>12.0f} |\n", r.name, r.ns, 1e9 / r.ns);
  }
}
