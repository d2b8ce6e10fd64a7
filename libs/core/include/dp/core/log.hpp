// The one logger: one line per event on stderr, as text ("ts level msg key=value") or JSON lines,
// with a minimum level. Thread-safe; each line is written with a single write(2).
#pragma once

#include <concepts>
#include <initializer_list>
#include <string>
#include <string_view>

#include "dp/core/error.hpp"

namespace dp::log {

enum class level : int { debug = 0, info = 1, warn = 2, error = 3 };
enum class format { text, json };

// A key=value pair. Numbers and booleans stay unquoted in JSON output.
struct field {
  std::string_view key;
  std::string value;
  bool raw_json = false;

  field(std::string_view k, std::string_view v) : key(k), value(v) {}
  field(std::string_view k, const char* v) : key(k), value(v ? v : "") {}
  field(std::string_view k, const std::string& v) : key(k), value(v) {}
  field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), raw_json(true) {}
  template <std::integral T>
  field(std::string_view k, T v) : key(k), value(std::to_string(v)), raw_json(true) {}
  field(std::string_view k, double v);
  field(std::string_view k, const dp::error& e) : key(k), value(e.describe()) {}
};

// Set once at start by main (from LOG_LEVEL, LOG_FORMAT); `service` is added to every JSON line.
void configure(level min_level, format fmt, std::string_view service = {});
bool enabled(level l) noexcept;

// Format one line without writing it (used by tests and by write()).
std::string format_line(level l, std::string_view message, std::initializer_list<field> fields);
void write(level l, std::string_view message, std::initializer_list<field> fields = {});

inline void debug(std::string_view m, std::initializer_list<field> f = {}) {
  if (enabled(level::debug)) {
    write(level::debug, m, f);
  }
}
inline void info(std::string_view m, std::initializer_list<field> f = {}) {
  if (enabled(level::info)) {
    write(level::info, m, f);
  }
}
inline void warn(std::string_view m, std::initializer_list<field> f = {}) {
  if (enabled(level::warn)) {
    write(level::warn, m, f);
  }
}
inline void error(std::string_view m, std::initializer_list<field> f = {}) {
  write(level::error, m, f);
}

// Parse "debug|info|warn|error" and "text|json"; nullopt-like false on a bad name.
bool parse_level(std::string_view s, level& out) noexcept;
bool parse_format(std::string_view s, format& out) noexcept;

}  // namespace dp::log
