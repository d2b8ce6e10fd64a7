// Hexadecimal digits, as percent-decoding reads them; a commit sha's shape.
#pragma once

#include <string_view>

namespace dp {

// The value of one hex digit (either case), or -1 when `c` is not one.
constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

// A full git object name: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits. Nothing else may
// name a commit to check out (it goes on git's command line).
constexpr bool is_commit_sha(std::string_view s) noexcept {
  if (s.size() != 40 && s.size() != 64) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace dp
