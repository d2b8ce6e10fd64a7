#include "dp/core/log.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>

#include "dp/core/json_escape.hpp"

namespace dp::log {
namespace {

std::atomic<int> g_min_level{static_cast<int>(level::info)};
std::atomic<format> g_format{format::text};
std::mutex g_mutex;  // guards g_service and serializes writes
std::string g_service;

std::string_view level_name(level l) {
  switch (l) {
    case level::debug:
      return "debug";
    case level::info:
      return "info";
    case level::warn:
      return "warn";
    case level::error:
      return "error";
  }
  return "info";
}

// Text values are quoted only when they would otherwise be ambiguous to a reader or a parser.
bool needs_quotes(std::string_view v) {
  if (v.empty()) {
    return true;
  }
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) {
      return true;
    }
  }
  return false;
}

std::string timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", std::chrono::floor<std::chrono::seconds>(now),
                     static_cast<int>(ms.count()));
}

}  // namespace

field::field(std::string_view k, double v) : key(k), value(fmt::format("{}", v)), raw_json(true) {}

void configure(level min_level, format fmt, std::string_view service) {
  g_min_level.store(static_cast<int>(min_level));
  g_format.store(fmt);
  std::lock_guard lock(g_mutex);
  g_service = service;
}

bool enabled(level l) noexcept {
  return static_cast<int>(l) >= g_min_level.load();
}

std::string format_line(level l, std::string_view message, std::initializer_list<field> fields) {
  std::string out;
  out.reserve(128);
  if (g_format.load() == format::json) {
    out += "{\"ts\":\"";
    out += timestamp();
    out += "\",\"level\":\"";
    out += level_name(l);
    out += '"';
    {
      std::lock_guard lock(g_mutex);
      if (!g_service.empty()) {
        out += ",\"service\":";
        append_json_string(out, g_service);
      }
    }
    out += ",\"msg\":";
    append_json_string(out, message);
    for (const auto& f : fields) {
      out += ',';
      append_json_string(out, f.key);
      out += ':';
      if (f.raw_json) {
        out += f.value;
      } else {
        append_json_string(out, f.value);
      }
    }
    out += "}\n";
    return out;
  }
  out += timestamp();
  out += ' ';
  out += fmt::format("{:<5}", level_name(l));
  out += ' ';
  out += message;
  for (const auto& f : fields) {
    out += ' ';
    out += f.key;
    out += '=';
    if (needs_quotes(f.value)) {
      append_json_string(out, f.value);
    } else {
      out += f.value;
    }
  }
  out += '\n';
  return out;
}

void write(level l, std::string_view message, std::initializer_list<field> fields) {
  std::string line = format_line(l, message, fields);
  std::lock_guard lock(g_mutex);
  std::string_view rest = line;
  while (!rest.empty()) {
    ssize_t n = ::write(STDERR_FILENO, rest.data(), rest.size());
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return;  // stderr is gone: nothing sensible left to do with a log line
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
}

bool parse_level(std::string_view s, level& out) noexcept {
  if (s == "debug") {
    out = level::debug;
  } else if (s == "info") {
    out = level::info;
  } else if (s == "warn" || s == "warning") {
    out = level::warn;
  } else if (s == "error") {
    out = level::error;
  } else {
    return false;
  }
  return true;
}

bool parse_format(std::string_view s, format& out) noexcept {
  if (s == "text") {
    out = format::text;
  } else if (s == "json") {
    out = format::json;
  } else {
    return false;
  }
  return true;
}

}  // namespace dp::log
