// What each dp::errc means to each reader, in one table: the category's message (logs), the
// stable word of an API error body, and the HTTP status. error.cpp and the HTTP layer
// (dp::http::status_for, code_for) read it; a new code is one new row.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "dp/core/error.hpp"

namespace dp {

struct errc_info {
  errc code;
  std::string_view name;         // "not_found": `code` in {"error":{"code","message"}}
  std::string_view description;  // "not found": error_code::message()
  unsigned http_status;          // 404
};

// One row per errc, in the enum's order.
inline constexpr std::array errc_table{
    errc_info{errc::ok, "ok", "ok", 500},  // not an error: never sent as one
    errc_info{errc::invalid_argument, "invalid_argument", "invalid argument", 400},
    errc_info{errc::not_found, "not_found", "not found", 404},
    errc_info{errc::conflict, "conflict", "conflict", 409},
    errc_info{errc::too_large, "too_large", "too large", 413},
    errc_info{errc::timeout, "timeout", "timed out", 504},
    errc_info{errc::unavailable, "unavailable", "unavailable", 503},
    errc_info{errc::protocol, "protocol", "protocol error", 500},
    errc_info{errc::io, "io", "i/o error", 500},
    errc_info{errc::canceled, "canceled", "canceled", 500},
    errc_info{errc::unauthorized, "unauthorized", "unauthorized", 401},
    errc_info{errc::forbidden, "forbidden", "forbidden", 403},
    errc_info{errc::internal, "internal", "internal error", 500},
};

// What a value outside the enum reads as: an internal error of unknown kind.
inline constexpr errc_info errc_unknown{errc::internal, "internal", "unknown error", 500};

// The row of `value` (an error_code's value in dp::error_category()), or errc_unknown.
constexpr const errc_info& errc_row(int value) noexcept {
  if (value < 0 || static_cast<std::size_t>(value) >= errc_table.size()) {
    return errc_unknown;
  }
  return errc_table[static_cast<std::size_t>(value)];
}
constexpr const errc_info& errc_row(errc e) noexcept {
  return errc_row(static_cast<int>(e));
}

static_assert(
    [] {
      for (std::size_t i = 0; i < errc_table.size(); ++i) {
        if (static_cast<std::size_t>(errc_table[i].code) != i) {
          return false;
        }
      }
      return true;
    }(),
    "errc_table must list every errc once, in the enum's order");

}  // namespace dp
