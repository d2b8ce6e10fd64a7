// The wall clock as every record, event, expiry and log line holds it.
#pragma once

#include <chrono>
#include <cstdint>
#include "dp/core/clock.hpp"

namespace dp {

// Milliseconds since the Unix epoch, now.
inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace dp
