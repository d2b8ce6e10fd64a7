// ISO 8601 times in UTC as AWS writes them (credential expirations).
#pragma once

#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace dp::aws {

// 2026-11-24T16:30:00Z, fractional seconds allowed before the Z.
inline std::optional<std::chrono::system_clock::time_point> parse_utc(std::string_view text) {
  if (!text.ends_with('Z')) {
    return std::nullopt;
  }
  std::tm tm{};
  std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  auto t = ::timegm(&tm);
  if (t == static_cast<time_t>(-1)) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(t);
}

}  // namespace dp::aws
